#pragma once

#include "domain/types.hpp"
#include "net/asio.hpp"

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace chat::bus {
class Bus;
}

namespace chat::presence {

// Who is online, in this process (the embedded mode's Presence).
//
// A user is online while any of their devices holds an authenticated WebSocket; when the last one
// closes (or misses heartbeats until the idle timeout closes it) the user stays online for a grace
// period, so a reconnect does not flap, and then goes offline with last_seen set. Changes are
// published to the connections watching that user (Hub::publish_to_watchers), never to everybody.
// Thread-safe: one mutex, taken on connect/disconnect only (not on the message path).
class PresenceTracker {
 public:
  struct Status {
    bool online = false;
    std::optional<domain::TimeMs> last_seen;
  };
  using ClockMs = std::function<domain::TimeMs()>;
  // Persists last_seen when a user goes offline (a store write; may be empty in tests).
  using LastSeenSink = std::function<void(domain::UserId, domain::TimeMs)>;

  PresenceTracker(net::io_context& timers,
                  bus::Bus& bus,
                  std::chrono::milliseconds grace,
                  ClockMs clock,
                  LastSeenSink sink);

  void connected(domain::UserId user);
  void disconnected(domain::UserId user);
  // nullopt: not seen by this process since it started (the caller falls back to the store).
  std::optional<Status> status(domain::UserId user) const;

 private:
  struct Entry {
    int connections = 0;
    bool online = false;
    std::optional<domain::TimeMs> last_seen;
    std::uint64_t generation = 0;  // invalidates pending offline timers
  };
  void publish(domain::UserId user, const Status& status);

  net::io_context& timers_;
  bus::Bus& bus_;
  std::chrono::milliseconds grace_;
  ClockMs clock_;
  LastSeenSink sink_;
  mutable std::mutex mutex_;
  std::unordered_map<domain::UserId, Entry> users_;
};

}  // namespace chat::presence

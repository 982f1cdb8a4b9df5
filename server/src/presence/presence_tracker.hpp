#pragma once

#include "domain/types.hpp"
#include "net/asio.hpp"
#include "presence/presence_directory.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

namespace chat::bus {
class Bus;
}

namespace chat::presence {

// This node's side of presence. The WebSocket sessions report connects and disconnects; the
// tracker keeps this node's device count per user and reports it to a PresenceDirectory, which
// decides the cluster-wide transitions (online while any device on any node is connected; one
// grace period after the last one, wherever it was; last_seen once per offline transition).
// Whoever causes a transition publishes the presence frame through the Bus (to the watchers who
// share a conversation, on every node) and persists last_seen (LastSeenSink).
//
// Embedded mode (LocalPresenceDirectory): directory calls run inline on the caller's thread and
// grace timers on `timers`. Cluster mode (RedisPresenceDirectory, `remote` = true): directory calls
// run on the tracker's own thread, so an I/O thread never waits for Redis on connect/disconnect;
// every second the node heartbeats and sweeps (devices of dead nodes, overdue grace periods). When
// Redis is unreachable the node keeps its own counts, logs once, and re-reports every user when
// Redis is back; meanwhile status() answers from this node's devices.
class PresenceTracker {
 public:
  using Status = presence::Status;
  using ClockMs = std::function<domain::TimeMs()>;
  // Persists last_seen when a user goes offline (a store write; may be empty in tests).
  using LastSeenSink = std::function<void(domain::UserId, domain::TimeMs)>;

  struct Options {
    std::chrono::milliseconds grace{5'000};
    std::uint32_t node_id = 0;
    bool remote = false;  // the directory is remote: own thread, heartbeat and sweep
    std::chrono::milliseconds heartbeat{1'000};
    std::chrono::milliseconds node_ttl{5'000};  // a node silent this long is dead
    std::chrono::milliseconds sweep_slack{2'000};
  };

  // Embedded mode, as before: an in-process directory owned by the tracker.
  PresenceTracker(net::io_context& timers,
                  bus::Bus& bus,
                  std::chrono::milliseconds grace,
                  ClockMs clock,
                  LastSeenSink sink);
  PresenceTracker(net::io_context& timers,
                  bus::Bus& bus,
                  PresenceDirectory& directory,
                  Options options,
                  ClockMs clock,
                  LastSeenSink sink);
  ~PresenceTracker();
  PresenceTracker(const PresenceTracker&) = delete;
  PresenceTracker& operator=(const PresenceTracker&) = delete;

  // Cluster mode: forgets this node's previous devices, starts the thread and the heartbeat.
  void start();
  void stop();

  void connected(domain::UserId user);
  void disconnected(domain::UserId user);
  // nullopt: unknown (the caller falls back to the store). Blocking in cluster mode (a Redis
  // read): not for I/O threads; use statuses().
  std::optional<Status> status(domain::UserId user) const;
  // The status of each user (same order; nullopt: unknown, ask the store), at most
  // PresenceDirectory::kMaxStatusBatch users. Cluster mode: one Redis round trip on the
  // presence thread, the result delivered on the awaiting coroutine's executor; when Redis is
  // away, this node's own devices answer (online, or unknown). Embedded mode: inline.
  net::awaitable<std::vector<std::optional<Status>>> statuses(std::vector<domain::UserId> users);

 private:
  void report(domain::UserId user);  // directory thread (or inline)
  void schedule_expire(domain::UserId user, std::uint64_t generation);
  void tick();
  void went_offline(domain::UserId user, domain::TimeMs when);
  void publish(domain::UserId user, const Status& status);
  void redis_failed(const std::exception& e);
  std::vector<std::optional<Status>> lookup(const std::vector<domain::UserId>& users) const;

  net::io_context& timers_;
  bus::Bus& bus_;
  std::unique_ptr<PresenceDirectory> owned_;
  PresenceDirectory& directory_;
  Options options_;
  ClockMs clock_;
  LastSeenSink sink_;
  mutable std::mutex mutex_;
  std::mutex report_mutex_;  // embedded mode: one report at a time, so reports keep count order
  std::unordered_map<domain::UserId, int> local_;  // this node's devices per user
  // Cluster mode only.
  net::io_context io_{1};
  std::thread thread_;
  std::unique_ptr<net::steady_timer> tick_timer_;
  std::atomic<bool> started_{false};
  bool degraded_ = false;           // directory thread: the last call failed
  bool registered_ = false;         // directory thread: a heartbeat went through
  std::set<domain::UserId> dirty_;  // directory thread: to re-report once Redis is back
};

}  // namespace chat::presence

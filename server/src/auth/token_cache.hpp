#pragma once

#include "domain/types.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace chat::auth {

// Access-token hash -> auth context, so requests and WebSocket auth do not read the store each
// time. Bounded (`capacity` entries; when full, expired entries go, then everything) and short
// lived (`ttl`: a rotated-out token is still accepted for at most that long if no invalidation
// reached this node). An entry never outlives its token: find() drops it once the wall clock
// reaches the token's expiry (AuthContext::access_expires_at, as the store returned it).
//
// Revocation: revoke_session() drops the session's entries here and calls `broadcast`, which in
// cluster mode sends an invalidation through Redis to every node (they call invalidate_session()).
// While the node cannot hear invalidations (its Redis subscription is down) the cache is disabled:
// cleared and bypassed, so a revocation it missed can never be served from it. An epoch guards the
// race between a store read and an invalidation: an entry read before an invalidation is not
// inserted after it. Thread-safe (one mutex; lookups are a hash probe).
class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::size_t capacity = 100'000;
    std::chrono::milliseconds ttl{5'000};
  };
  using Broadcast = std::function<void(domain::SessionId)>;

  explicit TokenCache(Options options) : options_(options) {}

  // Call before reading the store; pass the result to insert().
  std::uint64_t epoch() const;
  // `now`: monotonic (the cache TTL); `wall_now`: ms since the epoch (the token's own expiry).
  std::optional<domain::AuthContext> find(const std::string& token_hash,
                                          Clock::time_point now,
                                          domain::TimeMs wall_now);
  void insert(const std::string& token_hash,
              const domain::AuthContext& auth,
              std::uint64_t epoch,
              Clock::time_point now);

  // Drops the session's tokens on this node and (cluster mode) on every other node.
  void revoke_session(domain::SessionId session);
  // Drops the session's tokens on this node (an invalidation from another node).
  void invalidate_session(domain::SessionId session);
  // false: clear and bypass (the invalidation channel is down); true: use again.
  void set_enabled(bool enabled);
  bool enabled() const;
  void set_broadcast(Broadcast broadcast) { broadcast_ = std::move(broadcast); }
  std::size_t size() const;

 private:
  struct Entry {
    domain::AuthContext auth;
    Clock::time_point expires;
  };
  Options options_;
  Broadcast broadcast_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t epoch_ = 0;
  bool enabled_ = true;
};

}  // namespace chat::auth

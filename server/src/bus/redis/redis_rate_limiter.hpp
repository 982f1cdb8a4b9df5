#pragma once

#include "domain/rate_limiter.hpp"

#include <atomic>
#include <string>

namespace chat::bus::redis {

class RedisClient;

// A RateLimiter shared by every node: GCRA (the "theoretical arrival time" form of a token bucket)
// in one Lua script per take, so concurrent takes from several nodes are atomic. Key
// `<prefix><key>` holds the bucket's TAT in microseconds and expires when the bucket is full again.
// While Redis is unreachable the limiter falls back to a per-node LocalRateLimiter with the same
// rate (logged once); it uses Redis again as soon as a call succeeds.
class RedisRateLimiter final : public domain::RateLimiter {
 public:
  RedisRateLimiter(RedisClient& client, std::string prefix, double per_minute, double burst);

  bool try_take(const std::string& key, std::int64_t now_ms, std::chrono::milliseconds* retry_after) override;

  // True while the last call was answered from the per-node fallback (tests, logs).
  bool degraded() const noexcept { return degraded_; }

 private:
  RedisClient& client_;
  std::string prefix_;
  double per_minute_;
  double burst_;
  domain::LocalRateLimiter fallback_;
  std::atomic<bool> degraded_{false};
};

}  // namespace chat::bus::redis

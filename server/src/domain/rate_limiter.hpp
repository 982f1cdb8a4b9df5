#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace chat::domain {

// A token bucket: `rate_per_s` tokens per second up to `burst`. The clock is passed in so tests
// control time. Not thread-safe; see KeyedRateLimiter for the shared one.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double rate_per_s, double burst, Clock::time_point now) noexcept;

  // Takes one token if there is one. Otherwise returns false and `retry_after` says when one will be.
  bool try_take(Clock::time_point now, std::chrono::milliseconds* retry_after = nullptr) noexcept;

 private:
  double rate_per_s_;
  double burst_;
  double tokens_;
  Clock::time_point updated_;
};

// Token buckets by key (an IP address, an account name). Thread-safe: the auth endpoints it guards
// are not on the hot path, so one mutex is enough. Buckets that are full again are forgotten, which
// bounds memory by the keys active within one refill period.
class KeyedRateLimiter {
 public:
  using Clock = TokenBucket::Clock;

  KeyedRateLimiter(double per_minute, double burst) noexcept;

  bool try_take(const std::string& key, Clock::time_point now, std::chrono::milliseconds* retry_after);

  std::size_t size() const;

 private:
  void sweep(Clock::time_point now);

  double rate_per_s_;
  double burst_;
  mutable std::mutex mutex_;
  struct Entry {
    TokenBucket bucket;
    Clock::time_point last_used;
  };
  std::unordered_map<std::string, Entry> buckets_;
  Clock::time_point last_sweep_{};
};

// The per-IP and per-account auth limits, behind one interface so a cluster can share them:
// LocalRateLimiter (one process) and bus::redis::RedisRateLimiter (GCRA in Redis, shared by every
// node; per-node fallback while Redis is away). `now_ms` is the wall clock (nodes share it).
// The conformance suite runs the same cases on both.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Takes one token from `key`'s bucket. False when empty; `retry_after` says when one will be.
  virtual bool try_take(const std::string& key,
                        std::int64_t now_ms,
                        std::chrono::milliseconds* retry_after) = 0;
};

// `per_minute` tokens per minute, up to `burst`, per key, in this process.
class LocalRateLimiter final : public RateLimiter {
 public:
  LocalRateLimiter(double per_minute, double burst) noexcept : limiter_(per_minute, burst) {}
  bool try_take(const std::string& key,
                std::int64_t now_ms,
                std::chrono::milliseconds* retry_after) override {
    return limiter_.try_take(key, Clock::time_point(std::chrono::milliseconds(now_ms)), retry_after);
  }
  std::size_t size() const { return limiter_.size(); }

 private:
  using Clock = KeyedRateLimiter::Clock;
  KeyedRateLimiter limiter_;
};

}  // namespace chat::domain

#include "domain/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace chat::domain {

TokenBucket::TokenBucket(double rate_per_s, double burst, Clock::time_point now) noexcept
    : rate_per_s_(rate_per_s), burst_(burst), tokens_(burst), updated_(now) {}

bool TokenBucket::try_take(Clock::time_point now, std::chrono::milliseconds* retry_after) noexcept {
  if (now > updated_) {
    const double elapsed_s = std::chrono::duration<double>(now - updated_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed_s * rate_per_s_);
    updated_ = now;
  }
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  if (retry_after != nullptr) {
    const double wait_s = rate_per_s_ > 0 ? (1.0 - tokens_) / rate_per_s_ : 3600.0;
    *retry_after = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_s * 1000.0)));
  }
  return false;
}

KeyedRateLimiter::KeyedRateLimiter(double per_minute, double burst) noexcept
    : rate_per_s_(per_minute / 60.0), burst_(burst) {}

bool KeyedRateLimiter::try_take(const std::string& key,
                                Clock::time_point now,
                                std::chrono::milliseconds* retry_after) {
  std::lock_guard lock(mutex_);
  sweep(now);
  auto it = buckets_.try_emplace(key, Entry{TokenBucket(rate_per_s_, burst_, now), now}).first;
  it->second.last_used = now;
  return it->second.bucket.try_take(now, retry_after);
}

std::size_t KeyedRateLimiter::size() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

void KeyedRateLimiter::sweep(Clock::time_point now) {
  // A bucket refills completely within burst / rate seconds; after that it equals a new one.
  const auto full_after = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(rate_per_s_ > 0 ? burst_ / rate_per_s_ : 3600.0));
  if (now - last_sweep_ < full_after) return;
  last_sweep_ = now;
  // A bucket untouched for a full refill period is indistinguishable from a fresh one.
  std::erase_if(buckets_, [&](const auto& kv) { return now - kv.second.last_used >= full_after; });
}

}  // namespace chat::domain

#include "bus/redis/redis_rate_limiter.hpp"

#include "bus/redis/redis_client.hpp"
#include "obs/log.hpp"

#include <cmath>

namespace chat::bus::redis {

namespace {

// KEYS: bucket. ARGV: now (us), emission interval T (us), burst. Returns {allowed, retry_after_us}.
// Allowed when the new TAT (max(tat, now) + T) is at most burst * T ahead of now.
constexpr const char* kGcra = R"lua(
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + t
local wait = new - t * burst - now
if wait > 0 then return {0, wait} end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
return {1, 0}
)lua";

}  // namespace

RedisRateLimiter::RedisRateLimiter(RedisClient& client, std::string prefix, double per_minute, double burst)
    : client_(client),
      prefix_(std::move(prefix)),
      per_minute_(per_minute),
      burst_(burst),
      fallback_(per_minute, burst) {}

bool RedisRateLimiter::try_take(const std::string& key,
                                std::int64_t now_ms,
                                std::chrono::milliseconds* retry_after) {
  const auto interval_us = static_cast<std::int64_t>(std::llround(60e6 / per_minute_));
  static const std::string gcra(kGcra);
  try {
    const auto r =
        client_.eval(gcra, {prefix_ + key},
                     {std::to_string(now_ms * 1000), std::to_string(std::max<std::int64_t>(1, interval_us)),
                      std::to_string(static_cast<std::int64_t>(std::floor(burst_)))});
    if (r.type != Reply::Type::array || r.elements.size() != 2)
      throw RedisUnavailable("rate limit: bad reply " + r.str);
    if (degraded_.exchange(false)) obs::log_info("rate limits: redis reachable again; limits are shared");
    if (r.elements[0].integer == 1) return true;
    if (retry_after != nullptr)
      *retry_after = std::chrono::milliseconds((r.elements[1].integer + 999) / 1000);
    return false;
  } catch (const RedisUnavailable& e) {
    if (!degraded_.exchange(true))
      obs::log_warn(std::string("rate limits: redis unavailable, using per-node buckets: ") + e.what());
    return fallback_.try_take(key, now_ms, retry_after);
  }
}

}  // namespace chat::bus::redis

#pragma once

#include <boost/json/object.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace bench {

// Log-linear latency histogram in nanoseconds, HDR style: 64 sub-buckets per power of two, so a
// recorded value is off by at most 1/64 (< 1.6 %). Values from 0 to 2^41 ns (~36 min); larger ones
// land in the last bucket. Mergeable across worker processes through encode()/decode().
// Not thread-safe: one per worker io_context.
class Histogram {
 public:
  static constexpr int sub_buckets = 64;
  static constexpr int max_exponent = 41;
  static constexpr int bucket_count = sub_buckets + (max_exponent - 6) * sub_buckets;

  void add(std::int64_t ns) noexcept;
  void merge(const Histogram& other) noexcept;
  void reset() noexcept { *this = Histogram{}; }

  std::uint64_t count() const noexcept { return count_; }
  std::int64_t max() const noexcept { return max_; }
  double mean_ns() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
  // The value at percentile p (0..100): the middle of its bucket, capped at max().
  std::int64_t percentile(double p) const noexcept;

  // Sparse text form "n,sum,max;idx:count,idx:count,..." for the worker -> coordinator pipe.
  std::string encode() const;
  static Histogram decode(std::string_view text);

  // {count, mean_ms, p50_ms, p90_ms, p99_ms, p999_ms, max_ms}; null percentiles when empty.
  boost::json::object summary_ms() const;

 private:
  static int index_of(std::int64_t v) noexcept;
  static std::int64_t lower_bound(int index) noexcept;
  static std::int64_t width(int index) noexcept;

  std::array<std::uint64_t, bucket_count> buckets_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
  std::int64_t max_ = 0;
};

}  // namespace bench

#pragma once

#include "domain/error_code.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

// Process-wide counters, rendered in the Prometheus text format at /metrics. Every field is an
// atomic updated with relaxed order from any thread: a scrape is a snapshot, not a transaction.
namespace chat::obs {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value) noexcept;
  void render(std::string& out, const char* name, const char* help) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;  // one per bound, plus +Inf
  std::atomic<std::uint64_t> total_{0};
  std::atomic<double> sum_{0};
};

class Metrics {
 public:
  Metrics();

  std::atomic<std::int64_t> connections{0};
  std::atomic<std::uint64_t> http_requests{0};
  std::atomic<std::uint64_t> messages_in{0};
  std::atomic<std::uint64_t> messages_out{0};
  std::atomic<std::uint64_t> ws_slow_consumers{0};
  Histogram store_write_seconds;
  Histogram store_batch_size;
  Histogram store_commit_window_seconds;  // only batches that waited in a commit window
  Histogram store_publish_seconds;        // SQLite: one publish of deferred batches

  void count_error(domain::ErrorCode code) noexcept;
  std::string render() const;

 private:
  static constexpr std::size_t error_codes = static_cast<std::size_t>(domain::ErrorCode::internal) + 1;
  std::array<std::atomic<std::uint64_t>, error_codes> errors_{};
};

}  // namespace chat::obs

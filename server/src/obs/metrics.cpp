#include "obs/metrics.hpp"

#include <cstdio>

namespace chat::obs {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double value) noexcept {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  total_.fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

void Histogram::render(std::string& out, const char* name, const char* help) const {
  char line[256];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  out += line;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, bounds_[i],
                  static_cast<unsigned long long>(cumulative));
    out += line;
  }
  cumulative += counts_.back().load(std::memory_order_relaxed);
  std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name,
                static_cast<unsigned long long>(cumulative), name, sum_.load(std::memory_order_relaxed), name,
                static_cast<unsigned long long>(total_.load(std::memory_order_relaxed)));
  out += line;
}

Metrics::Metrics()
    : store_write_seconds({0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}),
      store_batch_size({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}),
      store_commit_window_seconds({0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01}),
      store_publish_seconds({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}) {}

void Metrics::count_error(domain::ErrorCode code) noexcept {
  errors_[static_cast<std::size_t>(code)].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::render() const {
  std::string out;
  char line[256];
  const auto counter = [&](const char* name, const char* help, std::uint64_t value) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                  static_cast<unsigned long long>(value));
    out += line;
  };
  std::snprintf(line, sizeof line,
                "# HELP chatd_connections Open WebSocket connections.\n# TYPE chatd_connections gauge\n"
                "chatd_connections %lld\n",
                static_cast<long long>(connections.load(std::memory_order_relaxed)));
  out += line;
  counter("chatd_http_requests_total", "HTTP requests handled.",
          http_requests.load(std::memory_order_relaxed));
  counter("chatd_messages_in_total", "Messages accepted and stored.",
          messages_in.load(std::memory_order_relaxed));
  counter("chatd_messages_out_total", "Frames pushed to devices.",
          messages_out.load(std::memory_order_relaxed));
  counter("chatd_ws_slow_consumers_total", "WebSockets closed because their send queue overflowed.",
          ws_slow_consumers.load(std::memory_order_relaxed));
  out +=
      "# HELP chatd_errors_total Errors answered to clients, by code.\n# TYPE chatd_errors_total counter\n";
  for (std::size_t i = 0; i < errors_.size(); ++i) {
    const auto code = domain::to_string(static_cast<domain::ErrorCode>(i));
    std::snprintf(line, sizeof line, "chatd_errors_total{code=\"%.*s\"} %llu\n",
                  static_cast<int>(code.size()), code.data(),
                  static_cast<unsigned long long>(errors_[i].load(std::memory_order_relaxed)));
    out += line;
  }
  store_write_seconds.render(out, "chatd_store_write_seconds", "Duration of one group-commit batch.");
  store_batch_size.render(out, "chatd_store_batch_size", "Write jobs per group-commit batch.");
  store_commit_window_seconds.render(out, "chatd_store_commit_window_seconds",
                                     "Time the store writer waited for more jobs before a batch (only "
                                     "batches that waited).");
  store_publish_seconds.render(out, "chatd_store_publish_seconds",
                               "Duration of one commit of the batches the append log made durable (SQLite).");
  return out;
}

}  // namespace chat::obs

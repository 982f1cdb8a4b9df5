#pragma once

#include "domain/types.hpp"

#include <cstdint>

namespace chat::domain {

// Time-sortable 63-bit ids: 41 bits of milliseconds since 2024-01-01 (69 years), 10 bits of node
// id (cluster nodes), 12 bits of a per-millisecond counter. Not thread-safe: one generator per
// writer thread. If the clock steps back, ids keep increasing from the last one issued.
class SnowflakeGenerator {
 public:
  static constexpr TimeMs epoch_ms = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
  static constexpr int node_bits = 10;
  static constexpr int counter_bits = 12;

  explicit SnowflakeGenerator(std::uint32_t node_id) noexcept;

  std::int64_t next(TimeMs now_ms) noexcept;

  // Continues above an id issued earlier (by a previous run), whatever the clock says now.
  void resume_after(std::int64_t id) noexcept;

  static TimeMs time_of(std::int64_t id) noexcept { return (id >> (node_bits + counter_bits)) + epoch_ms; }

 private:
  std::uint32_t node_id_;
  TimeMs last_ms_ = 0;
  std::uint32_t counter_ = 0;
};

}  // namespace chat::domain

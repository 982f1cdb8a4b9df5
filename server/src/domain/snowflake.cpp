#include "domain/snowflake.hpp"

#include <algorithm>
#include <cassert>

namespace chat::domain {

SnowflakeGenerator::SnowflakeGenerator(std::uint32_t node_id) noexcept
    : node_id_(node_id & ((1U << node_bits) - 1)) {
  assert(node_id < (1U << node_bits) && "node id must fit 10 bits");
}

std::int64_t SnowflakeGenerator::next(TimeMs now_ms) noexcept {
  TimeMs ms = std::max(now_ms - epoch_ms, last_ms_);
  if (ms == last_ms_) {
    if (++counter_ >= (1U << counter_bits)) {
      // 4096 ids in one millisecond: borrow the next millisecond rather than repeat an id.
      ++ms;
      counter_ = 0;
    }
  } else {
    counter_ = 0;
  }
  last_ms_ = ms;
  return (ms << (node_bits + counter_bits)) | (static_cast<std::int64_t>(node_id_) << counter_bits) |
         static_cast<std::int64_t>(counter_);
}

void SnowflakeGenerator::resume_after(std::int64_t id) noexcept {
  const TimeMs ms = id >> (node_bits + counter_bits);
  if (ms > last_ms_ ||
      (ms == last_ms_ && static_cast<std::uint32_t>(id & ((1 << counter_bits) - 1)) > counter_)) {
    last_ms_ = ms;
    counter_ = static_cast<std::uint32_t>(id & ((1 << counter_bits) - 1));
  }
}

}  // namespace chat::domain

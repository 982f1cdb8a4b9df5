#include "net/ws_out_queue.hpp"

namespace chat::transport::ws {

namespace {
constexpr std::size_t kKeepSlots = 8;
}

void OutQueue::push(gateway::SharedFrame payload, Opcode op, bool raw) {
  bytes_ += payload->size();
  items_.push_back(Item{std::move(payload), op, raw});
}

std::size_t OutQueue::wire_size(const Item& item) noexcept {
  const auto n = item.payload->size();
  if (item.raw) return n;
  return n + (n < 126 ? 2 : n <= 0xFFFF ? 4 : 10);
}

std::size_t OutQueue::gather(std::span<iovec> iov,
                             std::span<std::array<std::uint8_t, kHeaderMax>> headers) const {
  std::size_t used = 0;
  std::size_t headers_used = 0;  // not used / 2: a frame may take one iovec (empty payload, raw)
  std::size_t skip = head_written_;
  for (std::size_t i = head_; i < items_.size() && used + 2 <= iov.size() && headers_used < headers.size();
       ++i) {
    const auto& item = items_[i];
    const auto& payload = *item.payload;
    if (!item.raw) {
      auto& h = headers[headers_used++];
      const auto header_size = encode_header(item.op, payload.size(), h.data());
      if (skip < header_size) {
        iov[used++] = iovec{h.data() + skip, header_size - skip};
        skip = 0;
      } else {
        skip -= header_size;
      }
    }
    if (skip < payload.size()) {
      // sendmsg does not write through iov_base; the payload stays const.
      iov[used++] = iovec{const_cast<char*>(payload.data()) + skip, payload.size() - skip};
    }
    skip = 0;
  }
  return used;
}

void OutQueue::consume(std::size_t n) {
  while (head_ < items_.size()) {
    auto& item = items_[head_];
    const std::size_t left = wire_size(item) - head_written_;
    if (n < left) {
      head_written_ += n;
      return;
    }
    n -= left;
    head_written_ = 0;
    bytes_ -= item.payload->size();
    item.payload.reset();
    ++head_;
  }
  compact();
}

void OutQueue::drop_unstarted() {
  const std::size_t keep = head_written_ > 0 ? head_ + 1 : head_;
  for (std::size_t i = keep; i < items_.size(); ++i) bytes_ -= items_[i].payload->size();
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(keep), items_.end());
  compact();
}

void OutQueue::compact() {
  if (head_ != items_.size()) return;
  items_.clear();
  head_ = 0;
  if (items_.capacity() > kKeepSlots) std::vector<Item>().swap(items_);
}

void OutQueue::clear() {
  std::vector<Item>().swap(items_);
  head_ = 0;
  head_written_ = 0;
  bytes_ = 0;
}

}  // namespace chat::transport::ws

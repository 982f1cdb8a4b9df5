#pragma once

#include "gateway/connection.hpp"
#include "net/ws_codec.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <sys/uio.h>
#include <vector>

namespace chat::transport::ws {

// The frames a connection has yet to write, as shared payloads (never copied: one serialized
// event is shared by every recipient). gather() lays the unwritten part out as iovecs - each
// frame's header, built on the fly, then its payload - for one sendmsg; consume() retires what the
// kernel took, remembering how far into the first frame a partial write got.
class OutQueue {
 public:
  // `raw` entries (the HTTP 101 response) are written as they are, without a frame header.
  void push(gateway::SharedFrame payload, Opcode op, bool raw = false);

  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t frames() const noexcept { return items_.size() - head_; }
  // Payload bytes waiting (what the slow-consumer cap counts).
  std::size_t bytes() const noexcept { return bytes_; }
  // True when the first frame is partly written (it must then go out whole).
  bool mid_frame() const noexcept { return head_written_ > 0; }

  // Fills `iov` (two per frame at most) with the unwritten bytes; `headers` has room for
  // iov.size() / 2 headers. Returns the number of iovecs used.
  std::size_t gather(std::span<iovec> iov, std::span<std::array<std::uint8_t, kHeaderMax>> headers) const;
  // Retires `n` written bytes.
  void consume(std::size_t n);
  // Drops every frame not yet started (the slow-consumer cut); a partly written one stays.
  void drop_unstarted();
  // Gives the memory back after a burst (an idle connection keeps at most a few slots).
  void clear();

 private:
  struct Item {
    gateway::SharedFrame payload;
    Opcode op;
    bool raw;
  };
  static std::size_t wire_size(const Item& item) noexcept;
  void compact();

  std::vector<Item> items_;
  std::size_t head_ = 0;
  std::size_t head_written_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace chat::transport::ws

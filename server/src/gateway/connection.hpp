#pragma once

#include "domain/types.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace chat::gateway {

// One serialized frame, shared read-only by every recipient (serialize once per event).
using SharedFrame = std::shared_ptr<const std::string>;

// How soon a delivered frame must leave. `prompt`: with the I/O thread's next flush (acks, direct
// messages, receipts, control frames). `batchable`: a large group's fan-out; when the I/O thread
// is busy writing, it may wait up to the coalescing window (--ws-coalesce-ms) so that several of a
// recipient's frames leave in one write. A prompt frame takes the batchable ones queued before it.
enum class Urgency : std::uint8_t { prompt, batchable };

// What the hub needs from a live, authenticated WebSocket. Implemented by net::WsSession. Both
// calls are made on the connection's own I/O thread.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void deliver(SharedFrame frame, Urgency urgency) = 0;
  virtual void close_with(std::uint16_t code, std::string_view reason) = 0;
  virtual std::uint64_t connection_id() const noexcept = 0;
  virtual domain::SessionId session_id() const noexcept = 0;
};

}  // namespace chat::gateway

#pragma once

// RFC 6455 server-side framing, sans I/O: the decoder turns bytes a client sent into events, the
// encoder writes the header of a frame the server sends. No sockets, no allocation on the common
// path (an unfragmented message is unmasked in place and returned as a view of the input).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace chat::transport::ws {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// Close codes the server sends (RFC 6455 7.4.1).
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseNoStatus = 1005;  // never on the wire: "the peer sent no code"
inline constexpr std::uint16_t kCloseInvalidPayload = 1007;
inline constexpr std::uint16_t kCloseTooBig = 1009;

inline constexpr std::size_t kControlPayloadMax = 125;
inline constexpr std::size_t kHeaderMax = 10;  // server frames are never masked

// Writes the header of one final, unmasked frame carrying `payload_size` bytes; returns its length
// (2, 4 or 10).
std::size_t encode_header(Opcode op, std::uint64_t payload_size, std::uint8_t* out) noexcept;

// The payload of a close frame: the code in network order, then the reason cut to fit 125 bytes
// (on a UTF-8 boundary).
std::string close_payload(std::uint16_t code, std::string_view reason);

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 4.2.2: base64(SHA-1(key + GUID))).
std::string accept_key(std::string_view client_key);

// Close codes a peer may send (RFC 6455 7.4 and the IANA registry).
bool is_valid_close_code(std::uint16_t code) noexcept;

struct Event {
  enum class Kind : std::uint8_t {
    need_more,  // no complete frame yet: keep the unconsumed bytes and call again with more
    text,       // a whole text message (valid UTF-8)
    binary,     // a whole binary message
    ping,
    pong,
    close,  // the peer's close frame: code (kCloseNoStatus if it sent none) and reason
    fail,   // the connection must fail: send a close frame with `code`, then drop the connection
  };
  Kind kind = Kind::need_more;
  std::uint16_t code = 0;
  std::string_view payload;  // message, ping/pong payload, close reason, or why it failed
};

// Decodes client frames. Client frames must be masked; fragmented messages are assembled (control
// frames may arrive between the fragments); a message larger than `message_max` fails with 1009 as
// soon as a frame header announces it, invalid UTF-8 in a text message with 1007, everything else
// that breaks RFC 6455 (reserved bits, unknown opcodes, unmasked or fragmented control frames,
// control payloads over 125 bytes, non-minimal lengths, stray continuations) with 1002.
class Decoder {
 public:
  explicit Decoder(std::size_t message_max) noexcept : message_max_(message_max) {}

  // Decodes from the front of `in` up to and including the next event; `consumed` says how many
  // bytes of `in` were used (the rest must be passed again). Payloads are unmasked in place. The
  // views of an event stay valid until the next call, or until `in` is changed.
  Event next(std::span<char> in, std::size_t& consumed);

  // True while a fragmented message is being assembled (its fragments are held here).
  bool assembling() const noexcept { return message_op_ != 0; }
  // Frees the assembly buffer (after the connection is done).
  void reset() noexcept;

 private:
  std::string message_;  // fragments of the message being assembled
  std::size_t message_max_;
  std::uint8_t message_op_ = 0;  // opcode of the message being assembled, 0 when none
  bool release_ = false;         // message_ was handed out by the last call: clear it on the next
};

}  // namespace chat::transport::ws

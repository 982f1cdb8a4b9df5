#include "net/ws_codec.hpp"

#include "domain/utf8.hpp"

#include <boost/beast/websocket/detail/hybi13.hpp>

#include <cstring>

namespace chat::transport::ws {

namespace {

void unmask(char* p, std::size_t n, const std::uint8_t key[4]) noexcept {
  std::uint32_t k32;
  std::memcpy(&k32, key, 4);
  const std::uint64_t k64 = (static_cast<std::uint64_t>(k32) << 32) | k32;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= k64;
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(static_cast<std::uint8_t>(p[i]) ^ key[i % 4]);
}

Event fail(std::uint16_t code, std::string_view why) {
  return Event{Event::Kind::fail, code, why};
}

}  // namespace

std::size_t encode_header(Opcode op, std::uint64_t payload_size, std::uint8_t* out) noexcept {
  out[0] = static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(op));
  if (payload_size < 126) {
    out[1] = static_cast<std::uint8_t>(payload_size);
    return 2;
  }
  if (payload_size <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(payload_size >> 8);
    out[3] = static_cast<std::uint8_t>(payload_size);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(payload_size >> (56 - 8 * i));
  return 10;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  if (reason.size() > kControlPayloadMax - 2) {
    reason = reason.substr(0, kControlPayloadMax - 2);
    // Do not cut a UTF-8 sequence in half: drop continuation bytes, then the lead byte.
    while (!reason.empty() && !domain::is_valid_utf8(reason)) reason.remove_suffix(1);
  }
  std::string out;
  out.reserve(2 + reason.size());
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason);
  return out;
}

std::string accept_key(std::string_view client_key) {
  boost::beast::websocket::detail::sec_ws_accept_type accept;
  boost::beast::websocket::detail::make_sec_ws_accept(accept, client_key);
  return std::string(accept.data(), accept.size());
}

bool is_valid_close_code(std::uint16_t code) noexcept {
  if (code >= 1000 && code <= 1014) return code != 1004 && code != 1005 && code != 1006;
  return code >= 3000 && code <= 4999;
}

void Decoder::reset() noexcept {
  std::string().swap(message_);
  message_op_ = 0;
  release_ = false;
}

Event Decoder::next(std::span<char> in, std::size_t& consumed) {
  consumed = 0;
  if (release_) {
    // The last call handed out the assembled message: give its memory back (idle connections
    // hold no buffer).
    std::string().swap(message_);
    release_ = false;
  }
  for (;;) {
    char* const base = in.data() + consumed;
    const std::size_t avail = in.size() - consumed;
    if (avail < 2) return {};
    const auto b0 = static_cast<std::uint8_t>(base[0]);
    const auto b1 = static_cast<std::uint8_t>(base[1]);
    const bool fin = (b0 & 0x80) != 0;
    const std::uint8_t op = b0 & 0x0F;
    if ((b0 & 0x70) != 0) return fail(kCloseProtocolError, "reserved bits set");
    const bool control = (op & 0x8) != 0;
    if (op != 0x0 && op != 0x1 && op != 0x2 && op != 0x8 && op != 0x9 && op != 0xA)
      return fail(kCloseProtocolError, "unknown opcode");
    if ((b1 & 0x80) == 0) return fail(kCloseProtocolError, "client frames must be masked");
    const std::uint8_t len7 = b1 & 0x7F;
    if (control && !fin) return fail(kCloseProtocolError, "fragmented control frame");
    if (control && len7 > kControlPayloadMax) return fail(kCloseProtocolError, "control frame too long");
    std::size_t header = 2 + 4;
    if (len7 == 126) header += 2;
    if (len7 == 127) header += 8;
    if (avail < header) return {};
    std::uint64_t len = len7;
    if (len7 == 126) {
      len = (static_cast<std::uint64_t>(static_cast<std::uint8_t>(base[2])) << 8) |
            static_cast<std::uint8_t>(base[3]);
      if (len < 126) return fail(kCloseProtocolError, "non-minimal length");
    } else if (len7 == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<std::uint8_t>(base[2 + i]);
      if (len >> 63) return fail(kCloseProtocolError, "length out of range");
      if (len <= 0xFFFF) return fail(kCloseProtocolError, "non-minimal length");
    }
    if (!control) {
      if (op == 0x0 && message_op_ == 0) return fail(kCloseProtocolError, "continuation without a message");
      if (op != 0x0 && message_op_ != 0)
        return fail(kCloseProtocolError, "new message inside a fragmented one");
      // Checked on the header, before the payload arrives: nothing that large is ever buffered.
      if (len > message_max_ || message_.size() + len > message_max_)
        return fail(kCloseTooBig, "message too big");
    }
    if (avail - header < len) return {};
    std::uint8_t key[4];
    std::memcpy(key, base + header - 4, 4);
    char* const payload = base + header;
    const auto n = static_cast<std::size_t>(len);
    unmask(payload, n, key);
    consumed += header + n;
    const std::string_view data(payload, n);

    if (control) {
      if (op == 0x9) return Event{Event::Kind::ping, 0, data};
      if (op == 0xA) return Event{Event::Kind::pong, 0, data};
      if (n == 0) return Event{Event::Kind::close, kCloseNoStatus, {}};
      if (n == 1) return fail(kCloseProtocolError, "close payload of one byte");
      const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(data[0]) << 8) |
                                                   static_cast<std::uint8_t>(data[1]));
      if (!is_valid_close_code(code)) return fail(kCloseProtocolError, "invalid close code");
      const auto reason = data.substr(2);
      if (!domain::is_valid_utf8(reason)) return fail(kCloseInvalidPayload, "close reason is not UTF-8");
      return Event{Event::Kind::close, code, reason};
    }

    if (fin && op != 0x0) {
      // The common case: a whole message in one frame, handed out in place.
      if (op == 0x1 && !domain::is_valid_utf8(data)) return fail(kCloseInvalidPayload, "invalid UTF-8");
      return Event{op == 0x1 ? Event::Kind::text : Event::Kind::binary, 0, data};
    }
    if (op != 0x0) message_op_ = op;
    message_.append(data);
    if (!fin) continue;  // more fragments follow; control frames may come in between
    const std::uint8_t message_op = message_op_;
    message_op_ = 0;
    release_ = true;
    if (message_op == 0x1 && !domain::is_valid_utf8(message_))
      return fail(kCloseInvalidPayload, "invalid UTF-8");
    return Event{message_op == 0x1 ? Event::Kind::text : Event::Kind::binary, 0, message_};
  }
}

}  // namespace chat::transport::ws

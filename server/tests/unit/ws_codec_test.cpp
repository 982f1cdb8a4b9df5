// net/ws_codec and net/ws_out_queue: RFC 6455 server-side framing without I/O, and the gathered
// write path on a real socketpair. Client frames are built here by hand, masked as a browser
// would, so every test states the exact bytes on the wire.

#include "net/ws_codec.hpp"

#include "net/ws_out_queue.hpp"

#include <cerrno>
#include <cstdint>
#include <gtest/gtest.h>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

namespace ws = chat::transport::ws;
using Kind = ws::Event::Kind;

constexpr std::size_t kMax = 1 << 20;

// One client frame: FIN/opcode byte as given, masked with a fixed key.
std::string client_frame(std::uint8_t b0, std::string_view payload, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>(b0));
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  const auto n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xFF));
  }
  const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < n; ++i)
    f.push_back(masked ? static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ key[i % 4]) : payload[i]);
  return f;
}

struct Decoded {
  std::vector<std::pair<Kind, std::string>> events;
  std::uint16_t code = 0;  // of the last close/fail
  std::size_t consumed = 0;
};

// Feeds `wire` in chunks of `chunk` bytes (keeping unconsumed bytes, as the session does) and
// collects the events until need_more at the end or a failure.
Decoded decode(std::string wire, std::size_t chunk = 1 << 30) {
  ws::Decoder d(kMax);
  Decoded out;
  std::string pending;
  std::size_t fed = 0;
  while (fed < wire.size()) {
    const auto n = std::min(chunk, wire.size() - fed);
    pending.append(wire, fed, n);
    fed += n;
    for (;;) {
      std::size_t used = 0;
      auto ev = d.next({pending.data(), pending.size()}, used);
      const std::string payload(ev.payload);
      pending.erase(0, used);
      out.consumed += used;
      if (ev.kind == Kind::need_more) break;
      out.events.emplace_back(ev.kind, payload);
      if (ev.kind == Kind::close || ev.kind == Kind::fail) out.code = ev.code;
      if (ev.kind == Kind::fail) return out;
    }
  }
  return out;
}

TEST(WsCodec, AcceptKeyIsTheRfc6455Example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsCodec, EncodesMinimalHeaders) {
  std::uint8_t h[ws::kHeaderMax];
  EXPECT_EQ(ws::encode_header(ws::Opcode::text, 0, h), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 0x00);
  EXPECT_EQ(ws::encode_header(ws::Opcode::text, 125, h), 2u);
  EXPECT_EQ(h[1], 125);
  EXPECT_EQ(ws::encode_header(ws::Opcode::close, 126, h), 4u);
  EXPECT_EQ(h[0], 0x88);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 126);
  EXPECT_EQ(ws::encode_header(ws::Opcode::text, 65535, h), 4u);
  EXPECT_EQ(ws::encode_header(ws::Opcode::text, 65536, h), 10u);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ(h[7], 1);  // 0x00 00 00 00 00 01 00 00
  EXPECT_EQ(h[9], 0);
}

TEST(WsCodec, ClosePayloadCarriesCodeAndCutsReasonOnUtf8Boundary) {
  auto p = ws::close_payload(4008, "send queue overflow; resync");
  ASSERT_GE(p.size(), 2u);
  EXPECT_EQ(static_cast<std::uint8_t>(p[0]), 4008 >> 8);
  EXPECT_EQ(static_cast<std::uint8_t>(p[1]), 4008 & 0xFF);
  EXPECT_EQ(p.substr(2), "send queue overflow; resync");
  std::string long_reason(122, 'a');
  long_reason += "\xC3\xA9";  // 'é' straddles byte 123
  p = ws::close_payload(1000, long_reason);
  EXPECT_LE(p.size(), ws::kControlPayloadMax);
  EXPECT_EQ(p.substr(2), std::string(122, 'a'));
}

TEST(WsCodec, DecodesMaskedTextInPlaceAndByteByByte) {
  const auto wire = client_frame(0x81, R"({"type":"ping"})") + client_frame(0x81, "second");
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{1} << 30}) {
    auto d = decode(wire, chunk);
    ASSERT_EQ(d.events.size(), 2u) << "chunk " << chunk;
    EXPECT_EQ(d.events[0].first, Kind::text);
    EXPECT_EQ(d.events[0].second, R"({"type":"ping"})");
    EXPECT_EQ(d.events[1].second, "second");
    EXPECT_EQ(d.consumed, wire.size());
  }
}

TEST(WsCodec, IncompleteFrameConsumesNothing) {
  ws::Decoder d(kMax);
  auto wire = client_frame(0x81, std::string(300, 'x'));
  std::size_t used = 99;
  auto ev = d.next({wire.data(), wire.size() - 1}, used);
  EXPECT_EQ(ev.kind, Kind::need_more);
  EXPECT_EQ(used, 0u);
  ev = d.next({wire.data(), wire.size()}, used);
  EXPECT_EQ(ev.kind, Kind::text);
  EXPECT_EQ(used, wire.size());
  EXPECT_EQ(ev.payload, std::string(300, 'x'));
}

TEST(WsCodec, LengthEncodingsUpToTheLimit) {
  for (std::size_t n : {std::size_t{125}, std::size_t{126}, std::size_t{65535}, std::size_t{65536}, kMax}) {
    auto d = decode(client_frame(0x82, std::string(n, 'b')));
    ASSERT_EQ(d.events.size(), 1u) << n;
    EXPECT_EQ(d.events[0].first, Kind::binary);
    EXPECT_EQ(d.events[0].second.size(), n);
  }
}

TEST(WsCodec, FragmentedMessageWithInterleavedControlFrames) {
  const auto wire = client_frame(0x01, "hel") + client_frame(0x89, "p1") + client_frame(0x00, "lo ") +
                    client_frame(0x8A, "") + client_frame(0x80, "world");
  for (std::size_t chunk : {std::size_t{1}, std::size_t{5}, std::size_t{1} << 30}) {
    auto d = decode(wire, chunk);
    ASSERT_EQ(d.events.size(), 3u) << chunk;
    EXPECT_EQ(d.events[0], std::make_pair(Kind::ping, std::string("p1")));
    EXPECT_EQ(d.events[1], std::make_pair(Kind::pong, std::string()));
    EXPECT_EQ(d.events[2], std::make_pair(Kind::text, std::string("hello world")));
  }
}

TEST(WsCodec, FragmentedUtf8SplitAcrossFramesIsValid) {
  // 'é' = C3 A9, split between two fragments: validated on the whole message.
  auto d = decode(client_frame(0x01, "caf\xC3") + client_frame(0x80, "\xA9"));
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].second, "caf\xC3\xA9");
}

TEST(WsCodec, CloseFrames) {
  auto d = decode(client_frame(0x88, ""));
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].first, Kind::close);
  EXPECT_EQ(d.code, ws::kCloseNoStatus);
  d = decode(client_frame(0x88, std::string("\x03\xE8") + "bye"));
  EXPECT_EQ(d.events[0], std::make_pair(Kind::close, std::string("bye")));
  EXPECT_EQ(d.code, 1000);
  d = decode(client_frame(0x88, std::string("\x0F\xA0", 2)));  // 4000: application range
  EXPECT_EQ(d.code, 4000);
}

struct Failure {
  const char* name;
  std::string wire;
  std::uint16_t code;
};

TEST(WsCodec, ProtocolViolationsFailWithTheRightCode) {
  const std::vector<Failure> cases = {
      {"unmasked client frame", client_frame(0x81, "hi", false), 1002},
      {"reserved bit 1", client_frame(0xC1, "hi"), 1002},
      {"reserved bit 3", client_frame(0x91, "hi"), 1002},
      {"opcode 3", client_frame(0x83, "hi"), 1002},
      {"opcode 0xB", client_frame(0x8B, ""), 1002},
      {"fragmented ping", client_frame(0x09, "x"), 1002},
      {"ping of 126 bytes", client_frame(0x89, std::string(126, 'p')), 1002},
      {"continuation first", client_frame(0x80, "x"), 1002},
      {"text inside fragmented text", client_frame(0x01, "a") + client_frame(0x81, "b"), 1002},
      {"close of one byte", client_frame(0x88, "\x03"), 1002},
      {"close code 1005", client_frame(0x88, std::string("\x03\xED", 2)), 1002},
      {"close code 999", client_frame(0x88, std::string("\x03\xE7", 2)), 1002},
      {"close code 5000", client_frame(0x88, std::string("\x13\x88", 2)), 1002},
      {"invalid UTF-8 text", client_frame(0x81, "\xC3\x28"), 1007},
      {"surrogate in text", client_frame(0x81, "\xED\xA0\x80"), 1007},
      {"invalid UTF-8 fragmented", client_frame(0x01, "ok") + client_frame(0x80, "\xFF"), 1007},
      {"invalid UTF-8 close reason", client_frame(0x88, std::string("\x03\xE8\xFF", 3)), 1007},
  };
  for (const auto& c : cases) {
    auto d = decode(c.wire);
    ASSERT_FALSE(d.events.empty()) << c.name;
    EXPECT_EQ(d.events.back().first, Kind::fail) << c.name;
    EXPECT_EQ(d.code, c.code) << c.name;
  }
}

TEST(WsCodec, TooBigFailsOnTheHeaderBeforeThePayload) {
  // Only the 14-byte header of a 1 MiB + 1 frame: 1009 at once, nothing buffered.
  auto wire = client_frame(0x81, std::string(kMax + 1, 'x')).substr(0, 14);
  ws::Decoder d(kMax);
  std::size_t used = 0;
  auto ev = d.next({wire.data(), wire.size()}, used);
  EXPECT_EQ(ev.kind, Kind::fail);
  EXPECT_EQ(ev.code, ws::kCloseTooBig);
  // Fragments count together: 2 x 600 KiB fails on the second header.
  const std::string part(600 * 1024, 'y');
  auto two = decode(client_frame(0x01, part) + client_frame(0x80, part));
  EXPECT_EQ(two.events.back().first, Kind::fail);
  EXPECT_EQ(two.code, ws::kCloseTooBig);
}

TEST(WsCodec, NonMinimalLengthIsAProtocolError) {
  std::string wire = "\x81\xFE";       // masked, 16-bit length ...
  wire += std::string("\x00\x05", 2);  // ... of 5
  wire += std::string("\x00\x00\x00\x00", 4) + "hello";
  auto d = decode(wire);
  EXPECT_EQ(d.code, ws::kCloseProtocolError);
}

// ---- the gathered write path ----

// Reads every byte the socket has until `want` bytes arrived; decodes server frames.
std::vector<std::pair<std::uint8_t, std::string>> parse_server_frames(const std::string& bytes) {
  std::vector<std::pair<std::uint8_t, std::string>> frames;
  std::size_t i = 0;
  while (i + 2 <= bytes.size()) {
    const auto b0 = static_cast<std::uint8_t>(bytes[i]);
    const auto b1 = static_cast<std::uint8_t>(bytes[i + 1]);
    EXPECT_EQ(b1 & 0x80, 0) << "server frames are not masked";
    std::uint64_t len = b1 & 0x7F;
    std::size_t h = 2;
    if (len == 126) {
      len = (static_cast<std::uint8_t>(bytes[i + 2]) << 8) | static_cast<std::uint8_t>(bytes[i + 3]);
      h = 4;
    } else if (len == 127) {
      len = 0;
      for (int k = 0; k < 8; ++k) len = (len << 8) | static_cast<std::uint8_t>(bytes[i + 2 + k]);
      h = 10;
    }
    frames.emplace_back(b0, bytes.substr(i + h, len));
    i += h + len;
  }
  EXPECT_EQ(i, bytes.size());
  return frames;
}

class OutQueueSocket : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
    int small = 4096;  // force partial writes
    ::setsockopt(fds_[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  // One flush attempt, as the session does it: returns the sendmsg calls made.
  int flush(ws::OutQueue& q) {
    int calls = 0;
    while (!q.empty()) {
      msghdr msg{};
      msg.msg_iov = iov_.data();
      msg.msg_iovlen = q.gather(iov_, headers_);
      ++calls;
      const ssize_t n = ::sendmsg(fds_[0], &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << errno;
        return calls;
      }
      q.consume(static_cast<std::size_t>(n));
    }
    return calls;
  }
  std::string drain() {
    std::string got;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fds_[1], buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }

  int fds_[2]{};
  std::array<iovec, 512> iov_{};
  std::array<std::array<std::uint8_t, ws::kHeaderMax>, 256> headers_{};
};

TEST_F(OutQueueSocket, ManySmallFramesGoOutInOneSendmsg) {
  ws::OutQueue q;
  auto shared = std::make_shared<const std::string>(R"({"type":"message","seq":1})");
  for (int i = 0; i < 20; ++i) q.push(shared, ws::Opcode::text);  // one payload, 20 recipients' worth
  EXPECT_EQ(q.bytes(), 20 * shared->size());
  EXPECT_EQ(flush(q), 1);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  auto frames = parse_server_frames(drain());
  ASSERT_EQ(frames.size(), 20u);
  for (auto& f : frames) {
    EXPECT_EQ(f.first, 0x81);
    EXPECT_EQ(f.second, *shared);
  }
}

TEST_F(OutQueueSocket, EmptyControlFramesBetweenMessagesKeepTheirOwnHeaders) {
  // A heartbeat ping (empty payload) takes one iovec: the next frame's header must not reuse its
  // header slot. Method: empty ping, text, empty pong, text, empty close in one gather.
  ws::OutQueue q;
  const auto empty = std::make_shared<const std::string>();
  q.push(empty, ws::Opcode::ping);
  q.push(std::make_shared<const std::string>("first"), ws::Opcode::text);
  q.push(empty, ws::Opcode::pong);
  q.push(std::make_shared<const std::string>(std::string(300, 's')), ws::Opcode::text);
  q.push(empty, ws::Opcode::close);
  EXPECT_EQ(flush(q), 1);
  auto frames = parse_server_frames(drain());
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_EQ(frames[0], std::make_pair(std::uint8_t{0x89}, std::string()));
  EXPECT_EQ(frames[1], std::make_pair(std::uint8_t{0x81}, std::string("first")));
  EXPECT_EQ(frames[2], std::make_pair(std::uint8_t{0x8A}, std::string()));
  EXPECT_EQ(frames[3], std::make_pair(std::uint8_t{0x81}, std::string(300, 's')));
  EXPECT_EQ(frames[4], std::make_pair(std::uint8_t{0x88}, std::string()));
}

TEST_F(OutQueueSocket, PartialWritesResumeMidFrameAndKeepOrder) {
  ws::OutQueue q;
  q.push(std::make_shared<const std::string>("HTTP/1.1 101 Switching Protocols\r\n\r\n"), ws::Opcode::text,
         true);
  std::vector<std::string> sent;
  for (int i = 0; i < 600; ++i) {  // > 256 frames: several sendmsg even without back-pressure
    std::string body(static_cast<std::size_t>(i * 37 % 70000), static_cast<char>('a' + i % 26));
    body += '#';
    body += std::to_string(i);
    sent.push_back(body);
    q.push(std::make_shared<const std::string>(body), ws::Opcode::text);
  }
  q.push(std::make_shared<const std::string>(ws::close_payload(1000, "bye")), ws::Opcode::close);
  std::string got;
  int rounds = 0;
  while (!q.empty() && rounds < 100000) {
    flush(q);
    got += drain();
    ++rounds;
  }
  got += drain();
  ASSERT_TRUE(q.empty());
  const std::string http = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  ASSERT_EQ(got.substr(0, http.size()), http);
  auto frames = parse_server_frames(got.substr(http.size()));
  ASSERT_EQ(frames.size(), sent.size() + 1);
  for (std::size_t i = 0; i < sent.size(); ++i) ASSERT_EQ(frames[i].second, sent[i]) << i;
  EXPECT_EQ(frames.back().first, 0x88);
  EXPECT_EQ(frames.back().second.substr(2), "bye");
}

TEST_F(OutQueueSocket, SlowConsumerCutKeepsThePartlyWrittenFrame) {
  ws::OutQueue q;
  const std::string big(200000, 'z');
  q.push(std::make_shared<const std::string>(big), ws::Opcode::text);
  q.push(std::make_shared<const std::string>("dropped"), ws::Opcode::text);
  flush(q);  // the socket buffer takes only part of the first frame
  ASSERT_TRUE(q.mid_frame());
  q.drop_unstarted();
  EXPECT_EQ(q.frames(), 1u);
  EXPECT_EQ(q.bytes(), big.size());
  q.push(std::make_shared<const std::string>(ws::close_payload(4008, "overflow")), ws::Opcode::close);
  std::string got;
  while (!q.empty()) {
    flush(q);
    got += drain();
  }
  got += drain();
  auto frames = parse_server_frames(got);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].second, big);
  EXPECT_EQ(frames[1].first, 0x88);
}

}  // namespace

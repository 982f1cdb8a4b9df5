#include "ws_conn.hpp"

#include "http_client.hpp"

#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstring>
#include <random>

namespace bench {

namespace {
constexpr std::size_t read_message_max_bytes = 2 << 20;
// The read buffer starts small (W1 holds 19 000 idle connections) and doubles up to
// read_buffer_max while reads fill it (W3's receivers get many frames per read).
constexpr std::size_t read_buffer_initial = 4 * 1024;
constexpr std::size_t read_buffer_max = 64 * 1024;
constexpr std::size_t upgrade_response_max = 16 * 1024;
constexpr auto login_timeout = std::chrono::seconds(30);

constexpr unsigned char op_continuation = 0x0;
constexpr unsigned char op_text = 0x1;
constexpr unsigned char op_binary = 0x2;
constexpr unsigned char op_close = 0x8;
constexpr unsigned char op_ping = 0x9;
constexpr unsigned char op_pong = 0xA;

// A handshake key: 16 random bytes, base64 (the server's Sec-WebSocket-Accept is not checked: the
// 101 status is what a benchmark needs to know).
std::string websocket_key(std::uint64_t seed) {
  static constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::mt19937_64 rng(seed);
  unsigned char raw[18] = {};
  for (int i = 0; i < 16; ++i) raw[i] = static_cast<unsigned char>(rng());
  std::string out;
  for (int i = 0; i < 18; i += 3) {
    const unsigned v = (unsigned{raw[i]} << 16) | (unsigned{raw[i + 1]} << 8) | raw[i + 2];
    out += b64[(v >> 18) & 63];
    out += b64[(v >> 12) & 63];
    out += b64[(v >> 6) & 63];
    out += b64[v & 63];
  }
  out.resize(22);
  return out + "==";
}
}  // namespace

WsConn::WsConn(net::io_context& ioc, ConnListener& listener, const ConnSpec& spec, int slot)
    : sock_(ioc),
      login_timer_(ioc),
      mask_state_(std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32) | 1),
      listener_(listener),
      spec_(spec),
      slot_(slot) {}

void WsConn::fail_connect(std::string_view what, const boost::system::error_code& ec) {
  closed_ = true;
  login_check_ = nullptr;
  login_next_ = nullptr;
  login_timer_.cancel();
  boost::system::error_code ignored;
  sock_.close(ignored);
  if (connect_done_) {
    auto done = std::move(connect_done_);
    connect_done_ = nullptr;
    const std::string msg = std::string(what) + (ec ? ": " + ec.message() : std::string());
    done(false, msg);
  }
}

void WsConn::connect(const tcp::endpoint& server, const net::ip::address& local, ConnectDone done) {
  connect_done_ = std::move(done);
  host_ = server.address().to_string() + ":" + std::to_string(server.port());
  target_ = "/ws";
  if (spec_.proto == Proto::nats) target_ = "/";
  if (spec_.proto == Proto::socketio) target_ = "/socket.io/?EIO=4&transport=websocket";
  try {
    open_and_bind(sock_, local);
  } catch (const std::exception& e) {
    fail_connect(std::string("bind: ") + e.what(), {});
    return;
  }
  login_timer_.expires_after(login_timeout);
  login_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec && !self->ready_ && !self->closed_) self->fail_connect("login timeout", {});
  });
  sock_.async_connect(server, [self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return self->fail_connect("tcp connect", ec);
    self->wbuf_ = "GET " + self->target_ + " HTTP/1.1\r\nHost: " + self->host_ +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                  websocket_key(self->mask_state_ ^ static_cast<std::uint64_t>(self->slot_)) +
                  "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    net::async_write(self->sock_, net::buffer(self->wbuf_),
                     [self](boost::system::error_code wec, std::size_t) {
                       self->wbuf_.clear();
                       if (wec) return self->fail_connect("ws handshake write", wec);
                       self->rbuf_.resize(upgrade_response_max);
                       self->read_upgrade_response();
                     });
  });
}

void WsConn::read_upgrade_response() {
  sock_.async_read_some(net::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                          if (ec) return self->fail_connect("ws handshake read", ec);
                          self->rlen_ += n;
                          const std::string_view got(self->rbuf_.data(), self->rlen_);
                          const auto end = got.find("\r\n\r\n");
                          if (end == std::string_view::npos) {
                            if (self->rlen_ >= upgrade_response_max)
                              return self->fail_connect("ws handshake: response too long", {});
                            return self->read_upgrade_response();
                          }
                          if (!got.starts_with("HTTP/1.1 101")) {
                            return self->fail_connect(
                                "ws handshake refused: " + std::string(got.substr(0, got.find('\r'))), {});
                          }
                          // Frames the server sent right after the 101 (NATS's INFO, Socket.IO's open) stay
                          // in the buffer.
                          const auto used = end + 4;
                          std::memmove(self->rbuf_.data(), self->rbuf_.data() + used, self->rlen_ - used);
                          self->rlen_ -= used;
                          self->rbuf_.resize(std::max(read_buffer_initial, self->rlen_));
                          self->rbuf_.shrink_to_fit();
                          self->login();
                          if (self->parse_frames()) self->do_read();
                        });
}

void WsConn::login() {
  auto self = shared_from_this();
  switch (spec_.proto) {
    case Proto::chatd:
      write_then_expect(
          json::serialize(json::object{{"type", "auth"}, {"token", spec_.token}}),
          [self](std::string_view f) {
            boost::system::error_code pec;
            auto v = json::parse(f, pec);
            const auto* o = pec ? nullptr : v.if_object();
            const auto* type = o ? o->if_contains("type") : nullptr;
            if (type == nullptr || !type->is_string() || type->get_string() != "ready") return -1;
            if (const auto* hb = o->if_contains("heartbeat_interval_ms"); hb && hb->is_int64()) {
              self->heartbeat_ms_ = hb->get_int64();
            }
            return 1;
          },
          [self] { self->finish_connect(); });
      return;
    case Proto::nats:
      expect([](std::string_view f) { return f.starts_with("INFO") ? 1 : -1; },
             [self] {
               const json::object connect{{"verbose", false},
                                          {"pedantic", false},
                                          {"auth_token", self->spec_.token},
                                          {"name", "cb" + std::to_string(self->spec_.user)},
                                          {"lang", "chat-bench"},
                                          {"version", "0"},
                                          {"protocol", 1},
                                          {"echo", false},
                                          {"headers", false},
                                          {"no_responders", false}};
               std::string f = "CONNECT " + json::serialize(connect) + "\r\nSUB u." +
                               std::to_string(self->spec_.user) + " 1\r\n";
               if (self->spec_.group_conv) f += "SUB " + self->spec_.conv_id + " 2\r\n";
               f += "PING\r\n";
               self->write_then_expect(
                   f,
                   [](std::string_view r) {
                     if (r.find("-ERR") != std::string_view::npos) return -1;
                     return r.find("PONG\r\n") != std::string_view::npos ? 1 : 0;
                   },
                   [self] { self->finish_connect(); });
             });
      return;
    case Proto::socketio:
      expect([](std::string_view f) { return f.starts_with("0{") ? 1 : -1; },
             [self] {
               self->write_then_expect(
                   "40" + json::serialize(json::object{{"token", self->spec_.token}}),
                   [](std::string_view r) {
                     if (r.starts_with("44")) return -1;
                     return r.starts_with("40") ? 1 : 0;
                   },
                   [self] {
                     if (!self->spec_.group_conv) return self->finish_connect();
                     self->write_then_expect(
                         "420" + json::serialize(json::array{"join", json::string(self->spec_.conv_id)}),
                         [](std::string_view r) {
                           if (!r.starts_with("430")) return 0;
                           return r.find("\"ok\":true") != std::string_view::npos ? 1 : -1;
                         },
                         [self] { self->finish_connect(); });
                   });
             });
      return;
  }
}

void WsConn::expect(FrameCheck check, std::function<void()> next) {
  login_check_ = std::move(check);
  login_next_ = std::move(next);
}

void WsConn::write_then_expect(std::string_view frame, FrameCheck check, std::function<void()> next) {
  expect(std::move(check), std::move(next));
  queue_frame(spec_.proto == Proto::nats ? op_binary : op_text, frame);
}

void WsConn::finish_connect() {
  login_timer_.cancel();
  login_check_ = nullptr;
  login_next_ = nullptr;
  ready_ = true;
  auto cb = std::move(connect_done_);
  connect_done_ = nullptr;
  for (const auto& f : held_) send(f);
  held_.clear();
  held_.shrink_to_fit();
  if (cb) cb(true, {});
}

void WsConn::do_read() {
  if (closed_) return;
  if (rlen_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);  // a frame's start fills the buffer
  const std::size_t room = rbuf_.size() - rlen_;
  sock_.async_read_some(net::buffer(rbuf_.data() + rlen_, room),
                        [self = shared_from_this(), room](boost::system::error_code ec, std::size_t n) {
                          if (ec) {
                            if (!self->ready_ && !self->closed_) return self->fail_connect("login read", ec);
                            return self->closed_by(ec.message());
                          }
                          self->rlen_ += n;
                          if (n == room && self->rbuf_.size() < read_buffer_max)
                            self->rbuf_.resize(self->rbuf_.size() * 2);
                          if (self->parse_frames()) self->do_read();
                        });
}

// Every complete frame in [0, rlen_): control frames answered, data frames (joined across
// continuation frames) to on_message; the incomplete tail moves to the front.
bool WsConn::parse_frames() {
  const auto* p = reinterpret_cast<const unsigned char*>(rbuf_.data());
  std::size_t pos = 0;
  while (!closed_) {
    const std::size_t avail = rlen_ - pos;
    if (avail < 2) break;
    const unsigned char b0 = p[pos];
    const unsigned char b1 = p[pos + 1];
    if ((b1 & 0x80) != 0) {
      closed_by("protocol error: masked server frame");
      return false;
    }
    std::size_t header = 2;
    std::uint64_t len = b1 & 0x7F;
    if (len == 126) {
      if (avail < 4) break;
      len = (std::uint64_t{p[pos + 2]} << 8) | p[pos + 3];
      header = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[pos + 2 + static_cast<std::size_t>(i)];
      header = 10;
    }
    if (len > read_message_max_bytes) {
      closed_by("protocol error: frame of " + std::to_string(len) + " bytes");
      return false;
    }
    if (avail < header + len) {
      // Make room for the whole frame; the bytes so far move to the front below.
      if (rbuf_.size() < header + len) rbuf_.resize(header + len);
      p = reinterpret_cast<const unsigned char*>(rbuf_.data());
      break;
    }
    const bool fin = (b0 & 0x80) != 0;
    const unsigned char opcode = b0 & 0x0F;
    const std::string_view payload(rbuf_.data() + pos + header, static_cast<std::size_t>(len));
    pos += header + static_cast<std::size_t>(len);
    switch (opcode) {
      case op_ping:
        queue_frame(op_pong, payload);
        break;
      case op_pong:
        break;
      case op_close: {
        const unsigned code = payload.size() >= 2
                                  ? (static_cast<unsigned>(static_cast<unsigned char>(payload[0])) << 8) |
                                        static_cast<unsigned char>(payload[1])
                                  : 1005;
        if (!ready_) {
          fail_connect("closed during login, code " + std::to_string(code), {});
        } else {
          closed_by("close " + std::to_string(code));
        }
        return false;
      }
      case op_continuation:
        fragments_.append(payload);
        if (fin) {
          const std::string whole = std::move(fragments_);
          fragments_.clear();
          on_message(whole);
        }
        break;
      case op_text:
      case op_binary:
        if (fin) {
          on_message(payload);
        } else {
          fragments_.assign(payload);
        }
        break;
      default:
        closed_by("protocol error: opcode " + std::to_string(opcode));
        return false;
    }
  }
  if (closed_) return false;
  if (pos > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
    rlen_ -= pos;
  }
  return true;
}

void WsConn::on_message(std::string_view payload) {
  if (login_check_) {
    const int r = login_check_(payload);
    if (r < 0) return fail_connect("login refused: " + std::string(payload.substr(0, 200)), {});
    if (r > 0) {
      auto next = std::move(login_next_);
      login_check_ = nullptr;
      login_next_ = nullptr;
      next();
    }
    return;
  }
  if (ready_) listener_.on_frame(*this, payload);
}

void WsConn::send(std::string_view frame) {
  if (closed_) return;
  if (!ready_) {
    held_.emplace_back(frame);
    return;
  }
  queue_frame(spec_.proto == Proto::nats ? op_binary : op_text, frame);
}

void WsConn::queue_frame(unsigned char opcode, std::string_view payload) {
  if (closed_) return;
  // Header: FIN + opcode, MASK + length, then the 4-byte masking key (a fresh one per frame).
  const std::size_t n = payload.size();
  char header[14];
  std::size_t h = 0;
  header[h++] = static_cast<char>(0x80 | opcode);
  if (n < 126) {
    header[h++] = static_cast<char>(0x80 | n);
  } else if (n <= 0xFFFF) {
    header[h++] = static_cast<char>(0x80 | 126);
    header[h++] = static_cast<char>((n >> 8) & 0xFF);
    header[h++] = static_cast<char>(n & 0xFF);
  } else {
    header[h++] = static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i)
      header[h++] = static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xFF);
  }
  mask_state_ ^= mask_state_ << 13;  // xorshift64
  mask_state_ ^= mask_state_ >> 7;
  mask_state_ ^= mask_state_ << 17;
  char key[4];
  for (int i = 0; i < 4; ++i) key[i] = static_cast<char>((mask_state_ >> (8 * i)) & 0xFF);
  std::memcpy(header + h, key, 4);
  h += 4;
  wq_.append(header, h);
  const std::size_t start = wq_.size();
  wq_.append(payload);
  for (std::size_t i = 0; i < n; ++i) wq_[start + i] = static_cast<char>(wq_[start + i] ^ key[i & 3]);
  if (!writing_) do_write();
}

void WsConn::do_write() {
  if (wq_.empty() || closed_) return;
  writing_ = true;
  wbuf_.swap(wq_);
  wq_.clear();
  net::async_write(sock_, net::buffer(wbuf_),
                   [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                     self->writing_ = false;
                     self->wbuf_.clear();
                     if (ec) {
                       self->wq_.clear();
                       return;  // the read side reports the broken connection
                     }
                     self->do_write();
                   });
}

void WsConn::closed_by(std::string reason) {
  const bool was_open = !closed_;
  ready_ = false;
  closed_ = true;
  boost::system::error_code ignored;
  sock_.close(ignored);
  if (was_open) listener_.on_closed(*this, reason);
}

void WsConn::close() {
  if (closed_) return;
  closed_ = true;
  ready_ = false;
  login_timer_.cancel();
  boost::system::error_code ignored;
  sock_.shutdown(tcp::socket::shutdown_both, ignored);
  sock_.close(ignored);
}

}  // namespace bench

#include "ws_conn.hpp"

#include "http_client.hpp"

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>

namespace bench {

namespace websocket = beast::websocket;

namespace {
constexpr std::size_t read_message_max_bytes = 2 << 20;
constexpr auto connect_timeout = std::chrono::seconds(30);
}  // namespace

WsConn::WsConn(net::io_context& ioc, ConnListener& listener, const ConnSpec& spec, int slot)
    : ws_(ioc), listener_(listener), spec_(spec), slot_(slot) {}

void WsConn::fail_connect(std::string_view what, const beast::error_code& ec) {
  closed_ = true;
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().close(ignored);
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
  auto& layer = beast::get_lowest_layer(ws_);
  try {
    open_and_bind(layer.socket(), local);
  } catch (const std::exception& e) {
    fail_connect(std::string("bind: ") + e.what(), {});
    return;
  }
  layer.expires_after(connect_timeout);
  layer.async_connect(server, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->fail_connect("tcp connect", ec);
    beast::get_lowest_layer(self->ws_).expires_never();
    self->ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    self->ws_.read_message_max(read_message_max_bytes);
    self->ws_.auto_fragment(false);
    self->ws_.text(self->spec_.proto != Proto::nats);  // nats-server speaks binary frames
    const char* target = "/ws";
    if (self->spec_.proto == Proto::nats) target = "/";
    if (self->spec_.proto == Proto::socketio) target = "/socket.io/?EIO=4&transport=websocket";
    self->ws_.async_handshake(self->host_, target, [self](beast::error_code hec) {
      if (hec) return self->fail_connect("ws handshake", hec);
      self->login();
    });
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
                   std::move(f),
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
  ws_.async_read(rbuf_, [self = shared_from_this(), check = std::move(check), next = std::move(next)](
                            beast::error_code rec, std::size_t) mutable {
    if (rec) return self->fail_connect("login read", rec);
    const auto text = beast::buffers_to_string(self->rbuf_.data());
    self->rbuf_.consume(self->rbuf_.size());
    const int r = check(text);
    if (r < 0) return self->fail_connect("login refused: " + text.substr(0, 200), {});
    if (r == 0) return self->expect(std::move(check), std::move(next));
    next();
  });
}

void WsConn::write_then_expect(std::string frame, FrameCheck check, std::function<void()> next) {
  login_out_ = std::move(frame);
  ws_.async_write(net::buffer(login_out_),
                  [self = shared_from_this(), check = std::move(check), next = std::move(next)](
                      beast::error_code wec, std::size_t) mutable {
                    if (wec) return self->fail_connect("login write", wec);
                    self->expect(std::move(check), std::move(next));
                  });
}

void WsConn::finish_connect() {
  login_out_.clear();
  login_out_.shrink_to_fit();
  ready_ = true;
  auto cb = std::move(connect_done_);
  connect_done_ = nullptr;
  do_read();
  if (!out_.empty() && !writing_) do_write();
  if (cb) cb(true, {});
}

void WsConn::do_read() {
  ws_.async_read(rbuf_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) {
      const bool was_open = !self->closed_;
      self->ready_ = false;
      self->closed_ = true;
      if (was_open) {
        std::string reason = ec.message();
        if (ec == websocket::error::closed) reason = "close " + std::to_string(self->ws_.reason().code);
        self->listener_.on_closed(*self, reason);
      }
      return;
    }
    const auto data = self->rbuf_.cdata();
    self->listener_.on_frame(*self, std::string_view(static_cast<const char*>(data.data()), data.size()));
    self->rbuf_.consume(self->rbuf_.size());
    self->do_read();
  });
}

void WsConn::send(std::string frame) {
  if (closed_) return;
  out_.push_back(std::move(frame));
  if (ready_ && !writing_) do_write();
}

void WsConn::do_write() {
  writing_ = true;
  ws_.async_write(net::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    self->writing_ = false;
    self->out_.pop_front();
    if (ec) {
      self->out_.clear();
      return;  // the read side reports the broken connection
    }
    if (!self->out_.empty() && !self->closed_) self->do_write();
  });
}

void WsConn::close() {
  if (closed_) return;
  closed_ = true;
  ready_ = false;
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).socket().close(ignored);
}

}  // namespace bench

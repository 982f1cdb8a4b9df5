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
  json::object auth{{"type", "auth"}, {"token", spec_.token}};
  auth_frame_ = json::serialize(auth);
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
    self->ws_.text(true);
    self->ws_.async_handshake(self->host_, "/ws", [self](beast::error_code hec) {
      if (hec) return self->fail_connect("ws handshake", hec);
      self->ws_.async_write(net::buffer(self->auth_frame_), [self](beast::error_code wec, std::size_t) {
        if (wec) return self->fail_connect("auth write", wec);
        self->ws_.async_read(self->rbuf_, [self](beast::error_code rec, std::size_t) {
          if (rec) return self->fail_connect("auth read", rec);
          const auto text = beast::buffers_to_string(self->rbuf_.data());
          self->rbuf_.consume(self->rbuf_.size());
          boost::system::error_code pec;
          auto v = json::parse(text, pec);
          const auto* o = pec ? nullptr : v.if_object();
          const auto* type = o ? o->if_contains("type") : nullptr;
          if (type == nullptr || !type->is_string() || type->get_string() != "ready") {
            return self->fail_connect("auth refused: " + text.substr(0, 200), {});
          }
          if (const auto* hb = o->if_contains("heartbeat_interval_ms"); hb && hb->is_int64()) {
            self->heartbeat_ms_ = hb->get_int64();
          }
          self->ready_ = true;
          auto cb = std::move(self->connect_done_);
          self->connect_done_ = nullptr;
          self->do_read();
          if (!self->out_.empty() && !self->writing_) self->do_write();
          if (cb) cb(true, {});
        });
      });
    });
  });
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

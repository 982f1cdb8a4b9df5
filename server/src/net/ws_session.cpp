#include "net/ws_session.hpp"

#include "auth/password_hasher.hpp"
#include "domain/limits.hpp"
#include "gateway/hub.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "service/chat_service.hpp"
#include "store/errors.hpp"

#include <boost/asio/as_tuple.hpp>

#include <chrono>

namespace chat::transport {

using domain::ErrorCode;

namespace {

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// Sends a connection may have waiting for the store at once; past it the reader waits, which
// pushes back on the client through TCP.
constexpr int kSendsInFlightMax = 32;
constexpr std::size_t kReadBufferKeepBytes = 16 * 1024;

domain::TimeMs now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

WsSession::WsSession(tcp::socket socket, ServerContext& ctx, std::size_t shard)
    : ws_(std::move(socket)),
      ctx_(ctx),
      shard_(shard),
      id_(ctx.next_connection_id.fetch_add(1)),
      wake_(ws_.get_executor(), std::chrono::steady_clock::time_point::max()),
      auth_timer_(ws_.get_executor()),
      send_bucket_(
          ctx.options.send_rate_per_s, ctx.options.send_rate_per_s * 2, std::chrono::steady_clock::now()) {}

WsSession::~WsSession() {
  if (counted_) {
    ctx_.metrics.connections.fetch_sub(1, std::memory_order_relaxed);
    ctx_.websockets.fetch_sub(1);
  }
}

void WsSession::start(http::request<http::string_body> upgrade) {
  auto self = shared_from_this();
  net::co_spawn(
      ws_.get_executor(), [self, req = std::move(upgrade)]() mutable { return self->run(std::move(req)); },
      [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          obs::log_warn(std::string("websocket session ended with: ") + ex.what());
        }
      });
}

net::awaitable<void> WsSession::run(http::request<http::string_body> upgrade) {
  // The WebSocket timeout option replaces the TCP stream's own timer.
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout timeout{};
  timeout.handshake_timeout = kHandshakeTimeout;
  timeout.idle_timeout =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(ctx_.options.ws_idle_timeout);
  timeout.keep_alive_pings = true;
  ws_.set_option(timeout);
  ws_.read_message_max(domain::limits::ws_frame_bytes_max);
  ws_.auto_fragment(false);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "chatd"); }));

  std::string bearer;
  if (auto it = upgrade.find(http::field::authorization); it != upgrade.end()) {
    const std::string_view value = it->value();
    if (value.substr(0, 7) == "Bearer ") bearer = std::string(value.substr(7));
  }

  auto [ec] = co_await ws_.async_accept(upgrade, net::as_tuple(net::use_awaitable));
  if (ec) co_return;
  counted_ = true;
  ctx_.metrics.connections.fetch_add(1, std::memory_order_relaxed);
  ctx_.websockets.fetch_add(1);
  if (ctx_.stopping.load()) co_return;

  auto self = shared_from_this();
  net::co_spawn(
      ws_.get_executor(), [self] { return self->writer(); }, net::detached);

  if (!bearer.empty()) {
    std::optional<domain::AuthContext> auth;
    bool store_down = false;
    try {
      auth = co_await ctx_.service.authenticate(bearer);
    } catch (const std::exception&) {
      store_down = true;
    }
    if (store_down) {
      send_text(gateway::frames::error(ErrorCode::unavailable, "temporarily unavailable; retry"));
      close_with(1013, "try again later");
    } else if (!auth) {
      send_text(gateway::frames::error(ErrorCode::unauthorized, "invalid or expired access token"));
      close_with(4001, "unauthorized");
    } else {
      authenticated(*auth);
    }
  } else {
    net::co_spawn(
        ws_.get_executor(), [self] { return self->auth_deadline(); }, net::detached);
  }
  co_await reader();
}

net::awaitable<void> WsSession::auth_deadline() {
  auth_timer_.expires_after(ctx_.options.auth_timeout);
  auto [ec] = co_await auth_timer_.async_wait(net::as_tuple(net::use_awaitable));
  if (!ec && !auth_ && !closed_) close_with(4000, "auth timeout");
}

void WsSession::authenticated(const domain::AuthContext& auth) {
  auth_ = auth;
  auth_timer_.cancel();
  ctx_.hub.attach(shard_, auth.user_id, shared_from_this());
  const auto heartbeat =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx_.options.ws_idle_timeout) / 2;
  send_text(gateway::frames::ready(auth.user_id, auth.session_id, auth.device_id, heartbeat.count()));
}

net::awaitable<void> WsSession::reader() {
  for (;;) {
    auto [ec, n] = co_await ws_.async_read(buffer_, net::as_tuple(net::use_awaitable));
    if (ec) break;  // closed by the peer, timed out, too big (1009), bad UTF-8 (1007): Beast answered
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      send_text(gateway::frames::error(ErrorCode::bad_request, "binary frames are not part of the protocol"));
      continue;
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (buffer_.capacity() > kReadBufferKeepBytes) buffer_.shrink_to_fit();
    co_await handle_frame(std::move(text));
    if (closed_) break;
  }
  closed_ = true;
  wake_.cancel();
  auth_timer_.cancel();
  if (auth_) ctx_.hub.detach(shard_, auth_->user_id, id_);
}

net::awaitable<void> WsSession::handle_frame(std::string text) {
  auto frame = gateway::parse_client_frame(text);
  if (!auth_) {
    if (auto* a = std::get_if<gateway::AuthFrame>(&frame)) {
      std::optional<domain::AuthContext> auth;
      bool store_down = false;
      try {
        auth = co_await ctx_.service.authenticate(std::move(a->token));
      } catch (const std::exception&) {
        store_down = true;
      }
      if (store_down) {
        send_text(gateway::frames::error(ErrorCode::unavailable, "temporarily unavailable; retry"));
        close_with(1013, "try again later");
        co_return;
      }
      if (!auth) {
        ctx_.metrics.count_error(ErrorCode::unauthorized);
        send_text(gateway::frames::error(ErrorCode::unauthorized, "invalid or expired access token"));
        close_with(4001, "unauthorized");
        co_return;
      }
      authenticated(*auth);
      co_return;
    }
    ctx_.metrics.count_error(ErrorCode::unauthorized);
    send_text(gateway::frames::error(ErrorCode::unauthorized, "the first frame must be {\"type\":\"auth\"}"));
    close_with(4001, "unauthorized");
    co_return;
  }

  if (auto* e = std::get_if<gateway::FrameError>(&frame)) {
    ctx_.metrics.count_error(e->code);
    send_text(gateway::frames::error(e->code, e->message, e->client_msg_id));
    co_return;
  }
  if (std::holds_alternative<gateway::PingFrame>(frame)) {
    send_text(gateway::frames::pong(now_ms()));
    co_return;
  }
  if (std::holds_alternative<gateway::AuthFrame>(frame)) {
    send_text(gateway::frames::error(ErrorCode::bad_request, "already authenticated"));
    co_return;
  }
  if (auto* s = std::get_if<gateway::SendFrame>(&frame)) {
    std::chrono::milliseconds wait{};
    if (!send_bucket_.try_take(std::chrono::steady_clock::now(), &wait)) {
      ctx_.metrics.count_error(ErrorCode::rate_limited);
      send_text(
          gateway::frames::error(ErrorCode::rate_limited, "sending too fast; retry later", s->client_msg_id));
      co_return;
    }
    if (sends_in_flight_ >= kSendsInFlightMax) {
      co_await handle_send(std::move(*s));
    } else {
      // Pipelined: the reader goes on while the store commits. Sends of one connection still
      // reach the writer queue in the order they were read (each coroutine starts in order and
      // enqueues before its first suspension that is not the store).
      auto self = shared_from_this();
      net::co_spawn(
          ws_.get_executor(), [self, f = std::move(*s)]() mutable { return self->handle_send(std::move(f)); },
          net::detached);
    }
    co_return;
  }
  if (auto* r = std::get_if<gateway::ReadFrame>(&frame)) {
    try {
      auto result = co_await ctx_.service.mark_read_seq(*auth_, r->conversation_id, r->seq);
      if (auto* f = service::failed(result)) {
        ctx_.metrics.count_error(f->code);
        send_text(gateway::frames::error(f->code, f->message));
      }
    } catch (const std::exception&) {
      ctx_.metrics.count_error(ErrorCode::unavailable);
      send_text(gateway::frames::error(ErrorCode::unavailable, "temporarily unavailable; retry"));
    }
    co_return;
  }
}

net::awaitable<void> WsSession::handle_send(gateway::SendFrame frame) {
  ++sends_in_flight_;
  struct Done {
    int& n;
    ~Done() { --n; }
  } done{sends_in_flight_};
  const std::string client_msg_id = frame.client_msg_id;
  try {
    auto result = co_await ctx_.service.send(*auth_, frame.conversation_id, std::move(frame.client_msg_id),
                                             std::move(frame.body), id_);
    if (auto* f = service::failed(result)) {
      ctx_.metrics.count_error(f->code);
      send_text(gateway::frames::error(f->code, f->message, client_msg_id));
      co_return;
    }
    send_text(gateway::frames::ack(std::get<service::SendOutcome>(result).message));
  } catch (const store::StoreUnavailable&) {
    ctx_.metrics.count_error(ErrorCode::unavailable);
    send_text(gateway::frames::error(ErrorCode::unavailable, "store temporarily unavailable; retry",
                                     client_msg_id));
  } catch (const std::exception& e) {
    obs::log_error(std::string("send failed: ") + e.what());
    ctx_.metrics.count_error(ErrorCode::internal);
    send_text(gateway::frames::error(ErrorCode::internal, "internal error", client_msg_id));
  }
}

void WsSession::send_text(std::string text) {
  deliver(std::make_shared<const std::string>(std::move(text)));
}

void WsSession::deliver(gateway::SharedFrame frame) {
  if (closed_ || close_) return;
  queued_bytes_ += frame->size();
  if (queued_bytes_ > domain::limits::send_queue_bytes_max) {
    // A slow consumer: drop the queue and close; the client resyncs from history.
    ctx_.metrics.ws_slow_consumers.fetch_add(1, std::memory_order_relaxed);
    queue_.clear();
    queued_bytes_ = 0;
    close_with(4008, "send queue overflow; resync");
    return;
  }
  queue_.push_back(std::move(frame));
  wake_.cancel_one();
}

void WsSession::close_with(std::uint16_t code, std::string_view reason) {
  if (closed_ || close_) return;
  close_.emplace(code, std::string(reason));
  wake_.cancel_one();
}

net::awaitable<void> WsSession::writer() {
  auto self = shared_from_this();  // the writer keeps the session alive until the socket is done
  while (!closed_) {
    if (!queue_.empty()) {
      auto frame = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= frame->size();
      ws_.text(true);
      auto [ec, n] = co_await ws_.async_write(net::buffer(*frame), net::as_tuple(net::use_awaitable));
      if (ec) break;
      continue;
    }
    if (close_) {
      websocket::close_reason reason;
      reason.code = close_->first;
      reason.reason = close_->second;
      auto [ec] = co_await ws_.async_close(reason, net::as_tuple(net::use_awaitable));
      (void)ec;  // the peer may be gone already; either way the socket is finished
      break;
    }
    auto [ec] = co_await wake_.async_wait(net::as_tuple(net::use_awaitable));
    (void)ec;  // operation_aborted is the wake-up signal
  }
  closed_ = true;
  queue_.clear();
  queued_bytes_ = 0;
  // Unblock the reader if it is still waiting (e.g. after close_with on a silent peer).
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).socket().close(ignored);
}

}  // namespace chat::transport

#include "net/ws_session.hpp"

#include "auth/password_hasher.hpp"
#include "domain/limits.hpp"
#include "gateway/hub.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "presence/presence_tracker.hpp"
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
constexpr std::size_t kQueueKeepFrames = 64;
constexpr auto kTypingInterval = std::chrono::seconds(2);
constexpr auto kCloseDeadline = std::chrono::seconds(5);
constexpr std::size_t kTypingConversationsMax = 64;

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
      send_slot_(ws_.get_executor(), std::chrono::steady_clock::time_point::max()),
      close_deadline_(ws_.get_executor()),
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
  // This frame lives as long as the connection: do not keep the upgrade request's headers.
  upgrade = {};
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
  ctx_.presence.connected(auth.user_id);
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
    // Idle connections hold no read buffer: Beast reads frame headers into its own small static
    // buffer, so ours is needed only while a message is being assembled.
    buffer_.clear();
    buffer_.shrink_to_fit();
    co_await handle_frame(std::move(text));
    if (closed_) break;
  }
  closed_ = true;
  wake_.cancel();
  auth_timer_.cancel();
  if (auth_) {
    ctx_.hub.detach(shard_, auth_->user_id, id_);
    ctx_.hub.unwatch(shard_, id_, watched_);
    ctx_.presence.disconnected(auth_->user_id);
  }
}

net::awaitable<void> WsSession::handle_frame(std::string text) {
  auto parsed = gateway::parse_client_frame(text);
  auto& frame = parsed.frame;
  const std::string& rid = parsed.request_id;
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
    reply_error(e->code, e->message, rid, e->client_msg_id);
    co_return;
  }
  if (std::holds_alternative<gateway::PingFrame>(frame)) {
    send_text(gateway::frames::pong(now_ms()));
    co_return;
  }
  if (std::holds_alternative<gateway::AuthFrame>(frame)) {
    reply_error(ErrorCode::bad_request, "already authenticated", rid);
    co_return;
  }
  if (auto* s = std::get_if<gateway::SendFrame>(&frame)) {
    std::chrono::milliseconds wait{};
    if (!send_bucket_.try_take(std::chrono::steady_clock::now(), &wait)) {
      reply_error(ErrorCode::rate_limited, "sending too fast; retry later", rid, s->client_msg_id);
      co_return;
    }
    // Pipelined: the reader goes on while the store commits, up to kSendsInFlightMax; past it the
    // reader waits for a slot, which pushes back on the client through TCP. Sends of one
    // connection reach the writer queue in the order they were read: each coroutine is started
    // in order and enqueues its write before it first suspends.
    while (sends_in_flight_ >= kSendsInFlightMax && !closed_) {
      auto [ec] = co_await send_slot_.async_wait(net::as_tuple(net::use_awaitable));
      (void)ec;  // cancel_one() is the signal
    }
    ++sends_in_flight_;
    auto self = shared_from_this();
    net::co_spawn(
        ws_.get_executor(), [self, f = std::move(*s)]() mutable { return self->handle_send(std::move(f)); },
        net::detached);
    co_return;
  }
  if (auto* t = std::get_if<gateway::TypingFrame>(&frame)) {
    // Ephemeral and rate-limited: extra typing frames inside the window are dropped silently.
    const auto now = std::chrono::steady_clock::now();
    if (last_typing_.size() > kTypingConversationsMax) last_typing_.clear();
    auto& last = last_typing_[t->conversation_id];
    if (last != std::chrono::steady_clock::time_point{} && now - last < kTypingInterval) co_return;
    last = now;
  }
  if (auto* p = std::get_if<gateway::PresenceSubscribeFrame>(&frame)) {
    co_await handle_presence(std::move(p->user_ids), rid);
    co_return;
  }
  // Everything else goes through the ChatService and answers errors (and `ok` for changes).
  try {
    co_await dispatch(frame, rid);
  } catch (const store::StoreUnavailable&) {
    reply_error(ErrorCode::unavailable, "store temporarily unavailable; retry", rid);
  } catch (const std::exception& e) {
    obs::log_error(std::string("frame failed: ") + e.what());
    reply_error(ErrorCode::internal, "internal error", rid);
  }
}

void WsSession::reply_error(ErrorCode code,
                            std::string_view message,
                            std::string_view request_id,
                            std::string_view client_msg_id) {
  ctx_.metrics.count_error(code);
  send_text(gateway::frames::error(code, message, client_msg_id, request_id));
}

net::awaitable<void> WsSession::dispatch(gateway::ClientFrame& frame, const std::string& rid) {
  auto& svc = ctx_.service;
  const auto auth = *auth_;
  const auto on_change = [&](const service::Result<service::ChatService::Change>& r) {
    if (auto* f = service::failed(r)) return reply_error(f->code, f->message, rid);
    send_text(gateway::frames::ok(rid, std::get<service::ChatService::Change>(r).event));
  };
  if (auto* r = std::get_if<gateway::ReadFrame>(&frame)) {
    auto result = co_await svc.mark_read_seq(auth, r->conversation_id, r->seq);
    if (auto* f = service::failed(result)) reply_error(f->code, f->message, rid);
  } else if (auto* d = std::get_if<gateway::DeliveredFrame>(&frame)) {
    auto result = co_await svc.mark_delivered_seq(auth, d->conversation_id, d->seq);
    if (auto* f = service::failed(result)) reply_error(f->code, f->message, rid);
  } else if (auto* t = std::get_if<gateway::TypingFrame>(&frame)) {
    auto result = co_await svc.typing(auth, t->conversation_id);
    if (auto* f = service::failed(result)) reply_error(f->code, f->message, rid);
  } else if (auto* e = std::get_if<gateway::EditFrame>(&frame)) {
    auto result = co_await svc.edit_message(auth, e->message_id, std::move(e->body));
    on_change(result);
  } else if (auto* del = std::get_if<gateway::DeleteFrame>(&frame)) {
    auto result = co_await svc.delete_message(auth, del->message_id);
    on_change(result);
  } else if (auto* re = std::get_if<gateway::ReactFrame>(&frame)) {
    auto result = co_await svc.react(auth, re->message_id, std::move(re->emoji), re->on);
    on_change(result);
  } else if (auto* sy = std::get_if<gateway::SyncFrame>(&frame)) {
    auto result = co_await svc.sync(auth, std::move(sy->since), sy->limit);
    if (auto* f = service::failed(result)) {
      reply_error(f->code, f->message, rid);
    } else {
      const auto& page = std::get<store::SyncPage>(result);
      send_text(gateway::frames::sync_batch(page.events, page.has_more, page.removed));
    }
  }
}

net::awaitable<void> WsSession::handle_presence(std::vector<domain::UserId> users, std::string rid) {
  try {
    auto allowed = co_await ctx_.service.watchable(*auth_, std::move(users));
    if (closed_) co_return;
    ctx_.hub.unwatch(shard_, id_, watched_);
    watched_ = allowed;
    ctx_.hub.watch(shard_, shared_from_this(), watched_);
    // One directory lookup for all of them, off this I/O thread (cluster mode: one Redis round trip).
    auto lookup = ctx_.presence.statuses(watched_);
    auto statuses = co_await std::move(lookup);
    if (closed_) co_return;
    for (std::size_t i = 0; i < watched_.size() && i < statuses.size(); ++i) {
      const auto u = watched_[i];
      auto status = statuses[i];
      if (!status) {
        // Unknown to the directory (never seen, or offline long enough to be forgotten):
        // offline, with the last_seen the store kept.
        auto profile = co_await ctx_.service.get_profile(*auth_, u);
        status = presence::PresenceTracker::Status{};
        if (auto* user = std::get_if<domain::User>(&profile)) status->last_seen = user->last_seen;
      }
      send_text(gateway::frames::presence(u, status->online, status->last_seen));
    }
  } catch (const std::exception&) {
    reply_error(ErrorCode::unavailable, "store temporarily unavailable; retry", rid);
  }
}

net::awaitable<void> WsSession::handle_send(gateway::SendFrame frame) {
  struct Done {
    int& n;
    net::steady_timer& slot;
    ~Done() {
      --n;
      slot.cancel_one();
    }
  } done{sends_in_flight_, send_slot_};
  const std::string client_msg_id = frame.client_msg_id;
  try {
    auto result = co_await ctx_.service.send(*auth_, frame.conversation_id, std::move(frame.client_msg_id),
                                             std::move(frame.body), frame.reply_to, id_);
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
    queue_head_ = 0;
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
  // The close frame waits behind a write in progress; a peer that does not read would hold it
  // forever. Past the deadline the TCP socket is closed, which cancels the stuck write.
  close_deadline_.expires_after(kCloseDeadline);
  close_deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_) return;
    beast::error_code ignored;
    beast::get_lowest_layer(self->ws_).socket().close(ignored);
  });
}

net::awaitable<void> WsSession::writer() {
  auto self = shared_from_this();  // the writer keeps the session alive until the socket is done
  while (!closed_) {
    if (queue_head_ < queue_.size()) {
      auto frame = std::move(queue_[queue_head_++]);
      if (queue_head_ == queue_.size()) {
        // Drained: reset, and give the memory back if a burst made the queue large.
        queue_.clear();
        queue_head_ = 0;
        if (queue_.capacity() > kQueueKeepFrames) queue_.shrink_to_fit();
      }
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
  close_deadline_.cancel();
  queue_.clear();
  queue_head_ = 0;
  queued_bytes_ = 0;
  // Unblock the reader if it is still waiting (e.g. after close_with on a silent peer).
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).socket().close(ignored);
}

}  // namespace chat::transport

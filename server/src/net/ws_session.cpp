#include "net/ws_session.hpp"

#include "domain/limits.hpp"
#include "gateway/hub.hpp"
#include "net/ws_shard.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "presence/presence_tracker.hpp"
#include "service/chat_service.hpp"
#include "store/errors.hpp"

#include <cerrno>
#include <chrono>
#include <sys/socket.h>

namespace chat::transport {

using domain::ErrorCode;

namespace {

// Sends a connection may have waiting for the store at once; past it reading pauses, which pushes
// back on the client through TCP.
constexpr std::uint16_t kSendsInFlightMax = 32;
constexpr std::size_t kQueueKeepFrames = 8;
constexpr auto kTypingInterval = std::chrono::seconds(2);
constexpr auto kCloseDeadline = std::chrono::seconds(5);
constexpr std::size_t kTypingConversationsMax = 64;
// Reads per readiness event before yielding to the other sessions of the thread.
constexpr int kReadsPerWakeup = 8;

domain::TimeMs now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void log_async_failure(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    obs::log_warn(std::string("websocket frame handler ended with: ") + ex.what());
  }
}

}  // namespace

WsSession::WsSession(tcp::socket socket, ServerContext& ctx, WsShard& shard, std::size_t shard_index)
    : socket_(std::move(socket)),
      ctx_(ctx),
      shard_(shard),
      id_(ctx.next_connection_id.fetch_add(1)),
      decoder_(domain::limits::ws_frame_bytes_max),
      send_bucket_(
          ctx.options.send_rate_per_s, ctx.options.send_rate_per_s * 2, std::chrono::steady_clock::now()),
      shard_index_(static_cast<std::uint32_t>(shard_index)) {}

WsSession::~WsSession() {
  if (slot != kNoSlot) shard_.remove(this);
  if (counted_) {
    ctx_.metrics.connections.fetch_sub(1, std::memory_order_relaxed);
    ctx_.websockets.fetch_sub(1);
  }
}

void WsSession::start(std::string_view accept, std::string bearer, std::string_view early) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  std::string response;
  response.reserve(160);
  response.append(
      "HTTP/1.1 101 Switching Protocols\r\nServer: chatd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ");
  response.append(accept);
  response.append("\r\n\r\n");
  enqueue(std::make_shared<const std::string>(std::move(response)), ws::Opcode::text, true);
  counted_ = true;
  ctx_.metrics.connections.fetch_add(1, std::memory_order_relaxed);
  ctx_.websockets.fetch_add(1);
  last_heard_ = std::chrono::steady_clock::now();
  deadline_ = last_heard_ + ctx_.options.auth_timeout;
  shard_.add(this);
  shard_.watch_deadline(shared_from_this());  // the auth deadline
  if (ctx_.stopping.load()) {
    fail(1001, "server shutting down");
    return;
  }
  partial_.assign(early);
  if (!bearer.empty()) {
    busy_ = true;
    auto self = shared_from_this();
    net::co_spawn(
        socket_.get_executor(),
        [self, b = std::move(bearer)]() mutable { return self->handle_bearer(std::move(b)); },
        [self](std::exception_ptr e) {
          log_async_failure(e);
          self->busy_ = false;
          self->resume();
        });
    return;
  }
  resume();
}

// ---- reading ----

void WsSession::arm_read() {
  if (reading_ || state_ == State::done) return;
  reading_ = true;
  socket_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->reading_ = false;
                       if (ec) {
                         if (ec != net::error::operation_aborted) self->teardown();
                         return;
                       }
                       self->on_readable();
                     });
}

// Handles what is buffered, then reads on if nothing holds reading back.
void WsSession::resume() {
  if (!wants_read()) return;
  if (!partial_.empty()) {
    const auto used = process({partial_.data(), partial_.size()});
    partial_.erase(0, used);
    if (partial_.empty()) std::string().swap(partial_);
    if (state_ == State::done || busy_ || paused_) return;
  }
  on_readable();
}

bool WsSession::wants_read() const noexcept {
  return state_ == State::draining || (state_ != State::done && !busy_ && !paused_);
}

void WsSession::on_readable() {
  if (state_ == State::draining) return drain();
  const auto buffer = shard_.read_buffer();
  for (int i = 0; i < kReadsPerWakeup; ++i) {
    if (!wants_read()) return;
    if (state_ == State::draining) return drain();
    const ssize_t n = ::recv(socket_.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        arm_read();
        return;
      }
      teardown();  // reset by the peer
      return;
    }
    if (n == 0) {
      teardown();  // the peer closed its side without a close frame
      return;
    }
    last_heard_ = shard_.coarse_now();
    pinged_ = false;
    const auto size = static_cast<std::size_t>(n);
    if (partial_.empty()) {
      // The common case: complete frames handled straight from the shard's buffer.
      const auto used = process(buffer.first(size));
      if (used < size) partial_.assign(buffer.data() + used, size - used);
    } else {
      partial_.append(buffer.data(), size);
      const auto used = process({partial_.data(), partial_.size()});
      partial_.erase(0, used);
      if (partial_.empty()) std::string().swap(partial_);
    }
    if (size < buffer.size()) {
      // Probably drained: one more read would most likely say EAGAIN, so wait for readiness
      // (edge-triggered: the wait is armed before this thread looks at epoll again).
      if (wants_read()) arm_read();
      return;
    }
  }
  // A busy peer: let the other sessions of this thread run, then go on.
  if (wants_read()) net::post(socket_.get_executor(), [self = shared_from_this()] { self->resume(); });
}

// Handles the complete frames at the front of `data`; returns the bytes used. Stops early when a
// frame is handed to a coroutine (busy_) or sends are at their limit (paused_).
std::size_t WsSession::process(std::span<char> data) {
  std::size_t offset = 0;
  while (offset < data.size() && state_ != State::done && !busy_ && !paused_) {
    std::size_t used = 0;
    const auto ev = decoder_.next(data.subspan(offset), used);
    offset += used;
    switch (ev.kind) {
      case ws::Event::Kind::need_more:
        return offset;
      case ws::Event::Kind::text:
        if (state_ == State::open) on_text(ev.payload);
        break;
      case ws::Event::Kind::binary:
        if (state_ == State::open)
          send_text(
              gateway::frames::error(ErrorCode::bad_request, "binary frames are not part of the protocol"));
        break;
      case ws::Event::Kind::ping:
        if (state_ == State::open) enqueue(std::make_shared<const std::string>(ev.payload), ws::Opcode::pong);
        break;
      case ws::Event::Kind::pong:
        break;
      case ws::Event::Kind::close:
        if (state_ == State::open) {
          // Echo the peer's code, then drop the connection (RFC 6455 5.5.1).
          auto payload = ev.code == ws::kCloseNoStatus ? std::string() : ws::close_payload(ev.code, {});
          enqueue(std::make_shared<const std::string>(std::move(payload)), ws::Opcode::close);
          // A peer that closes but does not read our echo is dropped after the close deadline.
          deadline_ = std::chrono::steady_clock::now() + kCloseDeadline;
          shard_.watch_deadline(shared_from_this());
        }
        state_ = State::closing_final;
        schedule_flush();
        return offset;
      case ws::Event::Kind::fail:
        fail(ev.code, ev.payload);
        return offset;
    }
  }
  return offset;
}

void WsSession::on_text(std::string_view text) {
  if (auth_ && text == R"({"type":"ping"})") {
    // The heartbeat, most of what an idle connection sends: answered without the JSON parser.
    // Same bytes as gateway::frames::pong().
    std::string pong = R"({"type":"pong","ts":)";
    pong += std::to_string(now_ms());
    pong += '}';
    return send_text(std::move(pong));
  }
  auto parsed = gateway::parse_client_frame(text);
  auto& frame = parsed.frame;
  const std::string& rid = parsed.request_id;
  if (!auth_) {
    if (std::holds_alternative<gateway::AuthFrame>(frame)) return run_async(std::move(parsed));
    ctx_.metrics.count_error(ErrorCode::unauthorized);
    send_text(gateway::frames::error(ErrorCode::unauthorized, "the first frame must be {\"type\":\"auth\"}"));
    close_with(4001, "unauthorized");
    return;
  }
  if (auto* e = std::get_if<gateway::FrameError>(&frame))
    return reply_error(e->code, e->message, rid, e->client_msg_id);
  if (std::holds_alternative<gateway::PingFrame>(frame)) return send_text(gateway::frames::pong(now_ms()));
  if (std::holds_alternative<gateway::AuthFrame>(frame))
    return reply_error(ErrorCode::bad_request, "already authenticated", rid);
  if (auto* s = std::get_if<gateway::SendFrame>(&frame)) {
    std::chrono::milliseconds wait{};
    if (!send_bucket_.try_take(std::chrono::steady_clock::now(), &wait))
      return reply_error(ErrorCode::rate_limited, "sending too fast; retry later", rid, s->client_msg_id);
    // Pipelined: reading goes on while the store commits, up to kSendsInFlightMax. Sends of one
    // connection reach the queue in the order they were read: each coroutine starts at once and
    // enqueues its reply in store commit order, which is the order the store received them.
    ++sends_in_flight_;
    if (sends_in_flight_ >= kSendsInFlightMax) paused_ = true;
    auto self = shared_from_this();
    net::co_spawn(
        socket_.get_executor(),
        [self, f = std::move(*s)]() mutable { return self->handle_send(std::move(f)); },
        [self](std::exception_ptr e) {
          log_async_failure(e);
          --self->sends_in_flight_;
          if (self->paused_) {
            self->paused_ = false;
            self->resume();
          }
        });
    return;
  }
  if (auto* t = std::get_if<gateway::TypingFrame>(&frame)) {
    // Ephemeral and rate-limited: extra typing frames inside the window are dropped silently.
    const auto now = std::chrono::steady_clock::now();
    if (!last_typing_) last_typing_ = std::make_unique<decltype(last_typing_)::element_type>();
    if (last_typing_->size() > kTypingConversationsMax) last_typing_->clear();
    auto& last = (*last_typing_)[t->conversation_id];
    if (last != std::chrono::steady_clock::time_point{} && now - last < kTypingInterval) return;
    last = now;
  }
  run_async(std::move(parsed));
}

// Frames that need the store run as a coroutine; reading pauses until it is done, so they are
// handled (and answered) in the order they arrived.
void WsSession::run_async(gateway::ParsedFrame parsed) {
  busy_ = true;
  auto self = shared_from_this();
  net::co_spawn(
      socket_.get_executor(),
      [self, p = std::move(parsed)]() mutable { return self->handle_async(std::move(p)); },
      [self](std::exception_ptr e) {
        log_async_failure(e);
        self->busy_ = false;
        self->resume();
      });
}

net::awaitable<void> WsSession::handle_bearer(std::string bearer) {
  std::optional<domain::AuthContext> auth;
  bool store_down = false;
  try {
    auth = co_await ctx_.service.authenticate(bearer);
  } catch (const std::exception&) {
    store_down = true;
  }
  if (state_ != State::open) co_return;
  if (store_down) {
    send_text(gateway::frames::error(ErrorCode::unavailable, "temporarily unavailable; retry"));
    close_with(1013, "try again later");
  } else if (!auth) {
    send_text(gateway::frames::error(ErrorCode::unauthorized, "invalid or expired access token"));
    close_with(4001, "unauthorized");
  } else {
    authenticated(*auth);
  }
}

net::awaitable<void> WsSession::handle_auth(std::string token) {
  std::optional<domain::AuthContext> auth;
  bool store_down = false;
  try {
    auth = co_await ctx_.service.authenticate(std::move(token));
  } catch (const std::exception&) {
    store_down = true;
  }
  if (state_ != State::open) co_return;
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
}

void WsSession::authenticated(const domain::AuthContext& auth) {
  auth_ = auth;
  ctx_.hub.attach(shard_index_, auth.user_id, shared_from_this());
  ctx_.presence.connected(auth.user_id);
  const auto heartbeat =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx_.options.ws_idle_timeout) / 2;
  send_text(gateway::frames::ready(auth.user_id, auth.session_id, auth.device_id, heartbeat.count()));
}

net::awaitable<void> WsSession::handle_async(gateway::ParsedFrame parsed) {
  auto& frame = parsed.frame;
  const std::string& rid = parsed.request_id;
  if (!auth_) {
    if (auto* a = std::get_if<gateway::AuthFrame>(&frame)) {
      std::string token = std::move(a->token);
      co_await handle_auth(std::move(token));
    }
    co_return;
  }
  if (auto* p = std::get_if<gateway::PresenceSubscribeFrame>(&frame)) {
    std::vector<domain::UserId> users = std::move(p->user_ids);
    co_await handle_presence(std::move(users), rid);
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
    if (state_ == State::done) co_return;
    ctx_.hub.unwatch(shard_index_, id_, watched_);
    watched_ = allowed;
    ctx_.hub.watch(shard_index_, shared_from_this(), watched_);
    // One directory lookup for all of them, off this I/O thread (cluster mode: one Redis round trip).
    auto lookup = ctx_.presence.statuses(watched_);
    auto statuses = co_await std::move(lookup);
    if (state_ == State::done) co_return;
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

// ---- writing ----

void WsSession::send_text(std::string text) {
  deliver(std::make_shared<const std::string>(std::move(text)), gateway::Urgency::prompt);
}

void WsSession::deliver(gateway::SharedFrame frame, gateway::Urgency urgency) {
  if (state_ != State::open) return;
  if (out_.bytes() + frame->size() > domain::limits::send_queue_bytes_max) {
    // A slow consumer: drop the queue and close; the client resyncs from history. A frame
    // partly written stays, or the stream would break mid-frame.
    ctx_.metrics.ws_slow_consumers.fetch_add(1, std::memory_order_relaxed);
    out_.drop_unstarted();
    close_with(4008, "send queue overflow; resync");
    return;
  }
  if (urgency == gateway::Urgency::prompt || !shard_.coalescing()) {
    enqueue(std::move(frame), ws::Opcode::text);
    return;
  }
  out_.push(std::move(frame), ws::Opcode::text, false);
  // Already due with the next flush, or already waiting for the coalescing timer: it goes along.
  if (dirty_ || coalesced_ || writing_) return;
  coalesced_ = true;
  shard_.mark_coalesced(shared_from_this());
}

void WsSession::enqueue(gateway::SharedFrame payload, ws::Opcode op, bool raw) {
  if (state_ == State::done) return;
  out_.push(std::move(payload), op, raw);
  schedule_flush();
}

void WsSession::schedule_flush() {
  if (dirty_ || writing_ || state_ == State::done) return;
  dirty_ = true;
  shard_.mark_dirty(shared_from_this());
}

void WsSession::close_with(std::uint16_t code, std::string_view reason) {
  if (state_ != State::open) return;
  enqueue(std::make_shared<const std::string>(ws::close_payload(code, reason)), ws::Opcode::close);
  state_ = State::closing;
  if (auth_) shard_.watch_deadline(shared_from_this());
  // The close frame waits behind the queue; a peer that does not read (or never answers the
  // close) would hold the connection forever: the sweep drops it after this deadline.
  deadline_ = std::chrono::steady_clock::now() + kCloseDeadline;
}

// Protocol failure: the close frame goes out after what is queued, then the connection is dropped
// without waiting for the peer's answer.
void WsSession::fail(std::uint16_t code, std::string_view reason) {
  if (state_ == State::open)
    enqueue(std::make_shared<const std::string>(ws::close_payload(code, reason)), ws::Opcode::close);
  if (state_ == State::done) return;
  if (state_ == State::open) {
    deadline_ = std::chrono::steady_clock::now() + kCloseDeadline;
    if (auth_) shard_.watch_deadline(shared_from_this());
  }
  state_ = State::closing_final;
  schedule_flush();
}

void WsSession::arm_write() {
  if (writing_ || state_ == State::done) return;
  writing_ = true;
  socket_.async_wait(tcp::socket::wait_write,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->writing_ = false;
                       if (ec) {
                         if (ec != net::error::operation_aborted) self->teardown();
                         return;
                       }
                       self->write_queue();
                     });
}

void WsSession::flush() {
  dirty_ = false;
  write_queue();
}

void WsSession::flush_coalesced() {
  coalesced_ = false;
  write_queue();
}

// Writes as much of the queue as the socket takes: one sendmsg per 256 frames, each frame two
// iovecs (its header, built here, and the shared payload).
void WsSession::write_queue() {
  if (state_ == State::done || writing_) return;
  while (!out_.empty()) {
    msghdr msg{};
    msg.msg_iov = shard_.iov().data();
    msg.msg_iovlen = out_.gather(shard_.iov(), shard_.headers());
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    shard_.count_send();
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return arm_write();
      return teardown();  // the peer is gone
    }
    std::size_t gathered = 0;
    for (std::size_t i = 0; i < msg.msg_iovlen; ++i) gathered += msg.msg_iov[i].iov_len;
    out_.consume(static_cast<std::size_t>(n));
    // Partial write: the kernel buffer is full. Wait until it drains.
    if (static_cast<std::size_t>(n) < gathered) return arm_write();
  }
  if (state_ == State::closing_final) finish_close();
}

// After the last frame went out: shut our side down and read what the peer still sends until it
// closes too (bounded by the close deadline). Closing with unread data would send a reset, and
// the peer could lose our close frame with it.
void WsSession::finish_close() {
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  state_ = State::draining;
  deadline_ = std::chrono::steady_clock::now() + kCloseDeadline;
  shard_.watch_deadline(shared_from_this());
  std::string().swap(partial_);
  decoder_.reset();
  drain();
}

void WsSession::drain() {
  const auto buffer = shard_.read_buffer();
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = ::recv(socket_.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return arm_read();
    if (n <= 0) return teardown();
  }
  teardown();  // still sending after 4 MiB: enough
}

// ---- deadlines ----

bool WsSession::due(std::chrono::steady_clock::time_point now) const noexcept {
  if (state_ == State::done) return false;
  if (state_ != State::open || !auth_) return now >= deadline_;
  const auto idle = now - last_heard_;
  return idle >= ctx_.options.ws_idle_timeout || (!pinged_ && idle >= ctx_.options.ws_idle_timeout / 2);
}

void WsSession::on_due(std::chrono::steady_clock::time_point now) {
  if (state_ == State::done) return;
  if (state_ != State::open) {
    if (now >= deadline_) teardown();  // the peer did not read our close frame or did not answer it
    return;
  }
  if (!auth_) {
    if (now >= deadline_) close_with(4000, "auth timeout");
    return;
  }
  const auto idle = now - last_heard_;
  if (idle >= ctx_.options.ws_idle_timeout) {
    teardown();  // silent: dead peer or broken network
    return;
  }
  if (!pinged_) {
    pinged_ = true;
    enqueue(std::make_shared<const std::string>(), ws::Opcode::ping);
  }
}

void WsSession::teardown() {
  if (state_ == State::done) return;
  state_ = State::done;
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);  // cancels the pending waits; their handlers release this session
  out_.clear();
  std::string().swap(partial_);
  decoder_.reset();
  shard_.remove(this);
  if (auth_) {
    ctx_.hub.detach(shard_index_, auth_->user_id, id_);
    ctx_.hub.unwatch(shard_index_, id_, watched_);
    ctx_.presence.disconnected(auth_->user_id);
  }
}

}  // namespace chat::transport

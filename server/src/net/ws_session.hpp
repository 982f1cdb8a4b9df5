#pragma once

#include "domain/rate_limiter.hpp"
#include "domain/types.hpp"
#include "gateway/connection.hpp"
#include "gateway/protocol.hpp"
#include "net/beast.hpp"
#include "net/server_context.hpp"
#include "net/ws_codec.hpp"
#include "net/ws_out_queue.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace chat::transport {

class WsShard;

// One WebSocket connection after the HTTP upgrade, framed by us (net/ws_codec) on the raw socket.
// It lives on its shard's I/O thread; the hub calls in through posts to that thread.
//
// Idle, it is a socket with one readiness wait pending and a few words of state: no coroutine, no
// timer, no buffer. Readable -> read into the shard's buffer and handle the complete frames there.
// A frame that needs the store runs as a coroutine while reading pauses, so frames are still
// handled one after the other (sends excepted: up to kSendsInFlightMax are pipelined).
// deliver() queues the shared frame and marks the session dirty; the shard's flush writes the
// whole queue with one sendmsg and waits for writability only when the kernel buffer is full.
// Heartbeat pings, idle timeout, auth deadline and close deadline are checked by the shard's sweep.
class WsSession final : public gateway::Connection, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket socket, ServerContext& ctx, WsShard& shard, std::size_t shard_index);
  ~WsSession() override;

  // Takes over after the upgrade request was read and checked: answers 101 with `accept`, then
  // authenticates with `bearer` (if any) and reads frames. `early` holds bytes the client sent
  // after the request.
  void start(std::string_view accept, std::string bearer, std::string_view early);

  void deliver(gateway::SharedFrame frame, gateway::Urgency urgency) override;
  void close_with(std::uint16_t code, std::string_view reason) override;
  std::uint64_t connection_id() const noexcept override { return id_; }
  domain::SessionId session_id() const noexcept override { return auth_ ? auth_->session_id : 0; }

  // For the shard: the next flush (prompt frames), the coalescing timer (batchable frames only).
  void flush();
  void flush_coalesced();
  // Applies the deadlines; true if the session has something to do (the shard then calls on_due).
  bool due(std::chrono::steady_clock::time_point now) const noexcept;
  void on_due(std::chrono::steady_clock::time_point now);
  // Not yet authenticated, or closing: a deadline the shard checks on every tick.
  bool has_deadline() const noexcept { return state_ != State::done && (state_ != State::open || !auth_); }
  static constexpr std::uint32_t kNoSlot = 0xFFFFFFFF;
  std::uint32_t slot = kNoSlot;  // index in the shard's session list

 private:
  enum class State : std::uint8_t {
    open,
    closing,        // our close frame is queued or sent; waiting for the peer's close (or the deadline)
    closing_final,  // flush what is queued (a close frame last), then drop the connection
    draining,       // our side is shut down; discard what the peer still sends until it closes
    done,           // socket closed
  };

  void on_readable();
  void resume();
  std::size_t process(std::span<char> data);
  void on_text(std::string_view text);
  void run_async(gateway::ParsedFrame parsed);
  net::awaitable<void> handle_async(gateway::ParsedFrame parsed);
  net::awaitable<void> handle_bearer(std::string bearer);
  net::awaitable<void> handle_auth(std::string token);
  net::awaitable<void> handle_send(gateway::SendFrame frame);
  net::awaitable<void> dispatch(gateway::ClientFrame& frame, const std::string& request_id);
  net::awaitable<void> handle_presence(std::vector<domain::UserId> users, std::string request_id);
  void reply_error(domain::ErrorCode code,
                   std::string_view message,
                   std::string_view request_id,
                   std::string_view client_msg_id = {});
  void send_text(std::string text);
  void enqueue(gateway::SharedFrame payload, ws::Opcode op, bool raw = false);
  void fail(std::uint16_t code, std::string_view reason);
  void schedule_flush();
  void write_queue();
  void arm_read();
  void arm_write();
  void teardown();
  void finish_close();
  void drain();
  bool wants_read() const noexcept;
  void authenticated(const domain::AuthContext& auth);

  tcp::socket socket_;
  ServerContext& ctx_;
  WsShard& shard_;
  std::uint64_t id_;
  ws::Decoder decoder_;
  std::string partial_;  // bytes of an unfinished frame; empty (no allocation) between frames
  ws::OutQueue out_;     // frames waiting to be written
  std::optional<domain::AuthContext> auth_;
  std::chrono::steady_clock::time_point last_heard_;
  std::chrono::steady_clock::time_point deadline_;  // auth deadline, then close deadline
  domain::TokenBucket send_bucket_;
  std::vector<domain::UserId> watched_;  // presence subscriptions of this connection
  // Allocated on the first typing frame only.
  std::unique_ptr<std::unordered_map<domain::ConversationId, std::chrono::steady_clock::time_point>>
      last_typing_;
  std::uint32_t shard_index_;
  std::uint16_t sends_in_flight_ = 0;
  State state_ = State::open;
  bool reading_ = false;    // a readability wait is pending
  bool writing_ = false;    // a writability wait is pending
  bool dirty_ = false;      // in the shard's flush list
  bool coalesced_ = false;  // in the shard's coalescing list
  bool busy_ = false;       // a frame is being handled by a coroutine: reading pauses
  bool paused_ = false;     // kSendsInFlightMax sends pending: reading pauses
  bool pinged_ = false;     // heartbeat ping sent since the peer was last heard from
  bool counted_ = false;
};

}  // namespace chat::transport

#pragma once

#include "domain/rate_limiter.hpp"
#include "domain/types.hpp"
#include "gateway/connection.hpp"
#include "gateway/protocol.hpp"
#include "net/beast.hpp"
#include "net/server_context.hpp"

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace chat::transport {

// One WebSocket connection. Two coroutines on the connection's executor: the reader (parses
// frames, calls the ChatService) and the writer (the only one that writes). deliver() and
// close_with() queue and wake the writer. Everything here runs on the connection's own I/O
// thread; the hub calls in through posts to that thread.
class WsSession final : public gateway::Connection, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket socket, ServerContext& ctx, std::size_t shard);
  ~WsSession() override;

  // Takes over after the HTTP upgrade request was read.
  void start(http::request<http::string_body> upgrade);

  void deliver(gateway::SharedFrame frame) override;
  void close_with(std::uint16_t code, std::string_view reason) override;
  std::uint64_t connection_id() const noexcept override { return id_; }
  domain::SessionId session_id() const noexcept override { return auth_ ? auth_->session_id : 0; }

 private:
  net::awaitable<void> run(http::request<http::string_body> upgrade);
  net::awaitable<void> reader();
  net::awaitable<void> writer();
  net::awaitable<void> auth_deadline();
  net::awaitable<void> handle_frame(std::string text);
  net::awaitable<void> handle_send(gateway::SendFrame frame);
  net::awaitable<void> dispatch(gateway::ClientFrame& frame, const std::string& request_id);
  net::awaitable<void> handle_presence(std::vector<domain::UserId> users, std::string request_id);
  void reply_error(domain::ErrorCode code,
                   std::string_view message,
                   std::string_view request_id,
                   std::string_view client_msg_id = {});
  void send_text(std::string text);
  void authenticated(const domain::AuthContext& auth);

  websocket::stream<beast::tcp_stream> ws_;
  ServerContext& ctx_;
  std::size_t shard_;
  std::uint64_t id_;
  beast::flat_buffer buffer_;
  net::steady_timer wake_;
  net::steady_timer auth_timer_;
  net::steady_timer send_slot_;  // wakes the reader when a pipelined send finishes
  net::steady_timer close_deadline_;
  // Frames waiting for the writer: [queue_head_, size). A vector, not a deque, because an empty
  // std::deque already allocates ~600 bytes and most connections are idle.
  std::vector<gateway::SharedFrame> queue_;
  std::size_t queue_head_ = 0;
  std::size_t queued_bytes_ = 0;
  std::optional<domain::AuthContext> auth_;
  std::optional<std::pair<std::uint16_t, std::string>> close_;
  bool closed_ = false;
  bool counted_ = false;
  int sends_in_flight_ = 0;
  domain::TokenBucket send_bucket_;
  std::vector<domain::UserId> watched_;  // presence subscriptions of this connection
  std::unordered_map<domain::ConversationId, std::chrono::steady_clock::time_point> last_typing_;
};

}  // namespace chat::transport

#pragma once

#include "domain/error_code.hpp"
#include "domain/rate_limiter.hpp"
#include "domain/types.hpp"
#include "net/asio.hpp"
#include "store/store.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace chat::auth {
class PasswordHasher;
class TokenCache;
}  // namespace chat::auth
namespace chat::bus {
class Bus;
}
namespace chat::obs {
class Metrics;
}
namespace chat::store {
class StoreService;
}

namespace chat::service {

// An expected refusal, reported to the client as-is. Infrastructure failures are exceptions
// (store::StoreUnavailable, auth::HasherOverloaded), mapped to `unavailable` at the edge.
struct Failure {
  domain::ErrorCode code = domain::ErrorCode::internal;
  std::string message;
  std::chrono::seconds retry_after{0};
};

template <class T>
using Result = std::variant<T, Failure>;

template <class T>
const Failure* failed(const Result<T>& r) {
  return std::get_if<Failure>(&r);
}

struct DeviceInfo {
  domain::DeviceType type = domain::DeviceType::web;
  std::string name;
};

struct RegisterRequest {
  std::string username;
  std::string email;
  std::string password;
  std::string display_name;
  DeviceInfo device;
  std::string ip;
};

struct LoginRequest {
  std::string login;
  std::string password;
  DeviceInfo device;
  std::string ip;
};

struct SessionGrant {
  domain::User user;
  domain::SessionId session_id = 0;
  domain::DeviceId device_id = 0;
  std::string access_token;
  domain::TimeMs access_expires_at = 0;
  std::string refresh_token;
  domain::TimeMs refresh_expires_at = 0;
};

struct SendOutcome {
  domain::Message message;
  bool duplicate = false;  // a retry: the stored original, not delivered again
};

struct ReadOutcome {
  domain::ConversationId conversation_id = 0;
  domain::Seq read_seq = 0;
};

// The use cases of the product, shared by REST (api/) and the WebSocket gateway (net/ws_session):
// both call the same function, so a send or a read has the same rules and effects whichever way
// it arrives. Runs on I/O threads; every blocking step is awaited on the store or hashing pools.
class ChatService {
 public:
  struct Options {
    std::chrono::seconds access_ttl{3600};
    std::chrono::seconds refresh_ttl{30 * 24 * 3600};
    double auth_per_ip_per_min = 30;
    double auth_per_account_per_min = 10;
    // Shared limiters (cluster mode: in Redis). Null: per-process buckets with the rates above.
    std::shared_ptr<domain::RateLimiter> auth_ip_limiter;
    std::shared_ptr<domain::RateLimiter> auth_account_limiter;
    // Null: every authentication reads the store.
    auth::TokenCache* token_cache = nullptr;
  };
  using ClockMs = std::function<domain::TimeMs()>;

  ChatService(store::StoreService& store,
              bus::Bus& bus,
              auth::PasswordHasher& hasher,
              obs::Metrics& metrics,
              Options options,
              ClockMs clock);

  net::awaitable<Result<SessionGrant>> register_user(RegisterRequest request);
  net::awaitable<Result<SessionGrant>> login(LoginRequest request);
  net::awaitable<Result<SessionGrant>> refresh(std::string refresh_token);
  net::awaitable<void> logout(domain::AuthContext auth);
  net::awaitable<std::optional<domain::AuthContext>> authenticate(std::string token);
  net::awaitable<std::vector<store::DeviceSession>> devices(domain::AuthContext auth);
  // Logs one of the caller's devices out everywhere (its sockets close with 4001).
  net::awaitable<Result<bool>> revoke_device(domain::AuthContext auth, domain::DeviceId device);

  net::awaitable<Result<domain::User>> get_profile(domain::AuthContext auth, domain::UserId user);
  net::awaitable<Result<domain::User>> update_profile(domain::AuthContext auth,
                                                      domain::UserId user,
                                                      store::ProfileUpdate update);
  net::awaitable<Result<std::vector<domain::User>>> search_users(domain::AuthContext auth,
                                                                 std::string query,
                                                                 int limit);

  net::awaitable<std::vector<domain::Conversation>> list_conversations(domain::AuthContext auth);
  // The bool is true when the conversation was created by this call.
  net::awaitable<Result<std::pair<domain::Conversation, bool>>> open_direct(domain::AuthContext auth,
                                                                            domain::UserId other);
  net::awaitable<Result<domain::Conversation>> get_conversation(domain::AuthContext auth,
                                                                domain::ConversationId id);
  net::awaitable<Result<store::HistoryPage>> history(domain::AuthContext auth,
                                                     domain::ConversationId id,
                                                     store::HistoryQuery query);

  // Validates, stores durably, then fans the message out to every member's devices except
  // `except_connection` (the sending WebSocket, which gets an ack instead).
  net::awaitable<Result<SendOutcome>> send(domain::AuthContext auth,
                                           domain::ConversationId conversation,
                                           std::string client_msg_id,
                                           std::string body,
                                           std::optional<domain::MessageId> reply_to,
                                           std::uint64_t except_connection);
  net::awaitable<Result<ReadOutcome>> mark_read(domain::AuthContext auth, domain::MessageId message);
  net::awaitable<Result<ReadOutcome>> mark_read_seq(domain::AuthContext auth,
                                                    domain::ConversationId conversation,
                                                    domain::Seq seq);

  net::awaitable<Result<ReadOutcome>> mark_delivered_seq(domain::AuthContext auth,
                                                         domain::ConversationId conversation,
                                                         domain::Seq seq);

  // Groups. Each change is appended to the log and fanned out to the members it concerns.
  net::awaitable<Result<domain::Conversation>> create_group(domain::AuthContext auth,
                                                            std::string name,
                                                            std::vector<domain::UserId> members);
  net::awaitable<Result<domain::Conversation>> add_members(domain::AuthContext auth,
                                                           domain::ConversationId id,
                                                           std::vector<domain::UserId> users);
  // target == auth.user_id is leaving.
  net::awaitable<Result<bool>> remove_member(domain::AuthContext auth,
                                             domain::ConversationId id,
                                             domain::UserId target);
  net::awaitable<Result<domain::Conversation>> rename_group(domain::AuthContext auth,
                                                            domain::ConversationId id,
                                                            std::string name);
  net::awaitable<Result<domain::Conversation>> set_role(domain::AuthContext auth,
                                                        domain::ConversationId id,
                                                        domain::UserId target,
                                                        domain::MemberRole role);
  net::awaitable<Result<store::Invite>> create_invite(domain::AuthContext auth, domain::ConversationId id);
  net::awaitable<Result<std::vector<store::Invite>>> list_invites(domain::AuthContext auth,
                                                                  domain::ConversationId id);
  net::awaitable<Result<bool>> revoke_invite(domain::AuthContext auth,
                                             domain::ConversationId id,
                                             std::string code);
  net::awaitable<Result<domain::Conversation>> join(domain::AuthContext auth,
                                                    domain::ConversationId id,
                                                    std::string code);

  // Edits, deletes and reactions: `event` is the new log entry, `message` the target's new state.
  struct Change {
    domain::Message event;
    domain::Message message;
  };
  net::awaitable<Result<Change>> edit_message(domain::AuthContext auth,
                                              domain::MessageId id,
                                              std::string body);
  net::awaitable<Result<Change>> delete_message(domain::AuthContext auth, domain::MessageId id);
  net::awaitable<Result<Change>> react(domain::AuthContext auth,
                                       domain::MessageId id,
                                       std::string emoji,
                                       bool on);

  net::awaitable<Result<std::vector<domain::Receipt>>> receipts(domain::AuthContext auth,
                                                                domain::ConversationId id);
  net::awaitable<Result<store::SyncPage>> sync(
      domain::AuthContext auth, std::vector<std::pair<domain::ConversationId, domain::Seq>> since, int limit);
  // Typing: ephemeral, never stored; fanned out to the other members' devices.
  net::awaitable<Result<bool>> typing(domain::AuthContext auth, domain::ConversationId id);
  // The subset of `users` the caller may watch (shares a conversation with).
  net::awaitable<std::vector<domain::UserId>> watchable(domain::AuthContext auth,
                                                        std::vector<domain::UserId> users);

  net::awaitable<bool> healthy();

 private:
  net::awaitable<Result<SessionGrant>> grant(domain::User user, DeviceInfo device);
  std::optional<Failure> check_rate(const std::string& ip, const std::string& account);
  void publish_receipt(const store::ReadResult& result, domain::UserId user);
  template <class Job>
  net::awaitable<Result<store::ChangeResult>> change(Job job);
  net::awaitable<Result<domain::Conversation>> conversation_after(domain::AuthContext auth,
                                                                  Result<store::ChangeResult> r);

  store::StoreService& store_;
  bus::Bus& bus_;
  auth::PasswordHasher& hasher_;
  obs::Metrics& metrics_;
  Options options_;
  ClockMs clock_;
  std::shared_ptr<domain::RateLimiter> per_ip_;
  std::shared_ptr<domain::RateLimiter> per_account_;
  void revoked(domain::SessionId session);
};

}  // namespace chat::service

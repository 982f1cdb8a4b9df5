#include "service/chat_service.hpp"

#include "auth/password_hasher.hpp"
#include "auth/token_cache.hpp"
#include "auth/tokens.hpp"
#include "bus/bus.hpp"
#include "domain/limits.hpp"
#include "domain/utf8.hpp"
#include "domain/validation.hpp"
#include "gateway/protocol.hpp"
#include "obs/metrics.hpp"
#include "store/store_service.hpp"

namespace chat::service {

using domain::ErrorCode;

namespace {

// One wording for "does not exist" and "not yours", so the answer tells nothing either way.
Failure not_found() {
  return Failure{ErrorCode::not_found, "not found", {}};
}

Failure invalid(ErrorCode code, std::string message) {
  return Failure{code, std::move(message), {}};
}

}  // namespace

ChatService::ChatService(store::StoreService& store,
                         bus::Bus& bus,
                         auth::PasswordHasher& hasher,
                         obs::Metrics& metrics,
                         Options options,
                         ClockMs clock)
    : store_(store),
      bus_(bus),
      hasher_(hasher),
      metrics_(metrics),
      options_(options),
      clock_(std::move(clock)),
      // A burst of one minute's allowance, refilled evenly: N per minute admits N at once.
      per_ip_(options.auth_ip_limiter != nullptr
                  ? options.auth_ip_limiter
                  : std::make_shared<domain::LocalRateLimiter>(options.auth_per_ip_per_min,
                                                               std::max(1.0, options.auth_per_ip_per_min))),
      per_account_(
          options.auth_account_limiter != nullptr
              ? options.auth_account_limiter
              : std::make_shared<domain::LocalRateLimiter>(
                    options.auth_per_account_per_min, std::max(1.0, options.auth_per_account_per_min))) {}

void ChatService::revoked(domain::SessionId session) {
  if (options_.token_cache != nullptr) options_.token_cache->revoke_session(session);
}

std::optional<Failure> ChatService::check_rate(const std::string& ip, const std::string& account) {
  const auto now = clock_();
  std::chrono::milliseconds wait{0};
  if (!per_ip_->try_take(ip, now, &wait) ||
      (!account.empty() && !per_account_->try_take(account, now, &wait))) {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(wait + std::chrono::milliseconds(999));
    return Failure{ErrorCode::rate_limited, "too many attempts; retry later",
                   std::max(secs, std::chrono::seconds(1))};
  }
  return std::nullopt;
}

net::awaitable<Result<SessionGrant>> ChatService::grant(domain::User user, DeviceInfo device) {
  SessionGrant g;
  g.access_token = auth::new_token();
  g.refresh_token = auth::new_token();
  const auto now = clock_();
  g.access_expires_at =
      now + std::chrono::duration_cast<std::chrono::milliseconds>(options_.access_ttl).count();
  g.refresh_expires_at =
      now + std::chrono::duration_cast<std::chrono::milliseconds>(options_.refresh_ttl).count();
  store::NewSession s{user.id,
                      device.type,
                      device.name,
                      auth::token_hash(g.access_token),
                      g.access_expires_at,
                      auth::token_hash(g.refresh_token),
                      g.refresh_expires_at};
  auto job1 = [s](store::WriteContext& w) { return w.store.create_session(s, w.now); };
  const auto ids = co_await store_.write(std::move(job1));
  g.session_id = ids.session_id;
  g.device_id = ids.device_id;
  g.user = std::move(user);
  co_return g;
}

net::awaitable<Result<SessionGrant>> ChatService::register_user(RegisterRequest r) {
  if (auto e = domain::check_username(r.username))
    co_return invalid(*e, "username must be 3..32 characters of [A-Za-z0-9_.-]");
  if (auto e = domain::check_email(r.email)) co_return invalid(*e, "email is not a valid address");
  if (auto e = domain::check_password(r.password)) co_return invalid(*e, "password must be 8..1024 bytes");
  if (auto e = domain::check_text(r.display_name, domain::limits::display_name_code_points_max))
    co_return invalid(*e, "display_name must be at most 64 characters");
  if (auto e = domain::check_text(r.device.name, domain::limits::device_name_code_points_max))
    co_return invalid(*e, "device name must be at most 64 characters");
  if (auto f = check_rate(r.ip, "")) co_return *f;

  // Await into a named variable: GCC 12 miscompiles co_await inside a braced initializer.
  auto password_hash = co_await hasher_.hash(r.password);
  store::NewUser user{r.username, r.email, std::move(password_hash), r.display_name};
  auto job = [user](store::WriteContext& w) { return w.store.create_user(user, w.now); };
  const auto created = co_await store_.write(std::move(job));
  switch (created.outcome) {
    case store::CreateUserOutcome::username_taken:
      co_return invalid(ErrorCode::username_taken, "username is taken");
    case store::CreateUserOutcome::email_taken:
      co_return invalid(ErrorCode::email_taken, "email is already registered");
    case store::CreateUserOutcome::created:
      break;
  }
  co_return co_await grant(created.user, r.device);
}

net::awaitable<Result<SessionGrant>> ChatService::login(LoginRequest r) {
  if (r.login.empty() || r.login.size() > domain::limits::email_bytes_max || r.password.empty() ||
      r.password.size() > domain::limits::password_bytes_max)
    co_return invalid(ErrorCode::invalid_credentials, "wrong login or password");
  if (auto e = domain::check_text(r.device.name, domain::limits::device_name_code_points_max))
    co_return invalid(*e, "device name must be at most 64 characters");
  const auto folded = domain::fold_case(r.login);
  if (auto f = check_rate(r.ip, folded)) co_return *f;

  auto job2 = [folded](store::Store& s) { return s.find_credentials(folded); };
  const auto creds = co_await store_.read(std::move(job2));
  std::string stored = creds ? creds->password_hash : std::string();
  const bool ok = co_await hasher_.verify(std::move(stored), r.password);
  if (!ok) co_return invalid(ErrorCode::invalid_credentials, "wrong login or password");
  const auto id = creds->user_id;
  auto job3 = [id](store::Store& s) { return s.find_user(id); };
  auto user = co_await store_.read(std::move(job3));
  if (!user) co_return invalid(ErrorCode::invalid_credentials, "wrong login or password");
  co_return co_await grant(std::move(*user), r.device);
}

net::awaitable<Result<SessionGrant>> ChatService::refresh(std::string refresh_token) {
  if (refresh_token.empty() || refresh_token.size() > 256)
    co_return invalid(ErrorCode::unauthorized, "invalid refresh token");
  SessionGrant g;
  g.access_token = auth::new_token();
  g.refresh_token = auth::new_token();
  const auto now = clock_();
  g.access_expires_at =
      now + std::chrono::duration_cast<std::chrono::milliseconds>(options_.access_ttl).count();
  g.refresh_expires_at =
      now + std::chrono::duration_cast<std::chrono::milliseconds>(options_.refresh_ttl).count();
  store::RotateRequest req{auth::token_hash(refresh_token), auth::token_hash(g.access_token),
                           g.access_expires_at, auth::token_hash(g.refresh_token), g.refresh_expires_at};
  auto job4 = [req](store::WriteContext& w) { return w.store.rotate_refresh(req, w.now); };
  const auto rotated = co_await store_.write(std::move(job4));
  if (rotated.outcome == store::RotateOutcome::reused) {
    // The same refresh token came back after it was rotated: someone else holds a copy. The
    // session is revoked (by the store); close its live sockets too.
    revoked(rotated.auth.session_id);
    bus_.revoke_session(rotated.auth.user_id, rotated.auth.session_id);
    co_return invalid(ErrorCode::unauthorized, "refresh token was already used; session revoked");
  }
  if (rotated.outcome != store::RotateOutcome::rotated)
    co_return invalid(ErrorCode::unauthorized, "invalid refresh token");
  revoked(rotated.auth.session_id);  // the previous access token is no longer valid
  const auto uid = rotated.auth.user_id;
  auto job5 = [uid](store::Store& s) { return s.find_user(uid); };
  auto user = co_await store_.read(std::move(job5));
  if (!user) co_return invalid(ErrorCode::unauthorized, "invalid refresh token");
  g.user = std::move(*user);
  g.session_id = rotated.auth.session_id;
  g.device_id = rotated.auth.device_id;
  co_return g;
}

net::awaitable<void> ChatService::logout(domain::AuthContext auth) {
  const auto session = auth.session_id;
  auto job6 = [session](store::WriteContext& w) { return w.store.revoke_session(session, w.now); };
  co_await store_.write(std::move(job6));
  revoked(session);
  bus_.revoke_session(auth.user_id, auth.session_id);
}

net::awaitable<std::optional<domain::AuthContext>> ChatService::authenticate(std::string token) {
  if (token.empty() || token.size() > 256) co_return std::nullopt;
  auto hash = auth::token_hash(token);
  auto* cache = options_.token_cache;
  const auto mono = auth::TokenCache::Clock::now();
  const auto now = clock_();
  if (cache != nullptr) {
    if (auto hit = cache->find(hash, mono, now)) co_return hit;
  }
  const std::uint64_t epoch = cache != nullptr ? cache->epoch() : 0;
  auto job7 = [hash, now](store::Store& s) { return s.find_access(hash, now); };
  auto found = co_await store_.read(std::move(job7));
  if (found && cache != nullptr) cache->insert(hash, *found, epoch, mono);
  co_return found;
}

net::awaitable<std::vector<store::DeviceSession>> ChatService::devices(domain::AuthContext auth) {
  const auto user = auth.user_id;
  const auto now = clock_();
  auto job = [user, now](store::Store& s) { return s.list_devices(user, now); };
  co_return co_await store_.read(std::move(job));
}

net::awaitable<Result<bool>> ChatService::revoke_device(domain::AuthContext auth, domain::DeviceId device) {
  const auto user = auth.user_id;
  auto job = [user, device](store::WriteContext& w) { return w.store.revoke_device(user, device, w.now); };
  const auto sessions = co_await store_.write(std::move(job));
  if (sessions.empty()) co_return not_found();
  for (auto s : sessions) {
    revoked(s);
    bus_.revoke_session(user, s);
  }
  co_return true;
}

net::awaitable<Result<domain::User>> ChatService::get_profile(domain::AuthContext auth, domain::UserId id) {
  auto job8 = [id](store::Store& s) { return s.find_user(id); };
  auto user = co_await store_.read(std::move(job8));
  if (!user) co_return not_found();
  if (id != auth.user_id) user->email.clear();
  co_return std::move(*user);
}

net::awaitable<Result<domain::User>> ChatService::update_profile(domain::AuthContext auth,
                                                                 domain::UserId id,
                                                                 store::ProfileUpdate update) {
  if (id != auth.user_id) {
    auto job9 = [id](store::Store& s) { return s.find_user(id).has_value(); };
    const auto exists = co_await store_.read(std::move(job9));
    if (!exists) co_return not_found();
    co_return invalid(ErrorCode::forbidden, "you can only change your own profile");
  }
  if (update.display_name) {
    if (auto e = domain::check_text(*update.display_name, domain::limits::display_name_code_points_max))
      co_return invalid(*e, "display_name must be at most 64 characters");
  }
  if (update.bio) {
    if (auto e = domain::check_text(*update.bio, domain::limits::bio_code_points_max))
      co_return invalid(*e, "bio must be at most 500 characters");
  }
  if (update.profile_picture) {
    if (update.profile_picture->size() > domain::limits::profile_picture_bytes_max ||
        !domain::is_valid_utf8(*update.profile_picture))
      co_return invalid(ErrorCode::bad_request, "profile_picture must be at most 255 bytes");
  }
  auto job10 = [id, update](store::WriteContext& w) { return w.store.update_profile(id, update); };
  auto user = co_await store_.write(std::move(job10));
  if (!user) co_return not_found();
  co_return std::move(*user);
}

net::awaitable<Result<std::vector<domain::User>>> ChatService::search_users(domain::AuthContext /*auth*/,
                                                                            std::string query,
                                                                            int limit) {
  const auto count = domain::utf8_code_points(query);
  if (!count) co_return invalid(ErrorCode::invalid_utf8, "q is not valid UTF-8");
  if (*count < 1 || *count > domain::limits::search_query_code_points_max)
    co_return invalid(ErrorCode::bad_request, "q must be 1..64 characters");
  if (limit < 1 || limit > domain::limits::search_results_max)
    co_return invalid(ErrorCode::bad_request, "limit must be 1..50");
  auto folded = domain::fold_case(query);
  auto job11 = [folded, limit](store::Store& s) { return s.search_users(folded, limit); };
  auto users = co_await store_.read(std::move(job11));
  for (auto& u : users) u.email.clear();
  co_return users;
}

net::awaitable<std::vector<domain::Conversation>> ChatService::list_conversations(domain::AuthContext auth) {
  const auto uid = auth.user_id;
  auto job12 = [uid](store::Store& s) { return s.list_conversations(uid); };
  co_return co_await store_.read(std::move(job12));
}

net::awaitable<Result<std::pair<domain::Conversation, bool>>> ChatService::open_direct(
    domain::AuthContext auth, domain::UserId other) {
  const auto self = auth.user_id;
  auto job13 = [self, other](store::WriteContext& w) { return w.store.open_direct(self, other, w.now); };
  const auto opened = co_await store_.write(std::move(job13));
  if (opened.outcome == store::OpenDirectOutcome::user_not_found) co_return not_found();
  const auto id = opened.conversation_id;
  auto job14 = [self, id](store::Store& s) { return s.get_conversation(self, id); };
  auto conversation = co_await store_.read(std::move(job14));
  if (!conversation) co_return not_found();
  co_return std::pair{std::move(*conversation), opened.outcome == store::OpenDirectOutcome::created};
}

net::awaitable<Result<domain::Conversation>> ChatService::get_conversation(domain::AuthContext auth,
                                                                           domain::ConversationId id) {
  const auto self = auth.user_id;
  auto job15 = [self, id](store::Store& s) { return s.get_conversation(self, id); };
  auto conversation = co_await store_.read(std::move(job15));
  if (!conversation) co_return not_found();
  co_return std::move(*conversation);
}

net::awaitable<Result<store::HistoryPage>> ChatService::history(domain::AuthContext auth,
                                                                domain::ConversationId id,
                                                                store::HistoryQuery query) {
  if (query.before && query.after) co_return invalid(ErrorCode::bad_request, "use before or after, not both");
  if (query.limit < 1 || query.limit > domain::limits::history_page_max)
    co_return invalid(ErrorCode::bad_request, "limit must be 1..100");
  const auto self = auth.user_id;
  auto job16 = [self, id, query](store::Store& s) { return s.history(self, id, query); };
  std::optional<store::HistoryPage> page;
  if (store_.inline_reads()) {
    page = store_.read_inline(job16);  // SQLite: a page is ~100 us of work, less than two hand-offs
  } else {
    page = co_await store_.read(std::move(job16));
  }
  if (!page) co_return not_found();
  co_return std::move(*page);
}

net::awaitable<Result<SendOutcome>> ChatService::send(domain::AuthContext auth,
                                                      domain::ConversationId conversation,
                                                      std::string client_msg_id,
                                                      std::string body,
                                                      std::optional<domain::MessageId> reply_to,
                                                      std::uint64_t except_connection) {
  if (domain::check_client_msg_id(client_msg_id))
    co_return invalid(ErrorCode::bad_request, "client_msg_id must be 1..64 characters of [A-Za-z0-9_-]");
  if (auto e = domain::check_body(body)) {
    co_return invalid(*e, std::string(domain::body_error_text(*e)));
  }
  store::NewMessage m{conversation, auth.user_id, std::move(client_msg_id), std::move(body), reply_to};
  auto* bus = &bus_;
  auto* metrics = &metrics_;
  auto job17 = [m = std::move(m), bus, metrics, except_connection](store::WriteContext& w) {
    auto r = w.store.append_message(m, w.next_id(), w.now);
    if (r.outcome == store::AppendOutcome::appended) {
      // Serialized once here, shared by every recipient; published after the commit, in commit
      // order, from the writer thread. The member list moves to the hook (send() does not read it).
      auto frame = std::make_shared<const std::string>(gateway::frames::message(r.message));
      w.after_commit([bus, metrics, members = std::move(r.members), frame, except_connection]() mutable {
        metrics->messages_in.fetch_add(1, std::memory_order_relaxed);
        bus->publish(std::move(members), std::move(frame), except_connection);
      });
    }
    return r;
  };
  auto result = co_await store_.write(std::move(job17));
  switch (result.outcome) {
    case store::AppendOutcome::not_found:
      co_return not_found();
    case store::AppendOutcome::bad_reply:
      co_return invalid(ErrorCode::bad_request, "reply_to is not a message of this conversation you can see");
    case store::AppendOutcome::conflict:
      co_return invalid(ErrorCode::idempotency_conflict,
                        "client_msg_id was already used in another conversation");
    case store::AppendOutcome::duplicate:
      co_return SendOutcome{std::move(result.message), true};
    case store::AppendOutcome::appended:
      break;
  }
  co_return SendOutcome{std::move(result.message), false};
}

void ChatService::publish_receipt(const store::ReadResult& result, domain::UserId user) {
  if (result.outcome != store::ReadOutcome::updated) return;
  auto frame = std::make_shared<const std::string>(
      gateway::frames::receipt(result.conversation_id, user, result.delivered_seq, result.read_seq));
  bus_.publish(result.members, std::move(frame));
}

net::awaitable<Result<ReadOutcome>> ChatService::mark_read(domain::AuthContext auth,
                                                           domain::MessageId message) {
  const auto self = auth.user_id;
  auto job = [self, message](store::WriteContext& w) { return w.store.mark_read(self, message, w.now); };
  const auto r = co_await store_.write(std::move(job));
  if (r.outcome == store::ReadOutcome::not_found) co_return not_found();
  publish_receipt(r, self);
  co_return ReadOutcome{r.conversation_id, r.read_seq};
}

net::awaitable<Result<ReadOutcome>> ChatService::mark_read_seq(domain::AuthContext auth,
                                                               domain::ConversationId conversation,
                                                               domain::Seq seq) {
  const auto self = auth.user_id;
  auto job18 = [self, conversation, seq](store::WriteContext& w) {
    return w.store.mark_read_seq(self, conversation, seq, w.now);
  };
  const auto r = co_await store_.write(std::move(job18));
  if (r.outcome == store::ReadOutcome::not_found) co_return not_found();
  publish_receipt(r, self);
  co_return ReadOutcome{r.conversation_id, r.read_seq};
}

net::awaitable<Result<ReadOutcome>> ChatService::mark_delivered_seq(domain::AuthContext auth,
                                                                    domain::ConversationId conversation,
                                                                    domain::Seq seq) {
  const auto self = auth.user_id;
  auto job = [self, conversation, seq](store::WriteContext& w) {
    return w.store.mark_delivered_seq(self, conversation, seq, w.now);
  };
  const auto r = co_await store_.write(std::move(job));
  if (r.outcome == store::ReadOutcome::not_found) co_return not_found();
  publish_receipt(r, self);
  co_return ReadOutcome{r.conversation_id, r.read_seq};
}

net::awaitable<bool> ChatService::healthy() {
  auto job19 = [](store::Store& s) { return s.healthy(); };
  co_return co_await store_.read(std::move(job19));
}

}  // namespace chat::service

// ChatService: groups, invites, edits, deletes, reactions, receipts, sync, typing, presence.

#include "bus/bus.hpp"
#include "domain/limits.hpp"
#include "domain/utf8.hpp"
#include "domain/validation.hpp"
#include "gateway/protocol.hpp"
#include "service/chat_service.hpp"
#include "store/store_service.hpp"

#include <sodium.h>

#include <array>

namespace chat::service {

using domain::ErrorCode;

namespace {

Failure fail(ErrorCode code, std::string message) {
  return Failure{code, std::move(message), {}};
}

std::optional<Failure> check_group_name(const std::string& name) {
  const auto count = domain::utf8_code_points(name);
  if (!count) return fail(ErrorCode::invalid_utf8, "name is not valid UTF-8");
  if (*count < 1 || *count > domain::limits::group_name_code_points_max ||
      name.find_first_not_of(" \t\r\n") == std::string::npos)
    return fail(ErrorCode::bad_request, "name must be 1..100 characters");
  return std::nullopt;
}

std::string new_invite_code() {
  std::array<unsigned char, 16> raw{};
  randombytes_buf(raw.data(), raw.size());
  std::string out(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), raw.data(), raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.find('\0'));
  return out;
}

}  // namespace

// Runs a change on the writer thread; on success its events are serialized once and published
// after the commit, in commit order, to the recipients the store named.
template <class Job>
net::awaitable<Result<store::ChangeResult>> ChatService::change(Job job) {
  auto* bus = &bus_;
  auto wrapped = [job = std::move(job), bus](store::WriteContext& w) mutable {
    const store::NextId next = [&w] { return w.next_id(); };
    auto r = job(w.store, next, w.now);
    if (r.outcome == store::ChangeOutcome::ok && !r.events.empty()) {
      std::vector<gateway::SharedFrame> frames;
      for (const auto& e : r.events)
        frames.push_back(std::make_shared<const std::string>(gateway::frames::message(e)));
      w.after_commit([bus, recipients = r.recipients, frames = std::move(frames)] {
        for (const auto& f : frames) bus->publish(recipients, f);
      });
    }
    return r;
  };
  auto r = co_await store_.write(std::move(wrapped));
  switch (r.outcome) {
    case store::ChangeOutcome::ok:
      co_return r;
    case store::ChangeOutcome::not_found:
      co_return fail(ErrorCode::not_found, "not found");
    case store::ChangeOutcome::forbidden:
      co_return fail(ErrorCode::forbidden, "you may not make this change");
    case store::ChangeOutcome::group_full:
      co_return fail(ErrorCode::group_full, "a group has at most 100 members");
    case store::ChangeOutcome::invalid:
      co_return fail(ErrorCode::bad_request, "this change is not possible");
  }
  co_return fail(ErrorCode::internal, "unexpected outcome");
}

net::awaitable<Result<domain::Conversation>> ChatService::conversation_after(domain::AuthContext auth,
                                                                             Result<store::ChangeResult> r) {
  if (auto* f = failed(r)) co_return *f;
  co_return co_await get_conversation(auth, std::get<store::ChangeResult>(r).conversation_id);
}

net::awaitable<Result<domain::Conversation>> ChatService::create_group(domain::AuthContext auth,
                                                                       std::string name,
                                                                       std::vector<domain::UserId> members) {
  if (auto f = check_group_name(name)) co_return *f;
  if (members.size() > domain::limits::group_members_max * 2)
    co_return fail(ErrorCode::group_full, "a group has at most 100 members");
  store::NewGroup group{auth.user_id, std::move(name), std::move(members)};
  auto job = [group](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.create_group(group, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return co_await conversation_after(auth, std::move(r));
}

net::awaitable<Result<domain::Conversation>> ChatService::add_members(domain::AuthContext auth,
                                                                      domain::ConversationId id,
                                                                      std::vector<domain::UserId> users) {
  if (users.empty() || users.size() > domain::limits::group_members_max)
    co_return fail(ErrorCode::bad_request, "user_ids must list 1..100 users");
  const auto actor = auth.user_id;
  auto job = [actor, id, users](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.add_members(actor, id, users, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return co_await conversation_after(auth, std::move(r));
}

net::awaitable<Result<bool>> ChatService::remove_member(domain::AuthContext auth,
                                                        domain::ConversationId id,
                                                        domain::UserId target) {
  const auto actor = auth.user_id;
  auto job = [actor, id, target](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.remove_member(actor, id, target, next, now);
  };
  auto r = co_await change(std::move(job));
  if (auto* f = failed(r)) co_return *f;
  co_return true;
}

net::awaitable<Result<domain::Conversation>> ChatService::rename_group(domain::AuthContext auth,
                                                                       domain::ConversationId id,
                                                                       std::string name) {
  if (auto f = check_group_name(name)) co_return *f;
  const auto actor = auth.user_id;
  auto job = [actor, id, name](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.rename_group(actor, id, name, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return co_await conversation_after(auth, std::move(r));
}

net::awaitable<Result<domain::Conversation>> ChatService::set_role(domain::AuthContext auth,
                                                                   domain::ConversationId id,
                                                                   domain::UserId target,
                                                                   domain::MemberRole role) {
  const auto actor = auth.user_id;
  auto job = [actor, id, target, role](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.set_role(actor, id, target, role, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return co_await conversation_after(auth, std::move(r));
}

net::awaitable<Result<store::Invite>> ChatService::create_invite(domain::AuthContext auth,
                                                                 domain::ConversationId id) {
  const auto actor = auth.user_id;
  auto code = new_invite_code();
  auto job = [actor, id, code](store::WriteContext& w) {
    return w.store.create_invite(actor, id, code, w.now);
  };
  auto r = co_await store_.write(std::move(job));
  if (r.outcome == store::InviteOutcome::not_found) co_return fail(ErrorCode::not_found, "not found");
  if (r.outcome == store::InviteOutcome::forbidden)
    co_return fail(ErrorCode::forbidden, "only group owners and admins manage invites");
  co_return r.invites.front();
}

net::awaitable<Result<std::vector<store::Invite>>> ChatService::list_invites(domain::AuthContext auth,
                                                                             domain::ConversationId id) {
  const auto actor = auth.user_id;
  auto job = [actor, id](store::Store& s) { return s.list_invites(actor, id); };
  auto r = co_await store_.read(std::move(job));
  if (r.outcome == store::InviteOutcome::not_found) co_return fail(ErrorCode::not_found, "not found");
  if (r.outcome == store::InviteOutcome::forbidden)
    co_return fail(ErrorCode::forbidden, "only group owners and admins manage invites");
  co_return std::move(r.invites);
}

net::awaitable<Result<bool>> ChatService::revoke_invite(domain::AuthContext auth,
                                                        domain::ConversationId id,
                                                        std::string code) {
  const auto actor = auth.user_id;
  auto job = [actor, id, code](store::WriteContext& w) {
    return w.store.revoke_invite(actor, id, code, w.now);
  };
  const auto r = co_await store_.write(std::move(job));
  if (r == store::InviteOutcome::not_found) co_return fail(ErrorCode::not_found, "not found");
  if (r == store::InviteOutcome::forbidden)
    co_return fail(ErrorCode::forbidden, "only group owners and admins manage invites");
  co_return true;
}

net::awaitable<Result<domain::Conversation>> ChatService::join(domain::AuthContext auth,
                                                               domain::ConversationId id,
                                                               std::string code) {
  if (code.empty() || code.size() > 64) co_return fail(ErrorCode::not_found, "not found");
  const auto user = auth.user_id;
  auto job = [user, id, code](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.join_by_invite(user, id, code, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return co_await conversation_after(auth, std::move(r));
}

namespace {

Result<ChatService::Change> to_change(Result<store::ChangeResult> r) {
  if (auto* f = failed(r)) return *f;
  auto& c = std::get<store::ChangeResult>(r);
  // A reaction that was already there (or already gone) appends nothing: answer with the target.
  return ChatService::Change{c.events.empty() ? *c.message : c.events.front(), *c.message};
}

}  // namespace

net::awaitable<Result<ChatService::Change>> ChatService::edit_message(domain::AuthContext auth,
                                                                      domain::MessageId id,
                                                                      std::string body) {
  if (auto e = domain::check_body(body)) co_return fail(*e, "body is not a valid message body");
  const auto actor = auth.user_id;
  auto job = [actor, id, body](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.edit_message(actor, id, body, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return to_change(std::move(r));
}

net::awaitable<Result<ChatService::Change>> ChatService::delete_message(domain::AuthContext auth,
                                                                        domain::MessageId id) {
  const auto actor = auth.user_id;
  auto job = [actor, id](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.delete_message(actor, id, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return to_change(std::move(r));
}

net::awaitable<Result<ChatService::Change>> ChatService::react(domain::AuthContext auth,
                                                               domain::MessageId id,
                                                               std::string emoji,
                                                               bool on) {
  const auto count = domain::utf8_code_points(emoji);
  if (!count || *count < 1 || *count > domain::limits::emoji_code_points_max ||
      emoji.find_first_of(" \t\r\n") != std::string::npos)
    co_return fail(ErrorCode::bad_request, "emoji must be 1..16 characters without spaces");
  const auto actor = auth.user_id;
  auto job = [actor, id, emoji, on](store::Store& s, const store::NextId& next, store::TimeMs now) {
    return s.react(actor, id, emoji, on, next, now);
  };
  auto r = co_await change(std::move(job));
  co_return to_change(std::move(r));
}

net::awaitable<Result<std::vector<domain::Receipt>>> ChatService::receipts(domain::AuthContext auth,
                                                                           domain::ConversationId id) {
  const auto viewer = auth.user_id;
  auto job = [viewer, id](store::Store& s) { return s.receipts(viewer, id); };
  auto r = co_await store_.read(std::move(job));
  if (!r) co_return fail(ErrorCode::not_found, "not found");
  co_return std::move(*r);
}

net::awaitable<Result<store::SyncPage>> ChatService::sync(
    domain::AuthContext auth, std::vector<std::pair<domain::ConversationId, domain::Seq>> since, int limit) {
  if (limit < 1 || limit > domain::limits::sync_page_max)
    co_return fail(ErrorCode::bad_request, "limit must be 1..1000");
  const auto viewer = auth.user_id;
  auto job = [viewer, since = std::move(since), limit](store::Store& s) {
    return s.sync(viewer, since, limit);
  };
  co_return co_await store_.read(std::move(job));
}

net::awaitable<Result<bool>> ChatService::typing(domain::AuthContext auth, domain::ConversationId id) {
  const auto viewer = auth.user_id;
  auto job = [viewer, id](store::Store& s) { return s.members_if_member(viewer, id); };
  auto members = co_await store_.read(std::move(job));
  if (!members) co_return fail(ErrorCode::not_found, "not found");
  std::erase(*members, viewer);
  constexpr std::int64_t kTypingTtlMs = 5000;
  bus_.publish(std::move(*members),
               std::make_shared<const std::string>(gateway::frames::typing(id, viewer, kTypingTtlMs)));
  co_return true;
}

net::awaitable<std::vector<domain::UserId>> ChatService::watchable(domain::AuthContext auth,
                                                                   std::vector<domain::UserId> users) {
  const auto viewer = auth.user_id;
  auto job = [viewer, users = std::move(users)](store::Store& s) { return s.shared_contacts(viewer, users); };
  co_return co_await store_.read(std::move(job));
}

}  // namespace chat::service

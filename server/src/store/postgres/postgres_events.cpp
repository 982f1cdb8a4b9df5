// PostgresStore: groups, invites, edits, deletes, reactions, receipts and sync. Every change is an
// event appended to the conversation's log in the same transaction as the state it changes.

#include "domain/limits.hpp"
#include "store/errors.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/postgres/postgres_rows.hpp"
#include "store/postgres/postgres_store.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <unordered_map>
#include <variant>

namespace chat::store::postgres {

namespace json = boost::json;
using detail::Connection;
using detail::kInsertParticipant;
using detail::kMemberIds;
using detail::kMembership;
using detail::kMessageById;
using detail::kUserExists;
using detail::Membership;
using detail::read_message;

namespace {

// $1 is an int8[] literal ("{1,2,3}"): one query for a whole page.
constexpr std::string_view kReactionsOf =
    "SELECT message_id, emoji, user_id FROM reactions WHERE message_id = ANY($1::bigint[]) "
    "ORDER BY message_id, emoji, created_at, user_id";
constexpr std::string_view kConversationType = "SELECT type, last_seq FROM conversations WHERE id = $1";
constexpr std::string_view kInsertEvent =
    "INSERT INTO messages (id, conversation_id, seq, sender_id, type, body, ref_id, data, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
constexpr std::string_view kInsertGroup =
    "INSERT INTO conversations (type, name, created_by, created_at, last_activity_at) "
    "VALUES ('group', $1, $2, $3, $3) RETURNING id";
constexpr std::string_view kDeleteParticipant =
    "DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2";
constexpr std::string_view kCountMembers =
    "SELECT count(*) FROM conversation_participants WHERE conversation_id = $1";
constexpr std::string_view kOldestOther =
    "SELECT user_id FROM conversation_participants WHERE conversation_id = $1 AND user_id <> $2 "
    "ORDER BY role = 'admin' DESC, joined_at, user_id LIMIT 1";
constexpr std::string_view kSetRole =
    "UPDATE conversation_participants SET role = $3 WHERE conversation_id = $1 AND user_id = $2";
constexpr std::string_view kRename = "UPDATE conversations SET name = $2 WHERE id = $1";
constexpr std::string_view kInsertInvite =
    "INSERT INTO invites (code, conversation_id, created_by, created_at) VALUES ($1, $2, $3, $4)";
constexpr std::string_view kRevokeInvite =
    "UPDATE invites SET revoked_at = $3 WHERE code = $1 AND conversation_id = $2 AND revoked_at IS NULL";
constexpr std::string_view kFindInvite =
    "SELECT 1 FROM invites WHERE code = $1 AND conversation_id = $2 AND revoked_at IS NULL";
constexpr std::string_view kListInvites =
    "SELECT code, conversation_id, created_by, created_at FROM invites WHERE conversation_id = $1 "
    "AND revoked_at IS NULL ORDER BY created_at, code";
constexpr std::string_view kEditMessage = "UPDATE messages SET body = $2, edited_at = $3 WHERE id = $1";
constexpr std::string_view kDeleteMessage = "UPDATE messages SET body = '', deleted = true WHERE id = $1";
constexpr std::string_view kDeleteReactions = "DELETE FROM reactions WHERE message_id = $1";
constexpr std::string_view kAddReaction =
    "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT DO NOTHING";
constexpr std::string_view kRemoveReaction =
    "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3";
constexpr std::string_view kReceipts =
    "SELECT user_id, delivered_seq, read_seq FROM conversation_participants WHERE conversation_id = $1 "
    "ORDER BY user_id";
// $2 is an int8[] literal: the candidates that share a conversation with $1.
constexpr std::string_view kShared =
    "SELECT DISTINCT b.user_id FROM conversation_participants a JOIN conversation_participants b "
    "ON a.conversation_id = b.conversation_id WHERE a.user_id = $1 AND b.user_id = ANY($2::bigint[])";
constexpr std::string_view kSyncCandidates =
    "SELECT p.conversation_id, p.joined_seq, c.last_seq FROM conversation_participants p "
    "JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1 ORDER BY p.conversation_id";
constexpr std::string_view kEventsAfter = "SELECT " CHATD_PG_MESSAGE_COLUMNS
                                          " FROM messages WHERE conversation_id = $1 AND seq > $2 "
                                          "ORDER BY seq LIMIT $3";
constexpr std::string_view kBeginSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kRollback = "ROLLBACK";

bool is_admin(domain::MemberRole role) {
  return role == domain::MemberRole::owner || role == domain::MemberRole::admin;
}

std::string user_ids_json(const std::vector<UserId>& ids) {
  json::array arr;
  for (auto id : ids) arr.emplace_back(std::to_string(id));
  return json::serialize(json::object{{"user_ids", std::move(arr)}});
}

// An int8[] literal for `= ANY($n::bigint[])`.
std::string bigint_array(const std::vector<std::int64_t>& ids) {
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  out += '}';
  return out;
}

bool is_group(Connection& db, ConversationId id) {
  const auto r = db.exec(kConversationType, {id});
  return !r.empty() && r.text(0, 0) == "group";
}

// The actor's membership of a group they may change, or why not: not_found for non-members (and
// unknown ids), forbidden for direct conversations and, when `admin` is required, for members.
std::variant<Membership, ChangeOutcome> group_member(Connection& db,
                                                     ConversationId id,
                                                     UserId actor,
                                                     bool admin) {
  const auto me = detail::membership(db, id, actor);
  if (!me) return ChangeOutcome::not_found;
  if (!is_group(db, id)) return ChangeOutcome::forbidden;
  if (admin && !is_admin(me->role)) return ChangeOutcome::forbidden;
  return *me;
}

ChangeResult outcome(ChangeOutcome o) {
  ChangeResult r;
  r.outcome = o;
  return r;
}

std::int64_t count_members(Connection& db, ConversationId id) {
  return db.exec(kCountMembers, {id}).int64(0, 0);
}

}  // namespace

namespace detail {

std::optional<Membership> membership(Connection& db, ConversationId conversation, UserId user) {
  const auto r = db.exec(kMembership, {conversation, user});
  if (r.empty()) return std::nullopt;
  return Membership{r.int64(0, 0), r.int64(0, 1), r.int64(0, 2),
                    domain::parse_member_role(r.text(0, 3)).value_or(domain::MemberRole::member)};
}

void load_reactions(Connection& db, std::vector<domain::Message>& messages) {
  std::vector<std::int64_t> ids;
  std::unordered_map<MessageId, domain::Message*> by_id;
  for (auto& m : messages) {
    m.reactions.clear();
    if (m.type != "text" || m.deleted) continue;
    ids.push_back(m.id);
    by_id[m.id] = &m;
  }
  if (ids.empty()) return;
  const auto r = db.exec(kReactionsOf, {bigint_array(ids)});
  for (int i = 0; i < r.rows(); ++i) {
    auto& m = *by_id.at(r.int64(i, 0));
    auto emoji = r.text(i, 1);
    if (m.reactions.empty() || m.reactions.back().emoji != emoji) m.reactions.push_back({emoji, {}});
    m.reactions.back().user_ids.push_back(r.int64(i, 2));
  }
}

void load_reactions(Connection& db, domain::Message& message) {
  std::vector<domain::Message> one;
  one.push_back(std::move(message));
  load_reactions(db, one);
  message = std::move(one.front());
}

}  // namespace detail

domain::Message PostgresStore::append_event(ConversationId id,
                                            UserId sender,
                                            std::string_view type,
                                            std::string_view body,
                                            std::optional<MessageId> ref_id,
                                            std::string_view data,
                                            MessageId event_id,
                                            TimeMs now) {
  Connection& db = *writer_;
  const auto next = next_seq(id, now);
  if (next.empty()) throw StoreError("append_event: conversation vanished");
  const Seq seq = next.int64(0, 0);
  db.exec(kInsertEvent, {event_id, id, seq, sender, type, body, ref_id, data, now});
  domain::Message m;
  m.id = event_id;
  m.conversation_id = id;
  m.seq = seq;
  m.sender_id = sender;
  m.type = std::string(type);
  m.body = std::string(body);
  m.ref_id = ref_id;
  m.data = std::string(data);
  m.created_at = now;
  return m;
}

ChangeResult PostgresStore::create_group(const NewGroup& group, const NextId& next_id, TimeMs now) {
  Connection& db = *writer_;
  std::vector<UserId> members{group.owner};
  for (auto u : group.members) {
    if (std::find(members.begin(), members.end(), u) == members.end()) members.push_back(u);
  }
  if (members.size() > domain::limits::group_members_max) return outcome(ChangeOutcome::group_full);
  for (auto u : members) {
    if (db.exec(kUserExists, {u}).empty()) return outcome(ChangeOutcome::not_found);
  }
  const ConversationId id = db.exec(kInsertGroup, {group.name, group.owner, now}).int64(0, 0);
  for (auto u : members) db.exec(kInsertParticipant, {id, u, u == group.owner ? "owner" : "member", now, 0});
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  r.events.push_back(append_event(id, group.owner, "created", group.name, std::nullopt,
                                  user_ids_json(members), next_id(), now));
  r.recipients = member_ids(db, id);
  return r;
}

ChangeResult PostgresStore::add_members(
    UserId actor, ConversationId id, const std::vector<UserId>& users, const NextId& next_id, TimeMs now) {
  return settle_race([&] { return add_members_once(actor, id, users, next_id, now); });
}

ChangeResult PostgresStore::add_members_once(
    UserId actor, ConversationId id, const std::vector<UserId>& users, const NextId& next_id, TimeMs now) {
  Connection& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/true);
  if (const auto* o = std::get_if<ChangeOutcome>(&access)) return outcome(*o);
  std::vector<UserId> fresh;
  for (auto u : users) {
    if (std::find(fresh.begin(), fresh.end(), u) != fresh.end() || detail::membership(db, id, u)) continue;
    if (db.exec(kUserExists, {u}).empty()) return outcome(ChangeOutcome::not_found);
    fresh.push_back(u);
  }
  if (static_cast<std::size_t>(count_members(db, id)) + fresh.size() > domain::limits::group_members_max)
    return outcome(ChangeOutcome::group_full);
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  if (fresh.empty()) return r;
  auto event =
      append_event(id, actor, "member_added", "", std::nullopt, user_ids_json(fresh), next_id(), now);
  // They see the log from the event that added them on.
  for (auto u : fresh) db.exec(kInsertParticipant, {id, u, "member", now, event.seq - 1});
  r.events.push_back(std::move(event));
  r.recipients = member_ids(db, id);
  return r;
}

ChangeResult PostgresStore::remove_member_once(
    UserId actor, ConversationId id, UserId target, const NextId& next_id, TimeMs now) {
  Connection& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/false);
  if (const auto* o = std::get_if<ChangeOutcome>(&access)) return outcome(*o);
  const auto* me = &std::get<Membership>(access);
  const auto them = detail::membership(db, id, target);
  if (!them) return outcome(ChangeOutcome::not_found);
  const bool leaving = actor == target;
  if (!leaving) {
    if (!is_admin(me->role)) return outcome(ChangeOutcome::forbidden);
    if (them->role == domain::MemberRole::owner) return outcome(ChangeOutcome::invalid);
    if (them->role == domain::MemberRole::admin && me->role != domain::MemberRole::owner)
      return outcome(ChangeOutcome::forbidden);
  }
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  // The one who leaves or is removed gets the event too, then nothing more.
  r.recipients = member_ids(db, id);
  if (leaving) {
    r.events.push_back(append_event(id, actor, "member_left", "", std::nullopt, "", next_id(), now));
  } else {
    r.events.push_back(
        append_event(id, actor, "member_removed", "", std::nullopt, user_ids_json({target}), next_id(), now));
  }
  db.exec(kDeleteParticipant, {id, target});
  if (them->role == domain::MemberRole::owner) {
    // An owner who leaves hands the group to the longest-standing admin, else member.
    if (const auto heir_row = db.exec(kOldestOther, {id, target}); !heir_row.empty()) {
      const UserId heir = heir_row.int64(0, 0);
      db.exec(kSetRole, {id, heir, "owner"});
      const auto data = json::serialize(json::object{{"user_id", std::to_string(heir)}, {"role", "owner"}});
      r.events.push_back(append_event(id, actor, "role_changed", "", std::nullopt, data, next_id(), now));
    }
  }
  return r;
}

ChangeResult PostgresStore::rename_group_once(
    UserId actor, ConversationId id, const std::string& name, const NextId& next_id, TimeMs now) {
  Connection& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/true);
  if (const auto* o = std::get_if<ChangeOutcome>(&access)) return outcome(*o);
  db.exec(kRename, {id, name});
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  r.events.push_back(append_event(id, actor, "renamed", name, std::nullopt, "", next_id(), now));
  r.recipients = member_ids(db, id);
  return r;
}

ChangeResult PostgresStore::set_role_once(UserId actor,
                                          ConversationId id,
                                          UserId target,
                                          domain::MemberRole role,
                                          const NextId& next_id,
                                          TimeMs now) {
  Connection& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/false);
  if (const auto* o = std::get_if<ChangeOutcome>(&access)) return outcome(*o);
  const auto* me = &std::get<Membership>(access);
  const auto them = detail::membership(db, id, target);
  if (!them) return outcome(ChangeOutcome::not_found);
  if (!is_admin(me->role) || role == domain::MemberRole::owner) return outcome(ChangeOutcome::forbidden);
  if (them->role == domain::MemberRole::owner) return outcome(ChangeOutcome::invalid);
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  r.recipients = member_ids(db, id);
  if (them->role == role) return r;
  db.exec(kSetRole, {id, target, domain::to_string(role)});
  const auto data =
      json::serialize(json::object{{"user_id", std::to_string(target)}, {"role", domain::to_string(role)}});
  r.events.push_back(append_event(id, actor, "role_changed", "", std::nullopt, data, next_id(), now));
  return r;
}

ChangeResult PostgresStore::join_by_invite(
    UserId user, ConversationId id, const std::string& code, const NextId& next_id, TimeMs now) {
  return settle_race([&] { return join_by_invite_once(user, id, code, next_id, now); });
}

ChangeResult PostgresStore::join_by_invite_once(
    UserId user, ConversationId id, const std::string& code, const NextId& next_id, TimeMs now) {
  Connection& db = *writer_;
  if (db.exec(kFindInvite, {code, id}).empty()) return outcome(ChangeOutcome::not_found);
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  if (detail::membership(db, id, user)) return r;  // already in: nothing to do
  if (static_cast<std::size_t>(count_members(db, id)) + 1 > domain::limits::group_members_max)
    return outcome(ChangeOutcome::group_full);
  auto event = append_event(id, user, "member_joined", "", std::nullopt, "", next_id(), now);
  db.exec(kInsertParticipant, {id, user, "member", now, event.seq - 1});
  r.events.push_back(std::move(event));
  r.recipients = member_ids(db, id);
  return r;
}

InviteResult PostgresStore::create_invite(UserId actor,
                                          ConversationId id,
                                          const std::string& code,
                                          TimeMs now) {
  Connection& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/true);
  if (const auto* o = std::get_if<ChangeOutcome>(&access))
    return {*o == ChangeOutcome::not_found ? InviteOutcome::not_found : InviteOutcome::forbidden, {}};
  db.exec(kInsertInvite, {code, id, actor, now});
  return {InviteOutcome::ok, {Invite{code, id, actor, now}}};
}

InviteOutcome PostgresStore::revoke_invite(UserId actor,
                                           ConversationId id,
                                           const std::string& code,
                                           TimeMs now) {
  Connection& db = *writer_;
  const auto me = detail::membership(db, id, actor);
  if (!me) return InviteOutcome::not_found;
  if (!is_admin(me->role)) return InviteOutcome::forbidden;
  return db.exec(kRevokeInvite, {code, id, now}).affected() > 0 ? InviteOutcome::ok
                                                                : InviteOutcome::not_found;
}

ChangeResult PostgresStore::change_message(UserId actor,
                                           MessageId message,
                                           const NextId& next_id,
                                           TimeMs now,
                                           std::string_view type,
                                           const std::string& body,
                                           bool on) {
  Connection& db = *writer_;
  std::optional<domain::Message> target;
  if (const auto row = db.exec(kMessageById, {message}); !row.empty()) target = read_message(row, 0);
  if (!target) return outcome(ChangeOutcome::not_found);
  const auto me = detail::membership(db, target->conversation_id, actor);
  if (!me || target->seq <= me->joined_seq) return outcome(ChangeOutcome::not_found);
  if (target->type != "text") return outcome(ChangeOutcome::invalid);
  if (target->deleted) return outcome(ChangeOutcome::invalid);
  const bool author_only = type != "reaction";
  if (author_only && target->sender_id != actor) return outcome(ChangeOutcome::forbidden);

  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = target->conversation_id;
  std::string data;
  if (type == "edit") {
    db.exec(kEditMessage, {message, body, now});
    target->body = body;
    target->edited_at = now;
  } else if (type == "delete") {
    db.exec(kDeleteMessage, {message});
    db.exec(kDeleteReactions, {message});
    target->body.clear();
    target->deleted = true;
  } else {
    const auto changed = on ? db.exec(kAddReaction, {message, actor, body, now}).affected()
                            : db.exec(kRemoveReaction, {message, actor, body}).affected();
    if (changed == 0) {
      // Adding a reaction you already have (or removing one you do not) changes nothing: no event.
      detail::load_reactions(db, *target);
      r.message = std::move(target);
      return r;
    }
    data = on ? R"({"on":true})" : R"({"on":false})";
  }
  const std::string event_body = type == "delete" ? std::string() : body;
  r.events.push_back(
      append_event(target->conversation_id, actor, type, event_body, message, data, next_id(), now));
  detail::load_reactions(db, *target);
  r.message = std::move(target);
  r.recipients = member_ids(db, r.conversation_id);
  return r;
}

ChangeResult PostgresStore::edit_message(
    UserId actor, MessageId message, const std::string& body, const NextId& next_id, TimeMs now) {
  return settle_race([&] { return change_message(actor, message, next_id, now, "edit", body, true); });
}

ChangeResult PostgresStore::delete_message(UserId actor,
                                           MessageId message,
                                           const NextId& next_id,
                                           TimeMs now) {
  return settle_race(
      [&] { return change_message(actor, message, next_id, now, "delete", std::string(), true); });
}

ChangeResult PostgresStore::react(
    UserId actor, MessageId message, const std::string& emoji, bool on, const NextId& next_id, TimeMs now) {
  return settle_race([&] { return change_message(actor, message, next_id, now, "reaction", emoji, on); });
}

ChangeResult PostgresStore::remove_member(
    UserId actor, ConversationId id, UserId target, const NextId& next_id, TimeMs now) {
  return settle_race([&] { return remove_member_once(actor, id, target, next_id, now); });
}

ChangeResult PostgresStore::rename_group(
    UserId actor, ConversationId id, const std::string& name, const NextId& next_id, TimeMs now) {
  return settle_race([&] { return rename_group_once(actor, id, name, next_id, now); });
}

ChangeResult PostgresStore::set_role(UserId actor,
                                     ConversationId id,
                                     UserId target,
                                     domain::MemberRole role,
                                     const NextId& next_id,
                                     TimeMs now) {
  return settle_race([&] { return set_role_once(actor, id, target, role, next_id, now); });
}

InviteResult PostgresStore::list_invites(UserId actor, ConversationId id) {
  auto db = lease();
  const auto me = detail::membership(*db, id, actor);
  if (!me) return {InviteOutcome::not_found, {}};
  if (!is_admin(me->role)) return {InviteOutcome::forbidden, {}};
  InviteResult result{InviteOutcome::ok, {}};
  const auto r = (*db).exec(kListInvites, {id});
  for (int i = 0; i < r.rows(); ++i) {
    result.invites.push_back(Invite{r.text(i, 0), r.int64(i, 1), r.int64(i, 2), r.int64(i, 3)});
  }
  return result;
}

std::optional<std::vector<domain::Receipt>> PostgresStore::receipts(UserId viewer, ConversationId id) {
  auto db = lease();
  if (!detail::membership(*db, id, viewer)) return std::nullopt;
  std::vector<domain::Receipt> out;
  const auto r = (*db).exec(kReceipts, {id});
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(domain::Receipt{r.int64(i, 0), r.int64(i, 1), r.int64(i, 2)});
  return out;
}

std::optional<std::vector<UserId>> PostgresStore::members_if_member(UserId viewer, ConversationId id) {
  auto db = lease();
  if (!detail::membership(*db, id, viewer)) return std::nullopt;
  return member_ids(*db, id);
}

std::vector<UserId> PostgresStore::shared_contacts(UserId viewer, const std::vector<UserId>& users) {
  if (users.empty()) return {};
  auto db = lease();
  const auto r = (*db).exec(kShared, {viewer, bigint_array(users)});
  std::vector<UserId> shared;
  for (int i = 0; i < r.rows(); ++i) shared.push_back(r.int64(i, 0));
  // In the caller's order, with duplicates kept, as the SQLite backend answers.
  std::vector<UserId> out;
  for (auto u : users) {
    if (u == viewer || std::find(shared.begin(), shared.end(), u) != shared.end()) out.push_back(u);
  }
  return out;
}

SyncPage PostgresStore::sync(UserId viewer,
                             const std::vector<std::pair<ConversationId, Seq>>& since,
                             int limit) {
  auto db = lease();
  std::map<ConversationId, Seq> watermark(since.begin(), since.end());
  struct Candidate {
    ConversationId id;
    Seq floor;
    Seq last;
  };
  std::vector<Candidate> candidates;
  // One snapshot: the page is consistent across every conversation.
  (*db).exec_script(kBeginSnapshot);
  SyncPage page;
  try {
    {
      const auto r = (*db).exec(kSyncCandidates, {viewer});
      for (int i = 0; i < r.rows(); ++i) {
        const ConversationId id = r.int64(i, 0);
        auto it = watermark.find(id);
        const Seq floor = std::max(r.int64(i, 1), it != watermark.end() ? it->second : 0);
        if (it != watermark.end()) watermark.erase(it);
        if (r.int64(i, 2) > floor) candidates.push_back({id, floor, r.int64(i, 2)});
      }
    }
    for (const auto& [id, seq] : watermark) page.removed.push_back(id);
    int remaining = limit;
    for (const auto& c : candidates) {
      if (remaining <= 0) {
        page.has_more = true;
        break;
      }
      const auto r = (*db).exec(kEventsAfter, {c.id, c.floor, remaining});
      Seq last_seen = c.floor;
      for (int i = 0; i < r.rows(); ++i) {
        page.events.push_back(read_message(r, i));
        last_seen = page.events.back().seq;
        --remaining;
      }
      if (last_seen < c.last) page.has_more = true;
    }
    detail::load_reactions(*db, page.events);
  } catch (...) {
    if ((*db).in_transaction()) (*db).exec_script(kRollback);
    throw;
  }
  (*db).exec_script(kCommit);
  return page;
}

}  // namespace chat::store::postgres

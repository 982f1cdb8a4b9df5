// SqliteStore: groups, invites, edits, deletes, reactions, receipts and sync. Every change is an
// event appended to the conversation's log in the same transaction as the state it changes.

#include "domain/limits.hpp"
#include "store/errors.hpp"
#include "store/sqlite/sqlite_rows.hpp"
#include "store/sqlite/sqlite_store.hpp"

#include <boost/json.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <variant>

namespace chat::store::sqlite {

namespace json = boost::json;
using detail::Db;
using detail::kInsertParticipant;
using detail::kMemberIds;
using detail::kMembership;
using detail::kMessageById;
using detail::kUserExists;
using detail::Membership;
using detail::read_message;

namespace {

constexpr std::string_view kReactionsOf =
    "SELECT emoji, user_id FROM reactions WHERE message_id = ?1 ORDER BY emoji, created_at, user_id";
constexpr std::string_view kReactionsOfMany =
    "SELECT message_id, emoji, user_id FROM reactions WHERE message_id IN (SELECT value FROM json_each(?1)) "
    "ORDER BY message_id, emoji, created_at, user_id";
constexpr std::string_view kBeginRead = "BEGIN";
constexpr std::string_view kEndRead = "COMMIT";
constexpr std::string_view kConversationType = "SELECT type, last_seq FROM conversations WHERE id = ?1";
constexpr std::string_view kInsertEvent =
    "INSERT INTO messages (id, conversation_id, seq, sender_id, type, body, ref_id, data, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr std::string_view kInsertGroup =
    "INSERT INTO conversations (type, name, created_by, created_at, last_activity_at) VALUES ('group', ?1, "
    "?2, ?3, "
    "?3)";
constexpr std::string_view kDeleteParticipant =
    "DELETE FROM conversation_participants WHERE conversation_id = ?1 AND user_id = ?2";
constexpr std::string_view kCountMembers =
    "SELECT count(*) FROM conversation_participants WHERE conversation_id = ?1";
constexpr std::string_view kOldestOther =
    "SELECT user_id FROM conversation_participants WHERE conversation_id = ?1 AND user_id <> ?2 "
    "ORDER BY role = 'admin' DESC, joined_at, user_id LIMIT 1";
constexpr std::string_view kSetRole =
    "UPDATE conversation_participants SET role = ?3 WHERE conversation_id = ?1 AND user_id = ?2";
constexpr std::string_view kRename = "UPDATE conversations SET name = ?2 WHERE id = ?1";
constexpr std::string_view kInsertInvite =
    "INSERT INTO invites (code, conversation_id, created_by, created_at) VALUES (?1, ?2, ?3, ?4)";
constexpr std::string_view kRevokeInvite =
    "UPDATE invites SET revoked_at = ?3 WHERE code = ?1 AND conversation_id = ?2 AND revoked_at IS NULL";
constexpr std::string_view kFindInvite =
    "SELECT 1 FROM invites WHERE code = ?1 AND conversation_id = ?2 AND revoked_at IS NULL";
constexpr std::string_view kListInvites =
    "SELECT code, conversation_id, created_by, created_at FROM invites WHERE conversation_id = ?1 "
    "AND revoked_at IS NULL ORDER BY created_at";
constexpr std::string_view kEditMessage = "UPDATE messages SET body = ?2, edited_at = ?3 WHERE id = ?1";
constexpr std::string_view kDeleteMessage = "UPDATE messages SET body = '', deleted = 1 WHERE id = ?1";
constexpr std::string_view kDeleteReactions = "DELETE FROM reactions WHERE message_id = ?1";
constexpr std::string_view kAddReaction =
    "INSERT OR IGNORE INTO reactions (message_id, user_id, emoji, created_at) VALUES (?1, ?2, ?3, ?4)";
constexpr std::string_view kRemoveReaction =
    "DELETE FROM reactions WHERE message_id = ?1 AND user_id = ?2 AND emoji = ?3";
constexpr std::string_view kReceipts =
    "SELECT user_id, delivered_seq, read_seq FROM conversation_participants WHERE conversation_id = ?1 "
    "ORDER BY user_id";
constexpr std::string_view kShared =
    "SELECT 1 FROM conversation_participants a JOIN conversation_participants b "
    "ON a.conversation_id = b.conversation_id WHERE a.user_id = ?1 AND b.user_id = ?2 LIMIT 1";
constexpr std::string_view kSyncCandidates =
    "SELECT p.conversation_id, p.joined_seq, c.last_seq FROM conversation_participants p "
    "JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = ?1 ORDER BY p.conversation_id";
constexpr std::string_view kEventsAfter = "SELECT " CHATD_MESSAGE_COLUMNS
                                          " FROM messages WHERE conversation_id = ?1 AND seq > ?2 "
                                          "ORDER BY seq LIMIT ?3";

bool is_admin(domain::MemberRole role) {
  return role == domain::MemberRole::owner || role == domain::MemberRole::admin;
}

std::string user_ids_json(const std::vector<UserId>& ids) {
  json::array arr;
  for (auto id : ids) arr.emplace_back(std::to_string(id));
  return json::serialize(json::object{{"user_ids", std::move(arr)}});
}

bool is_group(Db& db, ConversationId id) {
  auto s = db.prepare(kConversationType);
  s.bind(1, id);
  return s.step() && s.text(0) == "group";
}

// The actor's membership of a group they may change, or why not: not_found for non-members (and
// unknown ids), forbidden for direct conversations and, when `admin` is required, for members.
std::variant<Membership, ChangeOutcome> group_member(Db& db, ConversationId id, UserId actor, bool admin) {
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

}  // namespace

namespace detail {

std::optional<Membership> membership(Db& db, ConversationId conversation, UserId user) {
  auto s = db.prepare(kMembership);
  s.bind(1, conversation).bind(2, user);
  if (!s.step()) return std::nullopt;
  return Membership{s.int64(0), s.int64(1), s.int64(2),
                    domain::parse_member_role(s.text(3)).value_or(domain::MemberRole::member)};
}

std::optional<Seq> next_seq(Db& db, ConversationId conversation, TimeMs now) {
  db.prepare(kBumpSeq).bind(1, conversation).bind(2, now).run();
  if (db.changes() == 0) return std::nullopt;
  auto s = db.prepare(kLastSeq);
  s.bind(1, conversation);
  if (!s.step()) return std::nullopt;
  return s.int64(0);
}

void load_reactions(Db& db, domain::Message& m) {
  m.reactions.clear();
  if (m.type != "text" || m.deleted) return;
  auto s = db.prepare(kReactionsOf);
  s.bind(1, m.id);
  while (s.step()) {
    auto emoji = s.text(0);
    if (m.reactions.empty() || m.reactions.back().emoji != emoji) m.reactions.push_back({emoji, {}});
    m.reactions.back().user_ids.push_back(s.int64(1));
  }
}

void load_reactions(Db& db, std::vector<domain::Message>& messages) {
  std::vector<std::pair<MessageId, std::size_t>> index;  // id -> position in `messages`
  std::string ids = "[";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    auto& m = messages[i];
    m.reactions.clear();
    if (m.type != "text" || m.deleted) continue;
    if (!index.empty()) ids.push_back(',');
    ids += std::to_string(m.id);
    index.emplace_back(m.id, i);
  }
  if (index.empty()) return;
  ids.push_back(']');
  std::sort(index.begin(), index.end());
  auto s = db.prepare(kReactionsOfMany);
  s.bind(1, std::string_view(ids));
  while (s.step()) {
    const MessageId id = s.int64(0);
    const auto it = std::lower_bound(index.begin(), index.end(), std::pair<MessageId, std::size_t>{id, 0});
    if (it == index.end() || it->first != id) continue;
    auto& m = messages[it->second];
    auto emoji = s.text(1);
    if (m.reactions.empty() || m.reactions.back().emoji != emoji)
      m.reactions.push_back({std::move(emoji), {}});
    m.reactions.back().user_ids.push_back(s.int64(2));
  }
}

ReadTransaction::ReadTransaction(Db& db) : db_(db) {
  db_.prepare(kBeginRead).run();
}

ReadTransaction::~ReadTransaction() {
  // A read transaction has nothing to lose: if COMMIT fails, ROLLBACK ends it all the same.
  try {
    db_.prepare(kEndRead).run();
  } catch (...) {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

}  // namespace detail

domain::Message SqliteStore::append_event(ConversationId id,
                                          UserId sender,
                                          std::string_view type,
                                          std::string_view body,
                                          std::optional<MessageId> ref_id,
                                          std::string_view data,
                                          MessageId event_id,
                                          TimeMs now) {
  Db& db = *writer_;
  const auto next = detail::next_seq(db, id, now);
  if (!next) throw StoreError("append_event: conversation vanished");
  const Seq seq = *next;
  auto ins = db.prepare(kInsertEvent);
  ins.bind(1, event_id).bind(2, id).bind(3, seq).bind(4, sender).bind(5, type).bind(6, body);
  if (ref_id) {
    ins.bind(7, *ref_id);
  } else {
    ins.bind_null(7);
  }
  ins.bind(8, data).bind(9, now).run();
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

ChangeResult SqliteStore::create_group(const NewGroup& group, const NextId& next_id, TimeMs now) {
  forget_appends();
  Db& db = *writer_;
  std::vector<UserId> members{group.owner};
  for (auto u : group.members) {
    if (std::find(members.begin(), members.end(), u) == members.end()) members.push_back(u);
  }
  if (members.size() > domain::limits::group_members_max) return outcome(ChangeOutcome::group_full);
  for (auto u : members) {
    if (!db.prepare(kUserExists).bind(1, u).step()) return outcome(ChangeOutcome::not_found);
  }
  db.prepare(kInsertGroup).bind(1, group.name).bind(2, group.owner).bind(3, now).run();
  const ConversationId id = sqlite3_last_insert_rowid(db.handle());
  for (auto u : members) {
    db.prepare(kInsertParticipant)
        .bind(1, id)
        .bind(2, u)
        .bind(3, u == group.owner ? "owner" : "member")
        .bind(4, now)
        .bind(5, 0)
        .run();
  }
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  r.events.push_back(append_event(id, group.owner, "created", group.name, std::nullopt,
                                  user_ids_json(members), next_id(), now));
  r.recipients = member_ids(db, id);
  return r;
}

ChangeResult SqliteStore::add_members(
    UserId actor, ConversationId id, const std::vector<UserId>& users, const NextId& next_id, TimeMs now) {
  forget_appends();
  Db& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/true);
  if (const auto* o = std::get_if<ChangeOutcome>(&access)) return outcome(*o);
  std::vector<UserId> fresh;
  for (auto u : users) {
    if (std::find(fresh.begin(), fresh.end(), u) != fresh.end() || detail::membership(db, id, u)) continue;
    if (!db.prepare(kUserExists).bind(1, u).step()) return outcome(ChangeOutcome::not_found);
    fresh.push_back(u);
  }
  std::int64_t count = 0;
  {
    auto s = db.prepare(kCountMembers);
    s.bind(1, id);
    s.step();
    count = s.int64(0);
  }
  if (static_cast<std::size_t>(count) + fresh.size() > domain::limits::group_members_max)
    return outcome(ChangeOutcome::group_full);
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  if (fresh.empty()) return r;
  auto event =
      append_event(id, actor, "member_added", "", std::nullopt, user_ids_json(fresh), next_id(), now);
  for (auto u : fresh) {
    // They see the log from the event that added them on.
    db.prepare(kInsertParticipant)
        .bind(1, id)
        .bind(2, u)
        .bind(3, "member")
        .bind(4, now)
        .bind(5, event.seq - 1)
        .run();
  }
  r.events.push_back(std::move(event));
  r.recipients = member_ids(db, id);
  return r;
}

ChangeResult SqliteStore::remove_member(
    UserId actor, ConversationId id, UserId target, const NextId& next_id, TimeMs now) {
  forget_appends();
  Db& db = *writer_;
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
  db.prepare(kDeleteParticipant).bind(1, id).bind(2, target).run();
  if (them->role == domain::MemberRole::owner) {
    // An owner who leaves hands the group to the longest-standing admin, else member.
    auto s = db.prepare(kOldestOther);
    s.bind(1, id).bind(2, target);
    if (s.step()) {
      const UserId heir = s.int64(0);
      db.prepare(kSetRole).bind(1, id).bind(2, heir).bind(3, "owner").run();
      const auto data = json::serialize(json::object{{"user_id", std::to_string(heir)}, {"role", "owner"}});
      r.events.push_back(append_event(id, actor, "role_changed", "", std::nullopt, data, next_id(), now));
    }
  }
  return r;
}

ChangeResult SqliteStore::rename_group(
    UserId actor, ConversationId id, const std::string& name, const NextId& next_id, TimeMs now) {
  forget_appends();
  Db& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/true);
  if (const auto* o = std::get_if<ChangeOutcome>(&access)) return outcome(*o);
  db.prepare(kRename).bind(1, id).bind(2, name).run();
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  r.events.push_back(append_event(id, actor, "renamed", name, std::nullopt, "", next_id(), now));
  r.recipients = member_ids(db, id);
  return r;
}

ChangeResult SqliteStore::set_role(UserId actor,
                                   ConversationId id,
                                   UserId target,
                                   domain::MemberRole role,
                                   const NextId& next_id,
                                   TimeMs now) {
  forget_appends();
  Db& db = *writer_;
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
  db.prepare(kSetRole).bind(1, id).bind(2, target).bind(3, domain::to_string(role)).run();
  const auto data =
      json::serialize(json::object{{"user_id", std::to_string(target)}, {"role", domain::to_string(role)}});
  r.events.push_back(append_event(id, actor, "role_changed", "", std::nullopt, data, next_id(), now));
  return r;
}

ChangeResult SqliteStore::join_by_invite(
    UserId user, ConversationId id, const std::string& code, const NextId& next_id, TimeMs now) {
  forget_appends();
  Db& db = *writer_;
  if (!db.prepare(kFindInvite).bind(1, code).bind(2, id).step()) return outcome(ChangeOutcome::not_found);
  ChangeResult r;
  r.outcome = ChangeOutcome::ok;
  r.conversation_id = id;
  if (detail::membership(db, id, user)) return r;  // already in: nothing to do
  std::int64_t count = 0;
  {
    auto s = db.prepare(kCountMembers);
    s.bind(1, id);
    s.step();
    count = s.int64(0);
  }
  if (static_cast<std::size_t>(count) + 1 > domain::limits::group_members_max)
    return outcome(ChangeOutcome::group_full);
  auto event = append_event(id, user, "member_joined", "", std::nullopt, "", next_id(), now);
  db.prepare(kInsertParticipant)
      .bind(1, id)
      .bind(2, user)
      .bind(3, "member")
      .bind(4, now)
      .bind(5, event.seq - 1)
      .run();
  r.events.push_back(std::move(event));
  r.recipients = member_ids(db, id);
  return r;
}

InviteResult SqliteStore::create_invite(UserId actor,
                                        ConversationId id,
                                        const std::string& code,
                                        TimeMs now) {
  flush_appends();
  Db& db = *writer_;
  const auto access = group_member(db, id, actor, /*admin=*/true);
  if (const auto* o = std::get_if<ChangeOutcome>(&access))
    return {*o == ChangeOutcome::not_found ? InviteOutcome::not_found : InviteOutcome::forbidden, {}};
  db.prepare(kInsertInvite).bind(1, code).bind(2, id).bind(3, actor).bind(4, now).run();
  return {InviteOutcome::ok, {Invite{code, id, actor, now}}};
}

InviteOutcome SqliteStore::revoke_invite(UserId actor,
                                         ConversationId id,
                                         const std::string& code,
                                         TimeMs now) {
  flush_appends();
  Db& db = *writer_;
  const auto me = detail::membership(db, id, actor);
  if (!me) return InviteOutcome::not_found;
  if (!is_admin(me->role)) return InviteOutcome::forbidden;
  db.prepare(kRevokeInvite).bind(1, code).bind(2, id).bind(3, now).run();
  return db.changes() > 0 ? InviteOutcome::ok : InviteOutcome::not_found;
}

ChangeResult SqliteStore::change_message(UserId actor,
                                         MessageId message,
                                         const NextId& next_id,
                                         TimeMs now,
                                         std::string_view type,
                                         const std::string& body,
                                         bool on) {
  forget_appends();
  Db& db = *writer_;
  std::optional<domain::Message> target;
  {
    auto s = db.prepare(kMessageById);
    s.bind(1, message);
    if (s.step()) target = read_message(s);
  }
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
    db.prepare(kEditMessage).bind(1, message).bind(2, body).bind(3, now).run();
    target->body = body;
    target->edited_at = now;
  } else if (type == "delete") {
    db.prepare(kDeleteMessage).bind(1, message).run();
    db.prepare(kDeleteReactions).bind(1, message).run();
    target->body.clear();
    target->deleted = true;
  } else {
    if (on) {
      db.prepare(kAddReaction).bind(1, message).bind(2, actor).bind(3, body).bind(4, now).run();
    } else {
      db.prepare(kRemoveReaction).bind(1, message).bind(2, actor).bind(3, body).run();
    }
    if (db.changes() == 0) {
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

ChangeResult SqliteStore::edit_message(
    UserId actor, MessageId message, const std::string& body, const NextId& next_id, TimeMs now) {
  return change_message(actor, message, next_id, now, "edit", body, true);
}

ChangeResult SqliteStore::delete_message(UserId actor, MessageId message, const NextId& next_id, TimeMs now) {
  return change_message(actor, message, next_id, now, "delete", std::string(), true);
}

ChangeResult SqliteStore::react(
    UserId actor, MessageId message, const std::string& emoji, bool on, const NextId& next_id, TimeMs now) {
  return change_message(actor, message, next_id, now, "reaction", emoji, on);
}

InviteResult SqliteStore::list_invites(UserId actor, ConversationId id) {
  auto db = lease();
  const auto me = detail::membership(*db, id, actor);
  if (!me) return {InviteOutcome::not_found, {}};
  if (!is_admin(me->role)) return {InviteOutcome::forbidden, {}};
  InviteResult r{InviteOutcome::ok, {}};
  auto s = (*db).prepare(kListInvites);
  s.bind(1, id);
  while (s.step()) r.invites.push_back(Invite{s.text(0), s.int64(1), s.int64(2), s.int64(3)});
  return r;
}

std::optional<std::vector<domain::Receipt>> SqliteStore::receipts(UserId viewer, ConversationId id) {
  auto db = lease();
  if (!detail::membership(*db, id, viewer)) return std::nullopt;
  std::vector<domain::Receipt> out;
  auto s = (*db).prepare(kReceipts);
  s.bind(1, id);
  while (s.step()) out.push_back(domain::Receipt{s.int64(0), s.int64(1), s.int64(2)});
  return out;
}

std::optional<std::vector<UserId>> SqliteStore::members_if_member(UserId viewer, ConversationId id) {
  auto db = lease();
  if (!detail::membership(*db, id, viewer)) return std::nullopt;
  std::vector<UserId> ids;
  auto s = (*db).prepare(kMemberIds);
  s.bind(1, id);
  while (s.step()) ids.push_back(s.int64(0));
  return ids;
}

std::vector<UserId> SqliteStore::shared_contacts(UserId viewer, const std::vector<UserId>& users) {
  auto db = lease();
  std::vector<UserId> out;
  for (auto u : users) {
    if (u == viewer || (*db).prepare(kShared).bind(1, viewer).bind(2, u).step()) out.push_back(u);
  }
  return out;
}

SyncPage SqliteStore::sync(UserId viewer,
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
  // One read transaction: the page is a consistent snapshot of every conversation.
  (*db).exec("BEGIN");
  SyncPage page;
  try {
    {
      auto s = (*db).prepare(kSyncCandidates);
      s.bind(1, viewer);
      while (s.step()) {
        const ConversationId id = s.int64(0);
        auto it = watermark.find(id);
        const Seq floor = std::max(s.int64(1), it != watermark.end() ? it->second : 0);
        if (it != watermark.end()) watermark.erase(it);
        if (s.int64(2) > floor) candidates.push_back({id, floor, s.int64(2)});
      }
    }
    for (const auto& [id, seq] : watermark) page.removed.push_back(id);
    int remaining = limit;
    for (const auto& c : candidates) {
      if (remaining <= 0) {
        page.has_more = true;
        break;
      }
      auto s = (*db).prepare(kEventsAfter);
      s.bind(1, c.id).bind(2, c.floor).bind(3, remaining);
      Seq last_seen = c.floor;
      while (s.step()) {
        page.events.push_back(read_message(s));
        last_seen = page.events.back().seq;
        --remaining;
      }
      if (last_seen < c.last) page.has_more = true;
    }
    detail::load_reactions(*db, page.events);
  } catch (...) {
    (*db).exec("ROLLBACK");
    throw;
  }
  (*db).exec("COMMIT");
  return page;
}

}  // namespace chat::store::sqlite

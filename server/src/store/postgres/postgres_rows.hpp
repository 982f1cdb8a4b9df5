#pragma once

#include "domain/types.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/store.hpp"

// Row mapping shared by the PostgresStore source files. Internal to store/postgres.
namespace chat::store::postgres::detail {

// The columns read_message() expects, in order; spliced into the SQL constants.
#define CHATD_PG_MESSAGE_COLUMNS                                                                             \
  "id, conversation_id, seq, sender_id, type, body, coalesce(client_msg_id, ''), created_at, ref_id, data, " \
  "edited_at, deleted"

// SQL used by more than one PostgresStore source file.
inline constexpr std::string_view kMembership =
    "SELECT read_seq, delivered_seq, joined_seq, role FROM conversation_participants "
    "WHERE conversation_id = $1 AND user_id = $2";
inline constexpr std::string_view kMemberIds =
    "SELECT user_id FROM conversation_participants WHERE conversation_id = $1 ORDER BY user_id";
inline constexpr std::string_view kInsertParticipant =
    "INSERT INTO conversation_participants (conversation_id, user_id, role, joined_at, joined_seq) "
    "VALUES ($1, $2, $3, $4, $5)";
inline constexpr std::string_view kUserExists = "SELECT 1 FROM users WHERE id = $1";
// The row lock taken here orders every writer of this conversation (on any node) until commit.
inline constexpr std::string_view kNextSeq =
    "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $2 WHERE id = $1 "
    "RETURNING last_seq";
// The same, for a writer that must not wait: fails with lock_not_available (55P03) if another
// transaction holds the row.
inline constexpr std::string_view kNextSeqNoWait =
    "WITH locked AS (SELECT id FROM conversations WHERE id = $1 FOR UPDATE NOWAIT) "
    "UPDATE conversations c SET last_seq = c.last_seq + 1, last_activity_at = $2 FROM locked "
    "WHERE c.id = locked.id RETURNING c.last_seq";
inline constexpr std::string_view kMessageById =
    "SELECT " CHATD_PG_MESSAGE_COLUMNS " FROM messages WHERE id = $1";

inline domain::Message read_message(const Result& r, int row) {
  domain::Message m;
  m.id = r.int64(row, 0);
  m.conversation_id = r.int64(row, 1);
  m.seq = r.int64(row, 2);
  m.sender_id = r.int64(row, 3);
  m.type = r.text(row, 4);
  m.body = r.text(row, 5);
  m.client_msg_id = r.text(row, 6);
  m.created_at = r.int64(row, 7);
  if (!r.is_null(row, 8)) m.ref_id = r.int64(row, 8);
  m.data = r.text(row, 9);
  if (!r.is_null(row, 10)) m.edited_at = r.int64(row, 10);
  m.deleted = r.boolean(row, 11);
  return m;
}

// A member's row in a conversation, if they are one.
struct Membership {
  Seq read_seq = 0;
  Seq delivered_seq = 0;
  Seq joined_seq = 0;  // sees the log after this seq
  domain::MemberRole role = domain::MemberRole::member;
};

std::optional<Membership> membership(Connection& db, ConversationId conversation, UserId user);
// Fills in the reactions of text messages (one query per page).
void load_reactions(Connection& db, std::vector<domain::Message>& messages);
void load_reactions(Connection& db, domain::Message& message);

}  // namespace chat::store::postgres::detail

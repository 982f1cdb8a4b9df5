#pragma once

#include "domain/types.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"

// Row mapping shared by the SqliteStore source files. Internal to store/sqlite.
namespace chat::store::sqlite::detail {

// The columns read_message() expects, in order; spliced into the SQL constants.
#define CHATD_MESSAGE_COLUMNS                                                                             \
  "id, conversation_id, seq, sender_id, type, body, client_msg_id, created_at, ref_id, data, edited_at, " \
  "deleted"

// SQL used by more than one SqliteStore source file. One definition each, so the statement cache
// (keyed by the text's address) prepares each once per connection.
inline constexpr std::string_view kMembership =
    "SELECT read_seq, delivered_seq, joined_seq, role FROM conversation_participants WHERE conversation_id = "
    "?1 "
    "AND user_id = ?2";
inline constexpr std::string_view kMemberIds =
    "SELECT user_id FROM conversation_participants WHERE conversation_id = ?1 ORDER BY user_id";
inline constexpr std::string_view kInsertParticipant =
    "INSERT INTO conversation_participants (conversation_id, user_id, role, joined_at, joined_seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
inline constexpr std::string_view kUserExists = "SELECT 1 FROM users WHERE id = ?1";
// Two statements rather than one UPDATE ... RETURNING: SQLite runs RETURNING as a trigger with an
// ephemeral table and a statement journal, which cost more than the rest of an append.
inline constexpr std::string_view kBumpSeq =
    "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = ?2 WHERE id = ?1";
inline constexpr std::string_view kLastSeq = "SELECT last_seq FROM conversations WHERE id = ?1";
inline constexpr std::string_view kMessageById =
    "SELECT " CHATD_MESSAGE_COLUMNS " FROM messages WHERE id = ?1";

inline domain::Message read_message(const Statement& s) {
  domain::Message m;
  m.id = s.int64(0);
  m.conversation_id = s.int64(1);
  m.seq = s.int64(2);
  m.sender_id = s.int64(3);
  m.type = s.text(4);
  m.body = s.text(5);
  m.client_msg_id = s.text(6);
  m.created_at = s.int64(7);
  if (!s.is_null(8)) m.ref_id = s.int64(8);
  m.data = s.text(9);
  if (!s.is_null(10)) m.edited_at = s.int64(10);
  m.deleted = s.int64(11) != 0;
  return m;
}

// A member's row in a conversation, if they are one.
struct Membership {
  Seq read_seq = 0;
  Seq delivered_seq = 0;
  Seq joined_seq = 0;  // sees the log after this seq
  domain::MemberRole role = domain::MemberRole::member;
};

// One read transaction around a read made of several statements: one snapshot, and one WAL read
// lock (fcntl calls on the -shm file) instead of one per statement. Ends (COMMIT) when destroyed.
class ReadTransaction {
 public:
  explicit ReadTransaction(Db& db);
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;
  ~ReadTransaction();

 private:
  Db& db_;
};

std::optional<Membership> membership(Db& db, ConversationId conversation, UserId user);
// Takes the conversation's next seq (and touches its activity time); nullopt if it does not exist.
std::optional<Seq> next_seq(Db& db, ConversationId conversation, TimeMs now);
// Fills in the reactions of text messages: one query for all of them (ids passed as a JSON array
// to json_each), not one per message.
void load_reactions(Db& db, std::vector<domain::Message>& messages);
void load_reactions(Db& db, domain::Message& message);

}  // namespace chat::store::sqlite::detail

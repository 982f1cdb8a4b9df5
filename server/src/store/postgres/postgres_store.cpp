#include "store/postgres/postgres_store.hpp"

#include "domain/validation.hpp"
#include "store/errors.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/postgres/postgres_rows.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>

namespace chat::store::postgres {

namespace {

using detail::Connection;
using detail::kInsertParticipant;
using detail::kMemberIds;
using detail::kMessageById;
using detail::kNextSeq;
using detail::kNextSeqNoWait;
using detail::kUserExists;
using detail::Param;
using detail::read_message;
using detail::Result;

// "3,17,42" (string_agg of ids) -> {3, 17, 42}.
std::vector<UserId> parse_ids(std::string_view text) {
  std::vector<UserId> ids;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    UserId id = 0;
    const auto [next, ec] = std::from_chars(p, end, id);
    if (ec != std::errc()) throw StoreError("append_message: bad member list from the server");
    ids.push_back(id);
    p = next < end && *next == ',' ? next + 1 : next;
  }
  return ids;
}

// Versioned migrations: kMigrations[i] takes the schema from version i to i + 1; each applied
// version is a row of schema_migrations. Never edit a released step; append a new one.
// The tables, columns and constraints are the SQLite schema's (store/sqlite/sqlite_store.cpp), with
// PostgreSQL types: BIGSERIAL ids (users, devices, sessions, conversations), BIGINT message ids from
// the writer's snowflake generator, BYTEA token hashes, BOOLEAN flags. Folded names, emoji and
// invite codes use the "C" collation, so comparisons and ORDER BY are bytewise as in SQLite, and
// their B-tree indexes serve prefix LIKE.
// Search (later): messages.body is plain text in one table, ready for a migration that adds
//   search tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED
// with a GIN index on it; nothing here needs to move for that.
constexpr std::array<std::string_view, 1> kMigrations = {
    R"sql(
CREATE TABLE users (
  id              BIGSERIAL PRIMARY KEY,
  username        TEXT NOT NULL,
  username_folded TEXT COLLATE "C" NOT NULL UNIQUE,
  email           TEXT NOT NULL,
  email_folded    TEXT COLLATE "C" NOT NULL UNIQUE,
  password_hash   TEXT NOT NULL,
  display_name    TEXT NOT NULL DEFAULT '',
  display_folded  TEXT COLLATE "C" NOT NULL DEFAULT '',
  profile_picture TEXT NOT NULL DEFAULT '',
  bio             TEXT NOT NULL DEFAULT '',
  created_at      BIGINT NOT NULL,
  last_seen       BIGINT
);
CREATE INDEX users_by_display ON users(display_folded);

CREATE TABLE devices (
  id          BIGSERIAL PRIMARY KEY,
  user_id     BIGINT NOT NULL REFERENCES users(id),
  device_type TEXT NOT NULL CHECK (device_type IN ('web', 'mobile', 'smart_tv')),
  name        TEXT NOT NULL DEFAULT '',
  push_id     TEXT,
  created_at  BIGINT NOT NULL,
  last_active BIGINT NOT NULL
);
CREATE INDEX devices_by_user ON devices(user_id);

CREATE TABLE sessions (
  id                 BIGSERIAL PRIMARY KEY,
  user_id            BIGINT NOT NULL REFERENCES users(id),
  device_id          BIGINT NOT NULL REFERENCES devices(id),
  access_hash        BYTEA NOT NULL UNIQUE,
  access_expires_at  BIGINT NOT NULL,
  refresh_hash       BYTEA NOT NULL UNIQUE,
  refresh_expires_at BIGINT NOT NULL,
  created_at         BIGINT NOT NULL,
  revoked_at         BIGINT
);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_device ON sessions(device_id);
-- Every refresh token a session has rotated away from: presenting one again is theft.
CREATE TABLE retired_refresh_tokens (
  hash       BYTEA PRIMARY KEY,
  session_id BIGINT NOT NULL REFERENCES sessions(id)
);

CREATE TABLE conversations (
  id               BIGSERIAL PRIMARY KEY,
  type             TEXT NOT NULL CHECK (type IN ('direct', 'group')),
  name             TEXT NOT NULL DEFAULT '',
  direct_key       TEXT UNIQUE,
  created_by       BIGINT NOT NULL REFERENCES users(id),
  created_at       BIGINT NOT NULL,
  last_seq         BIGINT NOT NULL DEFAULT 0,
  last_activity_at BIGINT NOT NULL
);

CREATE TABLE conversation_participants (
  conversation_id BIGINT NOT NULL REFERENCES conversations(id),
  user_id         BIGINT NOT NULL REFERENCES users(id),
  role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  joined_at       BIGINT NOT NULL,
  joined_seq      BIGINT NOT NULL DEFAULT 0,
  delivered_seq   BIGINT NOT NULL DEFAULT 0,
  read_seq        BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_by_user ON conversation_participants(user_id, conversation_id);

CREATE TABLE messages (
  id              BIGINT PRIMARY KEY,
  conversation_id BIGINT NOT NULL REFERENCES conversations(id),
  seq             BIGINT NOT NULL,
  sender_id       BIGINT NOT NULL REFERENCES users(id),
  type            TEXT NOT NULL DEFAULT 'text',
  client_msg_id   TEXT,
  body            TEXT NOT NULL DEFAULT '',
  ref_id          BIGINT,
  data            TEXT NOT NULL DEFAULT '',
  created_at      BIGINT NOT NULL,
  edited_at       BIGINT,
  deleted         BOOLEAN NOT NULL DEFAULT false,
  UNIQUE (conversation_id, seq)
);
-- Events carry no client_msg_id (NULL), and NULLs never collide in a UNIQUE index.
CREATE UNIQUE INDEX messages_by_client_id ON messages(sender_id, client_msg_id);

CREATE TABLE reactions (
  message_id BIGINT NOT NULL REFERENCES messages(id),
  user_id    BIGINT NOT NULL REFERENCES users(id),
  emoji      TEXT COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (message_id, emoji, user_id)
);

CREATE TABLE invites (
  code            TEXT COLLATE "C" PRIMARY KEY,
  conversation_id BIGINT NOT NULL REFERENCES conversations(id),
  created_by      BIGINT NOT NULL REFERENCES users(id),
  created_at      BIGINT NOT NULL,
  revoked_at      BIGINT
);
CREATE INDEX invites_by_conversation ON invites(conversation_id);
)sql",
};

constexpr std::string_view kCreateMigrations =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";
// Nodes starting together migrate one at a time (the lock ends with the transaction).
constexpr std::string_view kMigrationLock = "SELECT pg_advisory_xact_lock(7283501)";
constexpr std::string_view kSchemaVersion = "SELECT coalesce(max(version), 0) FROM schema_migrations";
constexpr std::string_view kRecordMigration = "INSERT INTO schema_migrations (version) VALUES ($1)";

// Session settings of every (re)connected connection. synchronous_commit is set explicitly: a
// server or role default of `off` would acknowledge messages that a crash can lose.
constexpr std::string_view kWriterSetup = "SET synchronous_commit = on";
constexpr std::string_view kReaderSetup = "SET default_transaction_read_only = on";
constexpr std::string_view kAppName = "SET application_name = 'chatd'";
// NOTICEs (e.g. "relation already exists, skipping") are not worth a line on stderr.
constexpr std::string_view kQuiet = "SET client_min_messages = warning";

constexpr std::string_view kBegin = "BEGIN";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kRollback = "ROLLBACK";
constexpr std::string_view kSavepoint = "SAVEPOINT job";
constexpr std::string_view kReleaseAndSavepoint = "RELEASE SAVEPOINT job; SAVEPOINT job";
constexpr std::string_view kRollbackJob = "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job";
// Multi-query reads (the conversation list, a sync page) see one snapshot.
constexpr std::string_view kBeginSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

constexpr std::string_view kFindUsername = "SELECT 1 FROM users WHERE username_folded = $1";
constexpr std::string_view kFindEmail = "SELECT 1 FROM users WHERE email_folded = $1";
constexpr std::string_view kInsertUser =
    "INSERT INTO users (username, username_folded, email, email_folded, password_hash, display_name, "
    "display_folded, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
constexpr std::string_view kSelectUser =
    "SELECT id, username, email, display_name, profile_picture, bio, created_at, last_seen FROM users "
    "WHERE id = $1";
constexpr std::string_view kCredentials =
    "SELECT id, password_hash FROM users WHERE username_folded = $1 OR email_folded = $1 LIMIT 1";
// $1 is the folded prefix with LIKE's metacharacters escaped, followed by '%'.
constexpr std::string_view kSearchUsers =
    "SELECT id, username, email, display_name, profile_picture, bio, created_at, last_seen FROM users "
    "WHERE username_folded LIKE $1 OR display_folded LIKE $1 ORDER BY username_folded LIMIT $2";
constexpr std::string_view kUpdateProfile =
    "UPDATE users SET display_name = coalesce($2, display_name), display_folded = coalesce($3, "
    "display_folded), profile_picture = coalesce($4, profile_picture), bio = coalesce($5, bio) "
    "WHERE id = $1";
constexpr std::string_view kSetLastSeen = "UPDATE users SET last_seen = $2 WHERE id = $1";

constexpr std::string_view kInsertDevice =
    "INSERT INTO devices (user_id, device_type, name, created_at, last_active) VALUES ($1, $2, $3, $4, $4) "
    "RETURNING id";
constexpr std::string_view kInsertSession =
    "INSERT INTO sessions (user_id, device_id, access_hash, access_expires_at, refresh_hash, "
    "refresh_expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
constexpr std::string_view kFindAccess =
    "SELECT id, user_id, device_id, access_expires_at FROM sessions WHERE access_hash = $1 AND "
    "revoked_at IS NULL AND access_expires_at > $2";
constexpr std::string_view kFindRefresh =
    "SELECT id, user_id, device_id, refresh_expires_at, revoked_at FROM sessions WHERE refresh_hash = $1";
constexpr std::string_view kFindPrevRefresh =
    "SELECT s.id, s.user_id FROM retired_refresh_tokens r JOIN sessions s ON s.id = r.session_id "
    "WHERE r.hash = $1";
constexpr std::string_view kRetireRefresh =
    "INSERT INTO retired_refresh_tokens (hash, session_id) SELECT refresh_hash, id FROM sessions "
    "WHERE id = $1 ON CONFLICT DO NOTHING";
// Only from the refresh token that was read: a concurrent rotation (another node) wins, and the
// loser, rerun by settle_race, sees its token retired (reuse).
constexpr std::string_view kRotate =
    "UPDATE sessions SET refresh_hash = $2, refresh_expires_at = $3, access_hash = $4, "
    "access_expires_at = $5 WHERE id = $1 AND refresh_hash = $6";
constexpr std::string_view kRevoke =
    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
constexpr std::string_view kListDevices =
    "SELECT d.id, s.id, d.device_type, d.name, d.created_at, d.last_active FROM sessions s "
    "JOIN devices d ON d.id = s.device_id WHERE s.user_id = $1 AND s.revoked_at IS NULL "
    "AND s.refresh_expires_at > $2 ORDER BY d.last_active DESC, d.id DESC LIMIT 200";
constexpr std::string_view kDeviceSessions =
    "SELECT id FROM sessions WHERE user_id = $1 AND device_id = $2 AND revoked_at IS NULL ORDER BY id";
constexpr std::string_view kTouchDevice =
    "UPDATE devices SET last_active = $2 WHERE id = (SELECT device_id FROM sessions WHERE id = $1)";

constexpr std::string_view kFindDirect = "SELECT id FROM conversations WHERE direct_key = $1";
constexpr std::string_view kInsertConversation =
    "INSERT INTO conversations (type, name, direct_key, created_by, created_at, last_activity_at) "
    "VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";

constexpr std::string_view kMembers =
    "SELECT p.user_id, u.username, u.display_name, p.role, p.joined_at, p.delivered_seq, p.read_seq "
    "FROM conversation_participants p JOIN users u ON u.id = p.user_id WHERE p.conversation_id = $1 "
    "ORDER BY p.joined_at, p.user_id";
constexpr std::string_view kConversationRow =
    "SELECT id, type, name, created_at, last_seq FROM conversations WHERE id = $1";
constexpr std::string_view kConversationsOf =
    "SELECT c.id FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.user_id = $1 ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 1000";
constexpr std::string_view kUnread =
    "SELECT count(*) FROM messages WHERE conversation_id = $1 AND seq > $2 AND sender_id <> $3 "
    "AND type = 'text' AND NOT deleted";

constexpr std::string_view kFindByClientId =
    "SELECT " CHATD_PG_MESSAGE_COLUMNS " FROM messages WHERE sender_id = $1 AND client_msg_id = $2";
// A send without reply_to in one round trip (it was six: the idempotency check, membership, the
// seq bump, the insert, the sender's read marker, the member list). Every CTE sees the statement's
// snapshot; the row lock on the conversation is taken by `locked` (as kNextSeq / kNextSeqNoWait) and
// the seq bump re-reads the row once it holds it, so seqs stay gapless across nodes. Nothing is
// written if the client_msg_id is taken (`dup`) or the sender is not a member. A concurrent insert
// of the same client_msg_id fails the INSERT with unique_violation: settle_race reruns the job,
// which then finds it in `dup`. Columns: seq (NULL if nothing was written), whether `dup` matched,
// whether the sender is a member, and the members' ids, comma-separated in id order.
// clang-format off
#define CHATD_PG_APPEND(LOCK)                                                                           \
  "WITH dup AS (SELECT 1 FROM messages WHERE sender_id = $3 AND client_msg_id = $4), "                  \
  "mem AS (SELECT 1 FROM conversation_participants WHERE conversation_id = $2 AND user_id = $3), "      \
  "locked AS (SELECT id FROM conversations WHERE id = $2 "                                              \
  "  AND EXISTS (SELECT 1 FROM mem) AND NOT EXISTS (SELECT 1 FROM dup) " LOCK "), "                      \
  "bumped AS (UPDATE conversations c SET last_seq = c.last_seq + 1, last_activity_at = $6 "             \
  "  FROM locked WHERE c.id = locked.id RETURNING c.last_seq), "                                        \
  "ins AS (INSERT INTO messages (id, conversation_id, seq, sender_id, type, client_msg_id, body, "      \
  "  created_at) SELECT $1, $2, last_seq, $3, 'text', $4, $5, $6 FROM bumped RETURNING seq), "          \
  "marked AS (UPDATE conversation_participants p SET read_seq = ins.seq, "                              \
  "  delivered_seq = greatest(p.delivered_seq, ins.seq) FROM ins "                                      \
  "  WHERE p.conversation_id = $2 AND p.user_id = $3 AND p.read_seq < ins.seq) "                        \
  "SELECT (SELECT seq FROM ins), EXISTS (SELECT 1 FROM dup), EXISTS (SELECT 1 FROM mem), "              \
  "  (SELECT string_agg(user_id::text, ',' ORDER BY user_id) FROM conversation_participants "           \
  "   WHERE conversation_id = $2)"
constexpr std::string_view kAppend = CHATD_PG_APPEND("FOR UPDATE");
constexpr std::string_view kAppendNoWait = CHATD_PG_APPEND("FOR UPDATE NOWAIT");
// clang-format on
#undef CHATD_PG_APPEND
constexpr std::string_view kInsertMessage =
    "INSERT INTO messages (id, conversation_id, seq, sender_id, type, client_msg_id, body, created_at, "
    "ref_id) VALUES ($1, $2, $3, $4, 'text', $5, $6, $7, $8)";
// The conversation list's preview: the newest message or membership/rename event; edits,
// deletes and reactions change an older row, so they are not "the last message".
constexpr std::string_view kLastMessage =
    "SELECT " CHATD_PG_MESSAGE_COLUMNS
    " FROM messages WHERE conversation_id = $1 AND seq > $2 "
    "AND type NOT IN ('edit', 'delete', 'reaction') ORDER BY seq DESC LIMIT 1";
// History: $1 conversation, $2 limit, $3 the cursor, $4 the viewer's joined_seq.
constexpr std::string_view kHistoryLatest = "SELECT " CHATD_PG_MESSAGE_COLUMNS
                                            " FROM messages WHERE conversation_id = $1 AND seq > $3 "
                                            "ORDER BY seq DESC LIMIT $2";
constexpr std::string_view kHistoryBefore = "SELECT " CHATD_PG_MESSAGE_COLUMNS
                                            " FROM messages WHERE conversation_id = $1 AND seq < $3 AND "
                                            "seq > $4 ORDER BY seq DESC LIMIT $2";
constexpr std::string_view kHistoryAfter = "SELECT " CHATD_PG_MESSAGE_COLUMNS
                                           " FROM messages WHERE conversation_id = $1 AND seq > "
                                           "greatest($3::bigint, $4::bigint) ORDER BY seq ASC LIMIT $2";
constexpr std::string_view kSetRead =
    "UPDATE conversation_participants SET read_seq = $3, delivered_seq = greatest(delivered_seq, $3) "
    "WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3";
constexpr std::string_view kSetDelivered =
    "UPDATE conversation_participants SET delivered_seq = $3 WHERE conversation_id = $1 AND user_id = $2 "
    "AND delivered_seq < $3";
constexpr std::string_view kMaxMessageId = "SELECT coalesce(max(id), 0) FROM messages";
constexpr std::string_view kHealth = "SELECT 1";

domain::User read_user(const Result& r, int row) {
  domain::User u;
  u.id = r.int64(row, 0);
  u.username = r.text(row, 1);
  u.email = r.text(row, 2);
  u.display_name = r.text(row, 3);
  u.profile_picture = r.text(row, 4);
  u.bio = r.text(row, 5);
  u.created_at = r.int64(row, 6);
  if (!r.is_null(row, 7)) u.last_seen = r.int64(row, 7);
  return u;
}

std::optional<domain::User> select_user(Connection& db, UserId id) {
  const auto r = db.exec(kSelectUser, {id});
  if (r.empty()) return std::nullopt;
  return read_user(r, 0);
}

// A LIKE pattern matching strings that start with `prefix` (backslash is LIKE's default escape).
std::string like_prefix(std::string_view prefix) {
  std::string pattern;
  pattern.reserve(prefix.size() + 1);
  for (char c : prefix) {
    if (c == '%' || c == '_' || c == '\\') pattern.push_back('\\');
    pattern.push_back(c);
  }
  pattern.push_back('%');
  return pattern;
}

std::vector<std::string> setup(std::string_view role) {
  return {std::string(kAppName), std::string(kQuiet), std::string(role)};
}

}  // namespace

int PostgresStore::schema_version() {
  return static_cast<int>(kMigrations.size());
}

PostgresStore::PostgresStore(Options options) : options_(std::move(options)) {
  writer_ = std::make_unique<Connection>(options_.conninfo, setup(kWriterSetup), /*reconnect=*/false);
  migrate();
  for (int i = 0; i < std::max(1, options_.read_connections); ++i) {
    idle_readers_.push_back(
        std::make_unique<Connection>(options_.conninfo, setup(kReaderSetup), /*reconnect=*/true));
  }
}

PostgresStore::~PostgresStore() = default;

void PostgresStore::migrate() {
  Connection& db = *writer_;
  db.exec_script(kBegin);
  try {
    db.exec(kMigrationLock);
    db.exec(kCreateMigrations);
    const auto version = db.exec(kSchemaVersion).int64(0, 0);
    if (version > schema_version()) {
      throw StoreCorrupt("database schema version " + std::to_string(version) +
                         " is newer than this chatd (" + std::to_string(schema_version()) + ")");
    }
    for (auto v = static_cast<std::size_t>(version); v < kMigrations.size(); ++v) {
      db.exec_script(kMigrations[v]);
      db.exec(kRecordMigration, {static_cast<std::int64_t>(v + 1)});
    }
    if (db.exec_script(kCommit).command() != "COMMIT") throw StoreError("migration transaction aborted");
  } catch (...) {
    if (db.in_transaction()) db.exec_script(kRollback);
    throw;
  }
}

PostgresStore::ReadLease::~ReadLease() {
  if (!db_) return;
  std::lock_guard lock(owner_.readers_mutex_);
  owner_.idle_readers_.push_back(std::move(db_));
  owner_.readers_cv_.notify_one();
}

PostgresStore::ReadLease PostgresStore::lease() {
  std::unique_lock lock(readers_mutex_);
  readers_cv_.wait(lock, [&] { return !idle_readers_.empty(); });
  auto db = std::move(idle_readers_.back());
  idle_readers_.pop_back();
  lock.unlock();
  ReadLease leased(*this, std::move(db));
  // A reader whose server went away reconnects here (throws StoreUnavailable if it cannot).
  (*leased).ensure_open();
  // A read that failed halfway may have left its snapshot open.
  if ((*leased).in_transaction()) (*leased).exec_script(kRollback);
  return leased;
}

void PostgresStore::begin_batch() {
  job_open_ = false;
  release_pending_ = false;
  jobs_done_ = 0;
  // A connection lost since the last batch (server restart, network) is replaced here, and only
  // here. PQstatus only learns of a loss when a call fails, so a failed BEGIN is retried once on a
  // new connection: nothing of the batch has run yet.
  writer_->ensure_open();
  if (writer_->in_transaction()) writer_->exec_script(kRollback);  // left over from a failed batch
  try {
    writer_->exec_script(kBegin);
  } catch (const StoreUnavailable&) {
    writer_->ensure_open();
    writer_->exec_script(kBegin);
  }
}

void PostgresStore::commit_batch() {
  // COMMIT of a transaction that hit an error answers ROLLBACK without failing: check.
  release_pending_ = false;
  const auto r = writer_->exec_script(kCommit);
  if (r.command() != "COMMIT") throw StoreError("batch transaction was aborted; rolled back");
}

void PostgresStore::rollback_batch() noexcept {
  job_open_ = false;
  release_pending_ = false;
  try {
    if (writer_->in_transaction()) writer_->exec_script(kRollback);
  } catch (const StoreError&) {
    // The connection is gone, and the transaction with it; begin_batch reconnects.
  }
}

// The savepoint of a finished job is released with the next job's SAVEPOINT, in one round trip
// (COMMIT releases the last one): a job costs one round trip less.
void PostgresStore::begin_job() {
  writer_->exec_script(release_pending_ ? kReleaseAndSavepoint : kSavepoint);
  release_pending_ = false;
  job_open_ = true;
}

void PostgresStore::end_job() {
  job_open_ = false;
  release_pending_ = true;
  ++jobs_done_;
}

// Wait for a row lock only while this transaction holds no other job's locks: a writer that waits
// while holding locks can deadlock with another node's writer doing the same in the other order
// (each batch locks its conversations in the order its jobs arrive).
bool PostgresStore::may_wait() const noexcept {
  return !job_open_ || jobs_done_ == 0;
}

detail::Result PostgresStore::next_seq(ConversationId id, TimeMs now) {
  return writer_->exec(may_wait() ? kNextSeq : kNextSeqNoWait, {id, now});
}

void PostgresStore::split_batch() {
  // The job found a conversation locked by another writer while earlier jobs of this batch hold
  // locks: undo the job, commit the earlier jobs (releasing every lock), and start a new
  // transaction in which the job may wait. A failed COMMIT fails the whole batch, as commit_batch.
  writer_->exec_script(kRollbackJob);
  job_open_ = false;
  const auto r = writer_->exec_script(kCommit);
  if (r.command() != "COMMIT") throw StoreError("batch transaction was aborted; rolled back");
  jobs_done_ = 0;
  writer_->exec_script(kBegin);
  writer_->exec_script(kSavepoint);
  job_open_ = true;
}

void PostgresStore::rollback_job() noexcept {
  job_open_ = false;
  try {
    writer_->exec_script(kRollbackJob);
  } catch (const StoreError&) {
    // Nothing more to undo here: the batch fails and rollback_batch ends the transaction.
  }
}

CreateUserResult PostgresStore::create_user(const NewUser& user, TimeMs now) {
  return settle_race([&] { return create_user_once(user, now); });
}

CreateUserResult PostgresStore::create_user_once(const NewUser& user, TimeMs now) {
  Connection& db = *writer_;
  const auto username_folded = domain::fold_case(user.username);
  const auto email_folded = domain::fold_case(user.email);
  if (!db.exec(kFindUsername, {username_folded}).empty()) return {CreateUserOutcome::username_taken, {}};
  if (!db.exec(kFindEmail, {email_folded}).empty()) return {CreateUserOutcome::email_taken, {}};
  const std::string display = user.display_name.empty() ? user.username : user.display_name;
  const auto r = db.exec(kInsertUser, {user.username, username_folded, user.email, email_folded,
                                       user.password_hash, display, domain::fold_case(display), now});
  return {CreateUserOutcome::created, *select_user(db, r.int64(0, 0))};
}

SessionIds PostgresStore::create_session(const NewSession& session, TimeMs now) {
  Connection& db = *writer_;
  const DeviceId device_id = db.exec(kInsertDevice, {session.user_id, domain::to_string(session.device_type),
                                                     session.device_name, now})
                                 .int64(0, 0);
  const SessionId session_id =
      db.exec(kInsertSession,
              {session.user_id, device_id, Param::bytes(session.access_hash), session.access_expires_at,
               Param::bytes(session.refresh_hash), session.refresh_expires_at, now})
          .int64(0, 0);
  return {session_id, device_id};
}

RotateResult PostgresStore::rotate_refresh(const RotateRequest& request, TimeMs now) {
  return settle_race([&] { return rotate_refresh_once(request, now); });
}

RotateResult PostgresStore::rotate_refresh_once(const RotateRequest& request, TimeMs now) {
  Connection& db = *writer_;
  const auto found = db.exec(kFindRefresh, {Param::bytes(request.old_refresh_hash)});
  if (!found.empty()) {
    const SessionId id = found.int64(0, 0);
    const domain::AuthContext auth{found.int64(0, 1), id, found.int64(0, 2)};
    const bool live = found.is_null(0, 4) && found.int64(0, 3) > now;
    if (!live) return {RotateOutcome::not_found, {}};
    db.exec(kRetireRefresh, {id});
    const auto rotated = db.exec(kRotate, {id, Param::bytes(request.refresh_hash), request.refresh_expires_at,
                                           Param::bytes(request.access_hash), request.access_expires_at,
                                           Param::bytes(request.old_refresh_hash)});
    if (rotated.affected() == 0) throw detail::UniqueViolation("rotate_refresh: rotated concurrently");
    db.exec(kTouchDevice, {id, now});
    return {RotateOutcome::rotated, auth};
  }
  const auto prev = db.exec(kFindPrevRefresh, {Param::bytes(request.old_refresh_hash)});
  if (!prev.empty()) {
    const SessionId id = prev.int64(0, 0);
    const UserId user = prev.int64(0, 1);
    db.exec(kRevoke, {id, now});
    return {RotateOutcome::reused, {user, id, 0}};
  }
  return {RotateOutcome::not_found, {}};
}

bool PostgresStore::revoke_session(SessionId session, TimeMs now) {
  return writer_->exec(kRevoke, {session, now}).affected() > 0;
}

std::vector<SessionId> PostgresStore::revoke_device(UserId user, DeviceId device, TimeMs now) {
  std::vector<SessionId> ids;
  const auto r = writer_->exec(kDeviceSessions, {user, device});
  for (int i = 0; i < r.rows(); ++i) ids.push_back(r.int64(i, 0));
  for (auto id : ids) writer_->exec(kRevoke, {id, now});
  return ids;
}

std::vector<DeviceSession> PostgresStore::list_devices(UserId user, TimeMs now) {
  auto db = lease();
  const auto r = (*db).exec(kListDevices, {user, now});
  std::vector<DeviceSession> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(DeviceSession{r.int64(i, 0), r.int64(i, 1),
                                domain::parse_device_type(r.text(i, 2)).value_or(domain::DeviceType::web),
                                r.text(i, 3), r.int64(i, 4), r.int64(i, 5)});
  }
  return out;
}

std::optional<domain::User> PostgresStore::update_profile(UserId user, const ProfileUpdate& update) {
  Connection& db = *writer_;
  std::optional<std::string> display_folded;
  if (update.display_name) display_folded = domain::fold_case(*update.display_name);
  db.exec(kUpdateProfile, {user, update.display_name, display_folded, update.profile_picture, update.bio});
  return select_user(db, user);
}

void PostgresStore::set_last_seen(UserId user, TimeMs when) {
  writer_->exec(kSetLastSeen, {user, when});
}

OpenDirectResult PostgresStore::open_direct(UserId self, UserId other, TimeMs now) {
  return settle_race([&] { return open_direct_once(self, other, now); });
}

OpenDirectResult PostgresStore::open_direct_once(UserId self, UserId other, TimeMs now) {
  Connection& db = *writer_;
  if (db.exec(kUserExists, {other}).empty()) return {OpenDirectOutcome::user_not_found, 0};
  const std::string key = std::to_string(std::min(self, other)) + ":" + std::to_string(std::max(self, other));
  if (const auto r = db.exec(kFindDirect, {key}); !r.empty())
    return {OpenDirectOutcome::existing, r.int64(0, 0)};
  const ConversationId id = db.exec(kInsertConversation, {"direct", "", key, self, now}).int64(0, 0);
  db.exec(kInsertParticipant, {id, self, "member", now, 0});
  if (other != self) db.exec(kInsertParticipant, {id, other, "member", now, 0});
  return {OpenDirectOutcome::created, id};
}

// The answer to an append whose (sender, client_msg_id) is taken: the original message if it is
// of the same conversation, a conflict if not; nullopt if the id is free.
std::optional<AppendResult> PostgresStore::earlier_use(const NewMessage& message) {
  const auto r = writer_->exec(kFindByClientId, {message.sender_id, message.client_msg_id});
  if (r.empty()) return std::nullopt;
  auto original = read_message(r, 0);
  if (original.conversation_id != message.conversation_id)
    return AppendResult{AppendOutcome::conflict, {}, {}};
  return AppendResult{AppendOutcome::duplicate, std::move(original), {}};
}

AppendResult PostgresStore::append_message(const NewMessage& message, MessageId id, TimeMs now) {
  return settle_race([&] { return append_message_once(message, id, now); });
}

AppendResult PostgresStore::append_message_once(const NewMessage& message, MessageId id, TimeMs now) {
  Connection& db = *writer_;
  if (!message.reply_to) {
    const auto r =
        db.exec(may_wait() ? kAppend : kAppendNoWait,
                {id, message.conversation_id, message.sender_id, message.client_msg_id, message.body, now});
    if (r.boolean(0, 1)) {
      if (auto earlier = earlier_use(message)) return std::move(*earlier);
      throw detail::UniqueViolation("append_message: the earlier message left");  // rerun by settle_race
    }
    if (!r.boolean(0, 2) || r.is_null(0, 0)) return {AppendOutcome::not_found, {}, {}};
    AppendResult result;
    result.outcome = AppendOutcome::appended;
    result.message.id = id;
    result.message.conversation_id = message.conversation_id;
    result.message.seq = r.int64(0, 0);
    result.message.sender_id = message.sender_id;
    result.message.body = message.body;
    result.message.client_msg_id = message.client_msg_id;
    result.message.created_at = now;
    result.members = parse_ids(r.text(0, 3));
    return result;
  }
  if (auto earlier = earlier_use(message)) return std::move(*earlier);
  const auto member = detail::membership(db, message.conversation_id, message.sender_id);
  if (!member) return {AppendOutcome::not_found, {}, {}};
  if (message.reply_to) {
    const auto r = db.exec(kMessageById, {*message.reply_to});
    if (r.empty()) return {AppendOutcome::bad_reply, {}, {}};
    const auto target = read_message(r, 0);
    if (target.conversation_id != message.conversation_id || target.type != "text" ||
        target.seq <= member->joined_seq)
      return {AppendOutcome::bad_reply, {}, {}};
  }
  const auto next = next_seq(message.conversation_id, now);
  if (next.empty()) return {AppendOutcome::not_found, {}, {}};
  const Seq seq = next.int64(0, 0);
  db.exec(kInsertMessage, {id, message.conversation_id, seq, message.sender_id, message.client_msg_id,
                           message.body, now, message.reply_to});
  // The sender has read everything up to their own message.
  db.exec(kSetRead, {message.conversation_id, message.sender_id, seq});
  AppendResult result;
  result.outcome = AppendOutcome::appended;
  result.message.id = id;
  result.message.conversation_id = message.conversation_id;
  result.message.seq = seq;
  result.message.sender_id = message.sender_id;
  result.message.body = message.body;
  result.message.client_msg_id = message.client_msg_id;
  result.message.created_at = now;
  result.message.ref_id = message.reply_to;
  result.members = member_ids(db, message.conversation_id);
  return result;
}

ReadResult PostgresStore::mark_read(UserId viewer, MessageId message, TimeMs now) {
  const auto r = writer_->exec(kMessageById, {message});
  if (r.empty()) return {};
  return mark_read_seq(viewer, r.int64(0, 1), r.int64(0, 2), now);
}

ReadResult PostgresStore::mark_read_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs /*now*/) {
  return move_watermark(viewer, conversation, seq, /*read=*/true);
}

ReadResult PostgresStore::mark_delivered_seq(UserId viewer,
                                             ConversationId conversation,
                                             Seq seq,
                                             TimeMs /*now*/) {
  return move_watermark(viewer, conversation, seq, /*read=*/false);
}

// Watermarks only move up, never past the log's end; read implies delivered.
ReadResult PostgresStore::move_watermark(UserId viewer, ConversationId conversation, Seq seq, bool read) {
  Connection& db = *writer_;
  const auto member = detail::membership(db, conversation, viewer);
  if (!member) return {};
  const auto row = db.exec(kConversationRow, {conversation});
  if (row.empty()) return {};
  const Seq target = std::min(seq, row.int64(0, 4));
  ReadResult result;
  result.conversation_id = conversation;
  result.read_seq = member->read_seq;
  result.delivered_seq = member->delivered_seq;
  const Seq current = read ? member->read_seq : member->delivered_seq;
  if (target <= current) {
    result.outcome = ReadOutcome::unchanged;
    return result;
  }
  db.exec(read ? kSetRead : kSetDelivered, {conversation, viewer, target});
  result.outcome = ReadOutcome::updated;
  if (read) result.read_seq = target;
  result.delivered_seq = std::max(result.delivered_seq, target);
  result.members = member_ids(db, conversation);
  return result;
}

std::vector<UserId> PostgresStore::member_ids(Connection& db, ConversationId id) {
  std::vector<UserId> ids;
  const auto r = db.exec(kMemberIds, {id});
  for (int i = 0; i < r.rows(); ++i) ids.push_back(r.int64(i, 0));
  return ids;
}

std::optional<Credentials> PostgresStore::find_credentials(std::string_view login_folded) {
  auto db = lease();
  const auto r = (*db).exec(kCredentials, {login_folded});
  if (r.empty()) return std::nullopt;
  return Credentials{r.int64(0, 0), r.text(0, 1)};
}

std::optional<domain::AuthContext> PostgresStore::find_access(std::string_view access_hash, TimeMs now) {
  auto db = lease();
  const auto r = (*db).exec(kFindAccess, {Param::bytes(access_hash), now});
  if (r.empty()) return std::nullopt;
  return domain::AuthContext{r.int64(0, 1), r.int64(0, 0), r.int64(0, 2), r.int64(0, 3)};
}

std::optional<domain::User> PostgresStore::find_user(UserId user) {
  auto db = lease();
  return select_user(*db, user);
}

std::vector<domain::User> PostgresStore::search_users(std::string_view prefix_folded, int limit) {
  auto db = lease();
  const auto r = (*db).exec(kSearchUsers, {like_prefix(prefix_folded), limit});
  std::vector<domain::User> users;
  for (int i = 0; i < r.rows(); ++i) users.push_back(read_user(r, i));
  return users;
}

std::optional<domain::Conversation> PostgresStore::load_conversation(Connection& db,
                                                                     UserId viewer,
                                                                     ConversationId id) {
  domain::Conversation c;
  const auto member = detail::membership(db, id, viewer);
  if (!member) return std::nullopt;
  c.read_seq = member->read_seq;
  c.delivered_seq = member->delivered_seq;
  {
    const auto r = db.exec(kConversationRow, {id});
    if (r.empty()) return std::nullopt;
    c.id = r.int64(0, 0);
    c.type = r.text(0, 1) == "group" ? domain::ConversationType::group : domain::ConversationType::direct;
    c.name = r.text(0, 2);
    c.created_at = r.int64(0, 3);
    c.last_seq = r.int64(0, 4);
  }
  {
    const auto r = db.exec(kMembers, {id});
    for (int i = 0; i < r.rows(); ++i) {
      c.members.push_back(
          domain::Member{r.int64(i, 0), r.text(i, 1), r.text(i, 2),
                         domain::parse_member_role(r.text(i, 3)).value_or(domain::MemberRole::member),
                         r.int64(i, 4), r.int64(i, 5), r.int64(i, 6)});
    }
  }
  if (const auto r = db.exec(kLastMessage, {id, member->joined_seq}); !r.empty()) {
    c.last_message = read_message(r, 0);
    detail::load_reactions(db, *c.last_message);
  }
  c.unread_count = db.exec(kUnread, {id, std::max(c.read_seq, member->joined_seq), viewer}).int64(0, 0);
  return c;
}

std::vector<domain::Conversation> PostgresStore::list_conversations(UserId viewer) {
  auto db = lease();
  std::vector<domain::Conversation> out;
  // One snapshot, so the list is consistent.
  (*db).exec_script(kBeginSnapshot);
  try {
    std::vector<ConversationId> ids;
    const auto r = (*db).exec(kConversationsOf, {viewer});
    for (int i = 0; i < r.rows(); ++i) ids.push_back(r.int64(i, 0));
    for (auto id : ids) {
      if (auto c = load_conversation(*db, viewer, id)) out.push_back(std::move(*c));
    }
  } catch (...) {
    if ((*db).in_transaction()) (*db).exec_script(kRollback);
    throw;
  }
  (*db).exec_script(kCommit);
  return out;
}

std::optional<domain::Conversation> PostgresStore::get_conversation(UserId viewer, ConversationId id) {
  auto db = lease();
  return load_conversation(*db, viewer, id);
}

std::optional<HistoryPage> PostgresStore::history(UserId viewer,
                                                  ConversationId id,
                                                  const HistoryQuery& query) {
  auto db = lease();
  const auto member = detail::membership(*db, id, viewer);
  if (!member) return std::nullopt;
  const Seq floor = member->joined_seq;
  const auto r = query.after    ? (*db).exec(kHistoryAfter, {id, query.limit + 1, *query.after, floor})
                 : query.before ? (*db).exec(kHistoryBefore, {id, query.limit + 1, *query.before, floor})
                                : (*db).exec(kHistoryLatest, {id, query.limit + 1, floor});
  HistoryPage page;
  for (int i = 0; i < r.rows(); ++i) page.messages.push_back(read_message(r, i));
  if (page.messages.size() > static_cast<std::size_t>(query.limit)) {
    page.has_more = true;
    page.messages.pop_back();
  }
  if (!query.after) std::reverse(page.messages.begin(), page.messages.end());
  detail::load_reactions(*db, page.messages);
  return page;
}

MessageId PostgresStore::max_message_id() {
  auto db = lease();
  return (*db).exec(kMaxMessageId).int64(0, 0);
}

bool PostgresStore::healthy() {
  try {
    auto db = lease();
    return !(*db).exec(kHealth).empty();
  } catch (const StoreError&) {
    return false;
  }
}

}  // namespace chat::store::postgres

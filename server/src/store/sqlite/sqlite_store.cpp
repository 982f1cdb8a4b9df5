#include "store/sqlite/sqlite_store.hpp"

#include "domain/validation.hpp"
#include "obs/log.hpp"
#include "store/errors.hpp"
#include "store/sqlite/sqlite_rows.hpp"
#include "store/sqlite/sqlite_wal_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <functional>
#include <iterator>
#include <string_view>

namespace chat::store::sqlite {

namespace {

using detail::Db;
using detail::kInsertParticipant;
using detail::kMemberIds;
using detail::kMessageById;
using detail::kUserExists;
using detail::read_message;
using detail::Statement;

// Versioned migrations: kMigrations[i] takes the schema from version i to i + 1 (PRAGMA
// user_version). Never edit a released step; append a new one.
constexpr std::array<std::string_view, 2> kMigrations = {
    R"sql(
CREATE TABLE users (
  id              INTEGER PRIMARY KEY,
  username        TEXT NOT NULL,
  username_folded TEXT NOT NULL UNIQUE,
  email           TEXT NOT NULL,
  email_folded    TEXT NOT NULL UNIQUE,
  password_hash   TEXT NOT NULL,
  display_name    TEXT NOT NULL DEFAULT '',
  display_folded  TEXT NOT NULL DEFAULT '',
  profile_picture TEXT NOT NULL DEFAULT '',
  bio             TEXT NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL,
  last_seen       INTEGER
);
CREATE INDEX users_by_display ON users(display_folded);

CREATE TABLE devices (
  id          INTEGER PRIMARY KEY,
  user_id     INTEGER NOT NULL REFERENCES users(id),
  device_type TEXT NOT NULL CHECK (device_type IN ('web', 'mobile', 'smart_tv')),
  name        TEXT NOT NULL DEFAULT '',
  push_id     TEXT,
  created_at  INTEGER NOT NULL,
  last_active INTEGER NOT NULL
);
CREATE INDEX devices_by_user ON devices(user_id);

CREATE TABLE sessions (
  id                 INTEGER PRIMARY KEY,
  user_id            INTEGER NOT NULL REFERENCES users(id),
  device_id          INTEGER NOT NULL REFERENCES devices(id),
  access_hash        BLOB NOT NULL UNIQUE,
  access_expires_at  INTEGER NOT NULL,
  refresh_hash       BLOB NOT NULL UNIQUE,
  refresh_expires_at INTEGER NOT NULL,
  created_at         INTEGER NOT NULL,
  revoked_at         INTEGER
);
-- Every refresh token a session has rotated away from: presenting one again is theft.
CREATE TABLE retired_refresh_tokens (
  hash       BLOB PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id)
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE conversations (
  id               INTEGER PRIMARY KEY,
  type             TEXT NOT NULL CHECK (type IN ('direct', 'group')),
  name             TEXT NOT NULL DEFAULT '',
  direct_key       TEXT UNIQUE,
  created_by       INTEGER NOT NULL REFERENCES users(id),
  created_at       INTEGER NOT NULL,
  last_seq         INTEGER NOT NULL DEFAULT 0,
  last_activity_at INTEGER NOT NULL
);

CREATE TABLE conversation_participants (
  conversation_id INTEGER NOT NULL REFERENCES conversations(id),
  user_id         INTEGER NOT NULL REFERENCES users(id),
  role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  joined_at       INTEGER NOT NULL,
  joined_seq      INTEGER NOT NULL DEFAULT 0,
  delivered_seq   INTEGER NOT NULL DEFAULT 0,
  read_seq        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX participants_by_user ON conversation_participants(user_id, conversation_id);

CREATE TABLE messages (
  id              INTEGER PRIMARY KEY,
  conversation_id INTEGER NOT NULL REFERENCES conversations(id),
  seq             INTEGER NOT NULL,
  sender_id       INTEGER NOT NULL REFERENCES users(id),
  type            TEXT NOT NULL DEFAULT 'text',
  client_msg_id   TEXT,
  body            TEXT NOT NULL DEFAULT '',
  ref_id          INTEGER,
  data            TEXT NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL,
  edited_at       INTEGER,
  deleted         INTEGER NOT NULL DEFAULT 0,
  UNIQUE (conversation_id, seq)
);
-- Events carry no client_msg_id (NULL), and NULLs never collide in a UNIQUE index.
CREATE UNIQUE INDEX messages_by_client_id ON messages(sender_id, client_msg_id);

CREATE TABLE reactions (
  message_id INTEGER NOT NULL REFERENCES messages(id),
  user_id    INTEGER NOT NULL REFERENCES users(id),
  emoji      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (message_id, emoji, user_id)
) WITHOUT ROWID;

CREATE TABLE invites (
  code            TEXT PRIMARY KEY,
  conversation_id INTEGER NOT NULL REFERENCES conversations(id),
  created_by      INTEGER NOT NULL REFERENCES users(id),
  created_at      INTEGER NOT NULL,
  revoked_at      INTEGER
);
CREATE INDEX invites_by_conversation ON invites(conversation_id);
)sql",
    // 2: the database's identity, which the append log's frames carry (append_log.hpp), so a log
    // left beside another database file is never replayed into it.
    R"sql(
CREATE TABLE store_meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (key, value) VALUES ('database_id', random() & 9223372036854775807);
)sql",
};

// Readers read through a memory map instead of a read() per page missing from the page cache
// (history of a large conversation). Not the writer: with a map, every page it gets is looked up in
// the WAL index first (sqlite3WalFindFrame, 6 % of its instructions per append) and mapped pages
// never stay in its page cache; its working set (the right edges of the indexes, the rows of active
// conversations) stays in its cache_size instead. Writes go through the WAL with write() and fsync.
constexpr std::string_view kMmap = "PRAGMA mmap_size = 1073741824";
constexpr std::string_view kBegin = "BEGIN IMMEDIATE";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kBeginRead = "BEGIN";  // deferred: a read transaction at its first read
constexpr std::string_view kDataVersion = "PRAGMA data_version";
constexpr std::string_view kRollback = "ROLLBACK";
constexpr std::string_view kSavepoint = "SAVEPOINT job";
constexpr std::string_view kRelease = "RELEASE job";

constexpr std::string_view kFindUsername = "SELECT 1 FROM users WHERE username_folded = ?1";
constexpr std::string_view kFindEmail = "SELECT 1 FROM users WHERE email_folded = ?1";
constexpr std::string_view kInsertUser =
    "INSERT INTO users (username, username_folded, email, email_folded, password_hash, display_name, "
    "display_folded, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr std::string_view kSelectUser =
    "SELECT id, username, email, display_name, profile_picture, bio, created_at, last_seen FROM users WHERE "
    "id = ?1";
constexpr std::string_view kCredentials =
    "SELECT id, password_hash FROM users WHERE username_folded = ?1 OR email_folded = ?1 LIMIT 1";
constexpr std::string_view kSearchUsers =
    "SELECT id, username, email, display_name, profile_picture, bio, created_at, last_seen FROM users "
    "WHERE (username_folded >= ?1 AND username_folded < ?2) OR (display_folded >= ?1 AND display_folded < "
    "?2) "
    "ORDER BY username_folded LIMIT ?3";
constexpr std::string_view kUpdateProfile =
    "UPDATE users SET display_name = coalesce(?2, display_name), display_folded = coalesce(?3, "
    "display_folded), "
    "profile_picture = coalesce(?4, profile_picture), bio = coalesce(?5, bio) WHERE id = ?1";
constexpr std::string_view kSetLastSeen = "UPDATE users SET last_seen = ?2 WHERE id = ?1";

constexpr std::string_view kInsertDevice =
    "INSERT INTO devices (user_id, device_type, name, created_at, last_active) VALUES (?1, ?2, ?3, ?4, ?4)";
constexpr std::string_view kInsertSession =
    "INSERT INTO sessions (user_id, device_id, access_hash, access_expires_at, refresh_hash, "
    "refresh_expires_at, "
    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr std::string_view kFindAccess =
    "SELECT id, user_id, device_id, access_expires_at FROM sessions WHERE access_hash = ?1 AND "
    "revoked_at IS NULL AND access_expires_at > ?2";
constexpr std::string_view kFindRefresh =
    "SELECT id, user_id, device_id, refresh_expires_at, revoked_at FROM sessions WHERE refresh_hash = ?1";
constexpr std::string_view kFindPrevRefresh =
    "SELECT s.id, s.user_id FROM retired_refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE "
    "r.hash = ?1";
constexpr std::string_view kRetireRefresh =
    "INSERT OR IGNORE INTO retired_refresh_tokens (hash, session_id) SELECT refresh_hash, id FROM sessions "
    "WHERE id = ?1";
constexpr std::string_view kRotate =
    "UPDATE sessions SET refresh_hash = ?2, refresh_expires_at = ?3, access_hash = ?4, access_expires_at = "
    "?5 "
    "WHERE id = ?1";
constexpr std::string_view kRevoke =
    "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
constexpr std::string_view kListDevices =
    "SELECT d.id, s.id, d.device_type, d.name, d.created_at, d.last_active FROM sessions s "
    "JOIN devices d ON d.id = s.device_id WHERE s.user_id = ?1 AND s.revoked_at IS NULL "
    "AND s.refresh_expires_at > ?2 ORDER BY d.last_active DESC, d.id DESC LIMIT 200";
constexpr std::string_view kDeviceSessions =
    "SELECT id FROM sessions WHERE user_id = ?1 AND device_id = ?2 AND revoked_at IS NULL";
constexpr std::string_view kTouchDevice =
    "UPDATE devices SET last_active = ?2 WHERE id = (SELECT device_id FROM sessions WHERE id = ?1)";

constexpr std::string_view kFindDirect = "SELECT id FROM conversations WHERE direct_key = ?1";
constexpr std::string_view kInsertConversation =
    "INSERT INTO conversations (type, name, direct_key, created_by, created_at, last_activity_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?5)";

constexpr std::string_view kMembers =
    "SELECT p.user_id, u.username, u.display_name, p.role, p.joined_at, p.delivered_seq, p.read_seq "
    "FROM conversation_participants p "
    "JOIN users u ON u.id = p.user_id WHERE p.conversation_id = ?1 ORDER BY p.joined_at, p.user_id";
constexpr std::string_view kConversationRow =
    "SELECT id, type, name, created_at, last_seq FROM conversations WHERE id = ?1";
constexpr std::string_view kConversationsOf =
    "SELECT c.id FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.user_id = ?1 ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 1000";
constexpr std::string_view kUnread =
    "SELECT count(*) FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND sender_id <> ?3 AND type = "
    "'text' "
    "AND deleted = 0";

constexpr std::string_view kAppendMembers =
    "SELECT user_id, joined_seq FROM conversation_participants WHERE conversation_id = ?1 ORDER BY user_id";
// The conversation row as the appends of a batch left it (SqliteStore::flush_appends).
constexpr std::string_view kSetLastSeq =
    "UPDATE conversations SET last_seq = ?2, last_activity_at = ?3 WHERE id = ?1";
// Replay of the append log: rows may already be there (the log outlives the commit that made it
// redundant until its next frame), so every change only moves forward.
constexpr std::string_view kReplayLastSeq =
    "UPDATE conversations SET last_seq = max(last_seq, ?2), last_activity_at = max(last_activity_at, ?3) "
    "WHERE id = ?1";
constexpr std::string_view kDatabaseId = "SELECT value FROM store_meta WHERE key = 'database_id'";
constexpr std::string_view kFindByClientId =
    "SELECT " CHATD_MESSAGE_COLUMNS " FROM messages WHERE sender_id = ?1 AND client_msg_id = ?2";
// OR IGNORE: a taken (sender_id, client_msg_id) leaves the row out instead of failing, and the
// append then looks the original up (earlier_use); the index's uniqueness check is the lookup.
constexpr std::string_view kInsertMessage =
    "INSERT OR IGNORE INTO messages (id, conversation_id, seq, sender_id, type, client_msg_id, body, "
    "created_at, ref_id) "
    "VALUES (?1, ?2, ?3, ?4, 'text', ?5, ?6, ?7, ?8)";
// The conversation list's preview: the newest message or membership/rename event; edits,
// deletes and reactions change an older row, so they are not "the last message".
constexpr std::string_view kLastMessage =
    "SELECT " CHATD_MESSAGE_COLUMNS
    " FROM messages WHERE conversation_id = ?1 AND seq > ?2 "
    "AND type NOT IN ('edit', 'delete', 'reaction') ORDER BY seq DESC LIMIT 1";
constexpr std::string_view kHistoryLatest = "SELECT " CHATD_MESSAGE_COLUMNS
                                            " FROM messages WHERE conversation_id = ?1 AND seq > ?4 "
                                            "ORDER BY seq DESC LIMIT ?2";
constexpr std::string_view kHistoryBefore = "SELECT " CHATD_MESSAGE_COLUMNS
                                            " FROM messages WHERE conversation_id = ?1 AND seq < ?3 AND "
                                            "seq > ?4 ORDER BY seq DESC LIMIT ?2";
constexpr std::string_view kHistoryAfter = "SELECT " CHATD_MESSAGE_COLUMNS
                                           " FROM messages WHERE conversation_id = ?1 AND seq > max(?3, ?4) "
                                           "ORDER BY seq ASC LIMIT ?2";
constexpr std::string_view kSetRead =
    "UPDATE conversation_participants SET read_seq = ?3, delivered_seq = max(delivered_seq, ?3) "
    "WHERE conversation_id = ?1 AND user_id = ?2 AND read_seq < ?3";
constexpr std::string_view kSetDelivered =
    "UPDATE conversation_participants SET delivered_seq = ?3 WHERE conversation_id = ?1 AND user_id = ?2 "
    "AND delivered_seq < ?3";
constexpr std::string_view kMaxMessageId = "SELECT coalesce(max(id), 0) FROM messages";
constexpr std::string_view kHealth = "SELECT 1";

domain::User read_user(const Statement& s) {
  domain::User u;
  u.id = s.int64(0);
  u.username = s.text(1);
  u.email = s.text(2);
  u.display_name = s.text(3);
  u.profile_picture = s.text(4);
  u.bio = s.text(5);
  u.created_at = s.int64(6);
  if (!s.is_null(7)) u.last_seen = s.int64(7);
  return u;
}

std::optional<domain::User> select_user(Db& db, UserId id) {
  auto s = db.prepare(kSelectUser);
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_user(s);
}

// The smallest string greater than every string starting with `prefix`, for index range scans
// (LIKE would not use the index with case-folded data of arbitrary bytes).
std::string prefix_upper_bound(std::string_view prefix) {
  std::string upper(prefix);
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xFF) upper.pop_back();
  if (upper.empty()) return std::string(1, '\x7F') + std::string(8, '\xFF');
  upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  return upper;
}

// Process-wide, so once, before the first connection: SQLite's memory statistics take a global
// mutex and update counters on every allocation and free (the writer makes dozens per message) and
// nothing reads them. sqlite3_config refuses (SQLITE_MISUSE, no change) once SQLite is initialized,
// e.g. when a test opened a database directly first; that only costs the saving.
void configure_sqlite() {
  static const int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)rc;
}

// The answer to an append whose (sender, client_msg_id) is already taken: the original message if
// it is of the same conversation, a conflict if not; nullopt if the id is free.
std::optional<AppendResult> earlier_use(Db& db, const NewMessage& message) {
  auto s = db.prepare(kFindByClientId);
  s.bind(1, message.sender_id).bind_unowned(2, message.client_msg_id);
  if (!s.step()) return std::nullopt;
  auto original = read_message(s);
  if (original.conversation_id != message.conversation_id)
    return AppendResult{AppendOutcome::conflict, {}, {}};
  return AppendResult{AppendOutcome::duplicate, std::move(original), {}};
}

// An append refused for `why`; a retry of a stored message is answered as such all the same (the
// idempotency answer comes first, whatever changed since the original).
AppendResult refuse(Db& db, const NewMessage& message, AppendOutcome why) {
  if (auto earlier = earlier_use(db, message)) return std::move(*earlier);
  return {why, {}, {}};
}

}  // namespace

int SqliteStore::schema_version() {
  return static_cast<int>(kMigrations.size());
}

SqliteStore::SqliteStore(Options options) : options_(std::move(options)) {
  configure_sqlite();
  // The writer's WAL writes go out as one pwrite() per commit (sqlite_wal_vfs.hpp).
  writer_ = std::make_unique<Db>(options_.path, Db::Mode::read_write, detail::wal_write_combining_vfs());
  writer_->exec("PRAGMA journal_mode = WAL");
  // FULL: the WAL is fsynced at every commit, so an acknowledged message survives a power cut,
  // not only a crash of chatd. Group commit is what makes this affordable.
  writer_->exec("PRAGMA synchronous = FULL");
  writer_->exec("PRAGMA foreign_keys = ON");
  writer_->exec("PRAGMA cache_size = -65536");
  migrate();
  // A checkpoint (copy WAL -> database, fsync the database) per 4000 new frames (16 MB) once the
  // WAL holds 16000, not SQLite's per 1000: fewer fsyncs, and a page written by many commits (an
  // index leaf, a conversation row) is copied once per pass. W2 at 16 000 msg/s: checkpointer CPU
  // per message 8.1 -> 3.4 us against 4000 / 1000. Durability is the WAL's. Run on the
  // checkpointer's thread, not inside a commit (see Checkpointer).
  checkpointer_ = std::make_unique<detail::Checkpointer>(options_.path, options_.checkpoint_frames,
                                                         4 * options_.checkpoint_frames);
  checkpointer_->attach(writer_->handle());
  if (options_.append_log) {
    std::uint64_t db_id = 0;
    {
      auto s = writer_->prepare(kDatabaseId);
      if (!s.step()) throw StoreCorrupt("store_meta has no database_id");
      db_id = static_cast<std::uint64_t>(s.int64(0));
    }
    // Two logs: while a background publish commits the run of one, new frames go to the other.
    const auto max_bytes = std::max(options_.append_log_max_bytes, std::size_t{1} << 20);
    logs_[0] = std::make_unique<detail::AppendLog>(options_.path + "-log", db_id, max_bytes);
    logs_[1] = std::make_unique<detail::AppendLog>(options_.path + "-log2", db_id, max_bytes);
    log_ = logs_[0].get();
    // What a crash left in the logs: sends acknowledged but not in a durable SQLite commit.
    auto logged = logs_[0]->recover();
    auto second = logs_[1]->recover();
    logged.insert(logged.end(), std::make_move_iterator(second.begin()),
                  std::make_move_iterator(second.end()));
    if (!logged.empty()) {
      writer_->exec(kBegin);
      try {
        replay(logged);
        writer_->exec(kCommit);
      } catch (...) {
        sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
      replayed_at_open_ = logged.size();
    }
    logs_[0]->reset();
    logs_[1]->reset();
    if (options_.background_publish) {
      probe_ = open_reader();
      publisher_ = std::thread([this] { publisher_loop(); });
    }
  }
  for (int i = 0; i < std::max(1, options_.read_connections); ++i) idle_readers_.push_back(open_reader());
  open_readers_ = static_cast<int>(idle_readers_.size());
}

std::unique_ptr<Db> SqliteStore::open_reader() {
  auto db = std::make_unique<Db>(options_.path, Db::Mode::read_only);
  db->exec("PRAGMA cache_size = -16384");
  db->exec(kMmap);
  return db;
}

SqliteStore::~SqliteStore() {
  // Sends still deferred are in the logs, which the next open replays if this commit fails.
  try {
    publish();
  } catch (...) {
  }
  if (publisher_.joinable()) {
    {
      std::lock_guard lock(publish_mutex_);
      publisher_stopping_ = true;
    }
    publish_cv_.notify_all();
    publisher_.join();
  }
}

void SqliteStore::publisher_loop() {
  obs::name_this_thread("chatd-publish");
  std::unique_lock lock(publish_mutex_);
  for (;;) {
    publish_cv_.wait(lock, [this] { return publish_requested_ || publisher_stopping_; });
    if (!publish_requested_) return;
    publish_requested_ = false;
    lock.unlock();
    // writer_ is this thread's until publish_over_ is set: the writer thread does not touch it.
    std::exception_ptr error;
    try {
      if (options_.before_background_commit) options_.before_background_commit();
      writer_->prepare(kCommit).run();
    } catch (...) {
      error = std::current_exception();
      sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    lock.lock();
    publish_over_ = true;
    publish_error_ = error;
    // Under the mutex: once end_publish has seen publish_over_, `done` has returned (its owner may
    // be gone right after).
    if (auto done = std::exchange(publish_done_, {})) done();
    publish_cv_.notify_all();
  }
}

std::uint64_t SqliteStore::background_checkpoints() const noexcept {
  return checkpointer_->checkpoints();
}

std::uint64_t SqliteStore::inline_checkpoints() const noexcept {
  return checkpointer_->inline_checkpoints();
}

std::uint64_t SqliteStore::finished_checkpoints() const noexcept {
  return checkpointer_->finished_checkpoints();
}

void SqliteStore::migrate() {
  auto version_stmt = writer_->prepare("PRAGMA user_version");
  version_stmt.step();
  const auto version = version_stmt.int64(0);
  if (version > schema_version()) {
    throw StoreCorrupt("database schema version " + std::to_string(version) + " is newer than this chatd (" +
                       std::to_string(schema_version()) + ")");
  }
  for (auto v = static_cast<std::size_t>(version); v < kMigrations.size(); ++v) {
    writer_->exec(kBegin);
    try {
      writer_->exec(kMigrations[v]);
      writer_->exec("PRAGMA user_version = " + std::to_string(v + 1));
      writer_->exec(kCommit);
    } catch (...) {
      writer_->exec(kRollback);
      throw;
    }
  }
}

SqliteStore::ReadLease SqliteStore::lease() {
  std::unique_lock lock(readers_mutex_);
  if (idle_readers_.empty() && open_readers_ < kMaxReadConnections) {
    ++open_readers_;
    lock.unlock();
    try {
      return ReadLease(*this, open_reader());
    } catch (...) {
      lock.lock();
      --open_readers_;
      throw;
    }
  }
  readers_cv_.wait(lock, [&] { return !idle_readers_.empty(); });
  auto db = std::move(idle_readers_.back());
  idle_readers_.pop_back();
  return ReadLease(*this, std::move(db));
}

void SqliteStore::begin_transaction() {
  writer_->prepare(kBegin).run();
  txn_open_ = true;
  // Under the write lock: another connection's commit since our last batch changes the version.
  auto version = writer_->prepare(kDataVersion);
  version.step();
  if (const auto v = version.int64(0); v != data_version_) {
    appends_.clear();
    held_cache_valid_ = false;
    data_version_ = v;
  }
}

void SqliteStore::begin_batch() {
  // Writes outside any batch, never flushed (writes held for a publish are not: they wait for it).
  if (appends_pending_ && !publishing_ && !deferred_) discard_appends();
  journal_only_ = true;
  in_batch_ = true;
  if (publishing_ && !end_publish(false)) {
    held_batch_mark_ = held_.size();  // a batch acknowledged from the log while the publish runs
    return;
  }
  if (!txn_open_) begin_transaction();
  if (needs_replay_) {
    // The logged batches SQLite rolled back go in again first; the batch's jobs run after them.
    const auto logged = logged_runs();
    replay(logged);
    needs_replay_ = false;
    deferred_ = !logged.empty();
  }
  if (draining_) drain_held(drain_chunk());
}
void SqliteStore::commit_batch() {
  end_publish(true);
  if (!txn_open_) begin_transaction();  // the batch ran while a publish held writer_
  drain_all();
  write_appends();
  writer_->prepare(kCommit).run();
  txn_open_ = false;
  in_batch_ = false;
  committed_durably();
  if (appends_.size() > kAppendCacheMax) appends_.clear();
}
// A batch of sends only, with room in the log: its frame is written and fdatasynced, and the
// transaction stays open for the next batches until publish(). Anything else commits.
bool SqliteStore::commit_batch_deferred() {
  end_probe();
  if (publishing_ && journal_only_ && log_->fits()) {
    // Sends acknowledged from the log while the publish runs: their rows go in at end_publish.
    if (log_->has_pending()) log_->commit();
    held_batch_mark_ = held_.size();
    in_batch_ = false;
    return true;
  }
  if (!log_ || !journal_only_ || !log_->fits()) {
    commit_batch();
    return false;
  }
  if (!log_->has_pending() && !deferred_) {
    commit_batch();  // nothing was appended (refusals, retries): an empty commit
    return false;
  }
  // The conversations' rows and read markers stay in appends_ until the publish (or the next
  // writer method that reads them): the log has them, and SQLite shows nothing before the publish.
  log_->commit();
  deferred_ = true;
  in_batch_ = false;
  if (appends_.size() > kAppendCacheMax) {
    drain_all();
    write_appends();
    appends_.clear();
  }
  return true;
}
void SqliteStore::publish() {
  end_publish(true);
  drain_all();
  if (needs_replay_) {
    // A failed batch rolled logged sends back: in again, and committed.
    try {
      begin_batch();
      commit_batch();
    } catch (...) {
      rollback_batch();
      throw;
    }
    return;
  }
  if (!deferred_) return;
  try {
    write_appends();  // held sends' conversation rows and read markers (end_publish)
    writer_->prepare(kCommit).run();
  } catch (...) {
    rollback_batch();  // the log keeps them: the next batch replays them (needs_replay_)
    throw;
  }
  txn_open_ = false;
  committed_durably();
}
bool SqliteStore::begin_publish(std::function<void()> done) {
  // Synchronously when there is no publisher, or what the logs hold is not simply the open
  // transaction (a replay is due, the other log still holds a run SQLite rolled back).
  if (!publisher_.joinable() || publishing_ || needs_replay_ || !deferred_ || in_batch_ || !txn_open_ ||
      log_->has_pending() || !logs_[1 - active_]->run_empty()) {
    publish();
    return false;
  }
  try {
    drain_all();      // the transaction must hold every send of the run it ends
    write_appends();  // held sends' conversation rows and read markers (end_publish)
  } catch (...) {
    rollback_batch();  // the log keeps them: the next batch replays them (needs_replay_)
    throw;
  }
  // The run in log_ is what the transaction holds; new frames go to the other log's new run.
  active_ = 1 - active_;
  log_ = logs_[active_].get();
  publishing_keys_.swap(txn_keys_);
  txn_keys_.clear();
  held_.clear();
  held_batch_mark_ = 0;
  held_cache_valid_ = true;
  txn_open_ = false;
  publishing_ = true;
  {
    std::lock_guard lock(publish_mutex_);
    publish_requested_ = true;
    publish_done_ = std::move(done);
  }
  publish_cv_.notify_all();
  return true;
}
bool SqliteStore::finish_publish(bool wait, bool* deferred) {
  if (!end_publish(wait)) return false;
  *deferred = deferred_ || needs_replay_;
  return true;
}
bool SqliteStore::end_publish(bool wait) {
  if (!publishing_) return true;
  std::exception_ptr error;
  {
    std::unique_lock lock(publish_mutex_);
    if (!wait && !publish_over_) return false;
    publish_cv_.wait(lock, [this] { return publish_over_; });
    publish_over_ = false;
    error = std::exchange(publish_error_, nullptr);
  }
  publishing_ = false;
  end_probe();
  if (error) {
    // SQLite rolled the transaction back: its sends are in the other log's run, and those held
    // since are in this one's. Outside a batch the next batch replays both (the caller, the
    // StoreService's publish, hears of the error); inside one, they go in again now, with the
    // current batch's held sends (not in a frame yet) after them, and the batch goes on.
    txn_keys_.merge(publishing_keys_);
    publishing_keys_.clear();
    discard_appends();
    deferred_ = false;
    needs_replay_ = true;
    if (!in_batch_) {
      held_.clear();
      held_batch_mark_ = 0;
      std::rethrow_exception(error);
    }
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      obs::log_warn(std::string("store: background publish failed, replaying the append log: ") + e.what());
    }
    begin_transaction();
    replay(logged_runs());
    needs_replay_ = false;
    deferred_ = true;
    held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(held_batch_mark_));
    held_job_mark_ -= std::min(held_job_mark_, held_batch_mark_);
    held_batch_mark_ = 0;
  } else {
    publishing_keys_.clear();
    deferred_ = false;
    logs_[1 - active_]->reset();  // its run is in a durable commit now
  }
  if (!held_.empty() || in_batch_) {
    // The held sends (all acknowledged but the current batch's) into a new transaction: inside a
    // job, that job's own after its savepoint, so that rollback_job drops them with it.
    if (!txn_open_) begin_transaction();
    // Their conversations' last_seq and the senders' read markers wait in appends_ (written with
    // the next batch, as for any send) unless the cache was dropped meanwhile, or this is a job
    // whose savepoint could drop them with it: then each row's updates go in now.
    const bool rows_only = held_cache_valid_ && !in_job_;
    deferred_ = deferred_ || held_batch_mark_ > 0;
    if (rows_only) {
      // A chunk now, the rest with the next batches (drain_held); the current batch's own held
      // sends among them are dropped with it if it rolls back (rollback_batch).
      held_batch_mark_ = 0;
      held_job_mark_ = 0;
      draining_ = !held_.empty();
      held_next_ = 0;
      if (draining_) drain_held(drain_chunk());
      return true;
    }
    const std::size_t split = in_job_ ? held_job_mark_ : held_.size();
    insert_logged(held_, 0, split, rows_only);
    if (in_job_) {
      writer_->prepare(kSavepoint).run();
      job_savepoint_ = true;
      insert_logged(held_, split, held_.size(), rows_only);
    }
    held_.clear();
    held_batch_mark_ = 0;
    held_job_mark_ = 0;
  }
  return true;
}
void SqliteStore::drain_held(std::size_t max) {
  const std::size_t to = held_next_ + std::min(max, held_.size() - held_next_);
  insert_logged(held_, held_next_, to, /*rows_only=*/true);
  held_next_ = to;
  if (held_next_ < held_.size()) return;
  held_.clear();
  held_next_ = 0;
  draining_ = false;
}
void SqliteStore::end_probe() noexcept {
  if (!probe_open_) return;
  probe_open_ = false;
  sqlite3_exec(probe_->handle(), "COMMIT", nullptr, nullptr, nullptr);
}
void SqliteStore::committed_durably() noexcept {
  deferred_ = false;
  txn_keys_.clear();
  if (log_) {
    logs_[0]->reset();
    logs_[1]->reset();
  }
}
void SqliteStore::rollback_batch() noexcept {
  in_batch_ = false;
  end_probe();
  discard_appends();
  if (log_) log_->discard_pending();
  if (publishing_) {
    held_.resize(held_batch_mark_);  // the batch's sends, never acknowledged
    return;
  }
  // Held sends not inserted yet: rolled back with the rest (the acknowledged ones are replayed
  // from the log below, the batch's own were never acknowledged).
  held_.clear();
  held_next_ = 0;
  draining_ = false;
  // Fails only if no transaction is open, which is what we want after a failed COMMIT.
  sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  txn_open_ = false;
  if (deferred_) {
    deferred_ = false;
    needs_replay_ = true;
  }
}
// A job's deferred writes go to the database inside its own savepoint: rollback_job then drops
// exactly that job's (still pending) writes with the savepoint, and its records in the log frame.
// While a publish holds writer_ the savepoint waits until the job needs the database (end_publish).
void SqliteStore::begin_job() {
  if (!publishing_) drain_all();  // rollback_job's savepoint must not take acknowledged sends
  in_job_ = true;
  if (log_) job_mark_ = log_->mark();
  held_job_mark_ = held_.size();
  job_savepoint_ = false;
  if (publishing_) return;
  write_appends();
  writer_->prepare(kSavepoint).run();
  job_savepoint_ = true;
}
void SqliteStore::end_job() {
  in_job_ = false;
  if (!job_savepoint_) return;
  job_savepoint_ = false;
  write_appends();
  writer_->prepare(kRelease).run();
}
void SqliteStore::rollback_job() noexcept {
  in_job_ = false;
  discard_appends();
  if (job_savepoint_) {
    job_savepoint_ = false;
    sqlite3_exec(writer_->handle(), "ROLLBACK TO job; RELEASE job", nullptr, nullptr, nullptr);
  } else {
    held_.resize(held_job_mark_);
  }
  if (log_) log_->truncate_to(job_mark_);
}

void SqliteStore::flush_appends() {
  end_publish(true);
  drain_all();
  journal_only_ = false;
  write_appends();
}

void SqliteStore::write_appends() {
  if (!appends_pending_) return;
  Db& db = *writer_;
  for (auto& [id, state] : appends_) {
    if (state.dirty) {
      db.prepare(kSetLastSeq).bind(1, id).bind(2, state.last_seq).bind(3, state.last_activity_at).run();
      state.dirty = false;
    }
    // One kSetRead with a sender's last seq of the batch leaves the row as one per message did:
    // seqs only grow, and read_seq never passes last_seq.
    for (const auto& [user, seq] : state.read_markers) {
      db.prepare(kSetRead).bind(1, id).bind(2, user).bind(3, seq).run();
    }
    state.read_markers.clear();
  }
  appends_pending_ = false;
}

void SqliteStore::replay(const std::vector<detail::LoggedMessage>& messages) {
  insert_logged(messages, 0, messages.size(), /*rows_only=*/false);
  appends_.clear();  // last_seq and read markers as the rows now say
  held_cache_valid_ = false;
}

void SqliteStore::insert_logged(const std::vector<detail::LoggedMessage>& messages,
                                std::size_t from,
                                std::size_t to,
                                bool rows_only) {
  Db& db = *writer_;
  for (std::size_t i = from; i < to; ++i) {
    const auto& m = messages[i];
    auto insert = db.prepare(kInsertMessage);
    insert.bind(1, m.id)
        .bind(2, m.conversation_id)
        .bind(3, m.seq)
        .bind(4, m.sender_id)
        .bind_unowned(5, m.client_msg_id)
        .bind_unowned(6, m.body)
        .bind(7, m.created_at);
    if (m.reply_to) {
      insert.bind(8, *m.reply_to);
    } else {
      insert.bind_null(8);
    }
    insert.run();
    if (rows_only) continue;
    db.prepare(kReplayLastSeq).bind(1, m.conversation_id).bind(2, m.seq).bind(3, m.created_at).run();
    db.prepare(kSetRead).bind(1, m.conversation_id).bind(2, m.sender_id).bind(3, m.seq).run();
  }
}

std::vector<detail::LoggedMessage> SqliteStore::logged_runs() const {
  auto logged = logs_[1 - active_]->committed();
  auto current = log_->committed();
  logged.insert(logged.end(), std::make_move_iterator(current.begin()),
                std::make_move_iterator(current.end()));
  return logged;
}

void SqliteStore::forget_appends() {
  flush_appends();
  appends_.clear();
}

void SqliteStore::discard_appends() noexcept {
  appends_.clear();
  appends_pending_ = false;
  held_cache_valid_ = false;
}

CreateUserResult SqliteStore::create_user(const NewUser& user, TimeMs now) {
  flush_appends();
  Db& db = *writer_;
  const auto username_folded = domain::fold_case(user.username);
  const auto email_folded = domain::fold_case(user.email);
  if (db.prepare(kFindUsername).bind(1, username_folded).step())
    return {CreateUserOutcome::username_taken, {}};
  if (db.prepare(kFindEmail).bind(1, email_folded).step()) return {CreateUserOutcome::email_taken, {}};
  const std::string display = user.display_name.empty() ? user.username : user.display_name;
  db.prepare(kInsertUser)
      .bind(1, user.username)
      .bind(2, username_folded)
      .bind(3, user.email)
      .bind(4, email_folded)
      .bind(5, user.password_hash)
      .bind(6, display)
      .bind(7, domain::fold_case(display))
      .bind(8, now)
      .run();
  const auto id = sqlite3_last_insert_rowid(db.handle());
  return {CreateUserOutcome::created, *select_user(db, id)};
}

SessionIds SqliteStore::create_session(const NewSession& session, TimeMs now) {
  flush_appends();
  Db& db = *writer_;
  db.prepare(kInsertDevice)
      .bind(1, session.user_id)
      .bind(2, domain::to_string(session.device_type))
      .bind(3, session.device_name)
      .bind(4, now)
      .run();
  const auto device_id = sqlite3_last_insert_rowid(db.handle());
  db.prepare(kInsertSession)
      .bind(1, session.user_id)
      .bind(2, device_id)
      .bind_blob(3, session.access_hash)
      .bind(4, session.access_expires_at)
      .bind_blob(5, session.refresh_hash)
      .bind(6, session.refresh_expires_at)
      .bind(7, now)
      .run();
  return {sqlite3_last_insert_rowid(db.handle()), device_id};
}

RotateResult SqliteStore::rotate_refresh(const RotateRequest& request, TimeMs now) {
  flush_appends();
  Db& db = *writer_;
  {
    auto s = db.prepare(kFindRefresh);
    s.bind_blob(1, request.old_refresh_hash);
    if (s.step()) {
      const SessionId id = s.int64(0);
      const domain::AuthContext auth{s.int64(1), id, s.int64(2)};
      const bool live = s.is_null(4) && s.int64(3) > now;
      if (!live) return {RotateOutcome::not_found, {}};
      db.prepare(kRetireRefresh).bind(1, id).run();
      db.prepare(kRotate)
          .bind(1, id)
          .bind_blob(2, request.refresh_hash)
          .bind(3, request.refresh_expires_at)
          .bind_blob(4, request.access_hash)
          .bind(5, request.access_expires_at)
          .run();
      db.prepare(kTouchDevice).bind(1, id).bind(2, now).run();
      return {RotateOutcome::rotated, auth};
    }
  }
  auto prev = db.prepare(kFindPrevRefresh);
  prev.bind_blob(1, request.old_refresh_hash);
  if (prev.step()) {
    const SessionId id = prev.int64(0);
    const UserId user = prev.int64(1);
    db.prepare(kRevoke).bind(1, id).bind(2, now).run();
    return {RotateOutcome::reused, {user, id, 0}};
  }
  return {RotateOutcome::not_found, {}};
}

bool SqliteStore::revoke_session(SessionId session, TimeMs now) {
  flush_appends();
  writer_->prepare(kRevoke).bind(1, session).bind(2, now).run();
  return writer_->changes() > 0;
}

std::vector<SessionId> SqliteStore::revoke_device(UserId user, DeviceId device, TimeMs now) {
  flush_appends();
  std::vector<SessionId> ids;
  {
    auto s = writer_->prepare(kDeviceSessions);
    s.bind(1, user).bind(2, device);
    while (s.step()) ids.push_back(s.int64(0));
  }
  for (auto id : ids) writer_->prepare(kRevoke).bind(1, id).bind(2, now).run();
  return ids;
}

std::vector<DeviceSession> SqliteStore::list_devices(UserId user, TimeMs now) {
  auto db = lease();
  auto s = (*db).prepare(kListDevices);
  s.bind(1, user).bind(2, now);
  std::vector<DeviceSession> out;
  while (s.step()) {
    out.push_back(DeviceSession{s.int64(0), s.int64(1),
                                domain::parse_device_type(s.text(2)).value_or(domain::DeviceType::web),
                                s.text(3), s.int64(4), s.int64(5)});
  }
  return out;
}

std::optional<domain::User> SqliteStore::update_profile(UserId user, const ProfileUpdate& update) {
  flush_appends();
  Db& db = *writer_;
  std::optional<std::string> display_folded;
  if (update.display_name) display_folded = domain::fold_case(*update.display_name);
  db.prepare(kUpdateProfile)
      .bind(1, user)
      .bind_optional(2, update.display_name)
      .bind_optional(3, display_folded)
      .bind_optional(4, update.profile_picture)
      .bind_optional(5, update.bio)
      .run();
  return select_user(db, user);
}

void SqliteStore::set_last_seen(UserId user, TimeMs when) {
  flush_appends();
  writer_->prepare(kSetLastSeen).bind(1, user).bind(2, when).run();
}

OpenDirectResult SqliteStore::open_direct(UserId self, UserId other, TimeMs now) {
  forget_appends();
  Db& db = *writer_;
  if (!db.prepare(kUserExists).bind(1, other).step()) return {OpenDirectOutcome::user_not_found, 0};
  const std::string key = std::to_string(std::min(self, other)) + ":" + std::to_string(std::max(self, other));
  {
    auto s = db.prepare(kFindDirect);
    s.bind(1, key);
    if (s.step()) return {OpenDirectOutcome::existing, s.int64(0)};
  }
  db.prepare(kInsertConversation).bind(1, "direct").bind(2, "").bind(3, key).bind(4, self).bind(5, now).run();
  const auto id = sqlite3_last_insert_rowid(db.handle());
  db.prepare(kInsertParticipant).bind(1, id).bind(2, self).bind(3, "member").bind(4, now).bind(5, 0).run();
  if (other != self) {
    db.prepare(kInsertParticipant).bind(1, id).bind(2, other).bind(3, "member").bind(4, now).bind(5, 0).run();
  }
  return {OpenDirectOutcome::created, id};
}

namespace {
// The key of a send's (sender, client_msg_id) in txn_keys_ / publishing_keys_. A collision only
// sends an append the slow way (it waits for the publish), so a 64-bit hash is enough.
std::uint64_t client_key(const NewMessage& message) {
  return std::hash<std::string_view>{}(message.client_msg_id) ^
         (static_cast<std::uint64_t>(message.sender_id) * 0x9E3779B97F4A7C15ULL);
}
}  // namespace

std::optional<AppendResult> SqliteStore::append_from_log(const NewMessage& message,
                                                         MessageId id,
                                                         TimeMs now) {
  if (message.reply_to) return std::nullopt;  // the target may be anywhere, published or not
  auto found = appends_.find(message.conversation_id);
  if (found == appends_.end()) return std::nullopt;
  AppendState& state = found->second;
  // A refusal waits for the database too: it answers a retry of a stored message first.
  if (!std::binary_search(state.members.begin(), state.members.end(), message.sender_id)) return std::nullopt;
  const auto key = client_key(message);
  if (txn_keys_.contains(key) || publishing_keys_.contains(key)) return std::nullopt;
  // Not among the sends SQLite cannot show yet: a retry of a committed one is answered from there.
  // One read transaction per batch (end_probe) instead of one per lookup.
  if (!probe_open_) {
    probe_->prepare(kBeginRead).run();
    probe_open_ = true;
  }
  if (auto earlier = earlier_use(*probe_, message)) return earlier;
  const Seq seq = state.last_seq + 1;
  log_->add(id, message.conversation_id, seq, message.sender_id, now, std::nullopt, message.client_msg_id,
            message.body);
  detail::LoggedMessage held;
  held.id = id;
  held.conversation_id = message.conversation_id;
  held.seq = seq;
  held.sender_id = message.sender_id;
  held.created_at = now;
  held.client_msg_id = message.client_msg_id;
  held.body = message.body;
  held_.push_back(std::move(held));
  held_total_.fetch_add(1, std::memory_order_relaxed);
  txn_keys_.insert(key);
  return appended(message, id, seq, now, state);
}

AppendResult SqliteStore::append_message(const NewMessage& message, MessageId id, TimeMs now) {
  if (publishing_) {
    if (auto result = append_from_log(message, id, now)) return std::move(*result);
    end_publish(true);
  }
  // A reply may name a held send (ids only grow: one at or after the first not inserted), and a
  // retry of one would not meet its row: all in first.
  if (draining_ && ((message.reply_to && *message.reply_to >= held_[held_next_].id) ||
                    txn_keys_.contains(client_key(message))))
    drain_all();
  Db& db = *writer_;
  // A retried client_msg_id is found by the INSERT below (one index lookup instead of two), or by
  // refuse() when the append is refused before it.
  //
  // The members (the fan-out list) and last_seq, read at the conversation's first append of the
  // batch; later appends of the batch take them from appends_ (see flush_appends).
  auto found = appends_.find(message.conversation_id);
  if (found == appends_.end()) {
    AppendState state;
    {
      auto s = db.prepare(kAppendMembers);
      s.bind(1, message.conversation_id);
      while (s.step()) {
        state.members.push_back(s.int64(0));
        state.joined_seqs.push_back(s.int64(1));
      }
    }
    if (state.members.empty()) return refuse(db, message, AppendOutcome::not_found);
    {
      auto s = db.prepare(detail::kLastSeq);
      s.bind(1, message.conversation_id);
      if (!s.step()) return refuse(db, message, AppendOutcome::not_found);
      state.last_seq = s.int64(0);
    }
    found = appends_.emplace(message.conversation_id, std::move(state)).first;
  }
  AppendState& state = found->second;
  const auto member = std::lower_bound(state.members.begin(), state.members.end(), message.sender_id);
  if (member == state.members.end() || *member != message.sender_id)
    return refuse(db, message, AppendOutcome::not_found);
  const Seq joined_seq = state.joined_seqs[static_cast<std::size_t>(member - state.members.begin())];
  if (message.reply_to) {
    bool visible = false;
    {
      auto s = db.prepare(kMessageById);
      s.bind(1, *message.reply_to);
      if (s.step()) {
        const auto target = read_message(s);
        visible = target.conversation_id == message.conversation_id && target.type == "text" &&
                  target.seq > joined_seq;
      }
    }
    if (!visible) return refuse(db, message, AppendOutcome::bad_reply);
  }
  const Seq seq = state.last_seq + 1;
  auto insert = db.prepare(kInsertMessage);
  insert.bind(1, id)
      .bind(2, message.conversation_id)
      .bind(3, seq)
      .bind(4, message.sender_id)
      .bind_unowned(5, message.client_msg_id)
      .bind_unowned(6, message.body)
      .bind(7, now);
  if (message.reply_to) {
    insert.bind(8, *message.reply_to);
  } else {
    insert.bind_null(8);
  }
  insert.run();
  if (db.changes() == 0) {
    if (auto earlier = earlier_use(db, message)) return std::move(*earlier);
    // Only (sender_id, client_msg_id) may collide: an id or (conversation_id, seq) taken is a bug.
    throw StoreError("append_message: the message row was refused");
  }
  if (log_) {
    log_->add(id, message.conversation_id, seq, message.sender_id, now, message.reply_to,
              message.client_msg_id, message.body);
    txn_keys_.insert(client_key(message));
  }
  return appended(message, id, seq, now, state);
}

// The bookkeeping of an append that is in (the transaction, or held), and its answer.
AppendResult SqliteStore::appended(
    const NewMessage& message, MessageId id, Seq seq, TimeMs now, AppendState& state) {
  // Taken only once the message is in: an append that throws leaves no seq behind.
  state.last_seq = seq;
  state.last_activity_at = now;
  state.dirty = true;
  // The sender has read everything up to their own message.
  auto marker = std::find_if(state.read_markers.begin(), state.read_markers.end(),
                             [&](const auto& m) { return m.first == message.sender_id; });
  if (marker == state.read_markers.end()) {
    state.read_markers.emplace_back(message.sender_id, seq);
  } else {
    marker->second = seq;
  }
  appends_pending_ = true;
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
  result.members = state.members;
  return result;
}

ReadResult SqliteStore::mark_read(UserId viewer, MessageId message, TimeMs now) {
  flush_appends();
  ConversationId conversation = 0;
  Seq seq = 0;
  {
    auto s = writer_->prepare(kMessageById);
    s.bind(1, message);
    if (!s.step()) return {};
    conversation = s.int64(1);
    seq = s.int64(2);
  }
  return mark_read_seq(viewer, conversation, seq, now);
}

ReadResult SqliteStore::mark_read_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs /*now*/) {
  return move_watermark(viewer, conversation, seq, /*read=*/true);
}

ReadResult SqliteStore::mark_delivered_seq(UserId viewer,
                                           ConversationId conversation,
                                           Seq seq,
                                           TimeMs /*now*/) {
  return move_watermark(viewer, conversation, seq, /*read=*/false);
}

// Watermarks only move up, never past the log's end; read implies delivered.
ReadResult SqliteStore::move_watermark(UserId viewer, ConversationId conversation, Seq seq, bool read) {
  flush_appends();
  Db& db = *writer_;
  const auto member = detail::membership(db, conversation, viewer);
  if (!member) return {};
  Seq last_seq = 0;
  {
    auto s = db.prepare(kConversationRow);
    s.bind(1, conversation);
    if (!s.step()) return {};
    last_seq = s.int64(4);
  }
  const Seq target = std::min(seq, last_seq);
  ReadResult result;
  result.conversation_id = conversation;
  result.read_seq = member->read_seq;
  result.delivered_seq = member->delivered_seq;
  const Seq current = read ? member->read_seq : member->delivered_seq;
  if (target <= current) {
    result.outcome = ReadOutcome::unchanged;
    return result;
  }
  db.prepare(read ? kSetRead : kSetDelivered).bind(1, conversation).bind(2, viewer).bind(3, target).run();
  result.outcome = ReadOutcome::updated;
  if (read) result.read_seq = target;
  result.delivered_seq = std::max(result.delivered_seq, target);
  result.members = member_ids(db, conversation);
  return result;
}

std::vector<UserId> SqliteStore::member_ids(Db& db, ConversationId id) {
  std::vector<UserId> ids;
  auto s = db.prepare(kMemberIds);
  s.bind(1, id);
  while (s.step()) ids.push_back(s.int64(0));
  return ids;
}

std::optional<Credentials> SqliteStore::find_credentials(std::string_view login_folded) {
  auto db = lease();
  auto s = (*db).prepare(kCredentials);
  s.bind(1, login_folded);
  if (!s.step()) return std::nullopt;
  return Credentials{s.int64(0), s.text(1)};
}

std::optional<domain::AuthContext> SqliteStore::find_access(std::string_view access_hash, TimeMs now) {
  auto db = lease();
  auto s = (*db).prepare(kFindAccess);
  s.bind_blob(1, access_hash).bind(2, now);
  if (!s.step()) return std::nullopt;
  return domain::AuthContext{s.int64(1), s.int64(0), s.int64(2), s.int64(3)};
}

std::optional<domain::User> SqliteStore::find_user(UserId user) {
  auto db = lease();
  return select_user(*db, user);
}

std::vector<domain::User> SqliteStore::search_users(std::string_view prefix_folded, int limit) {
  auto db = lease();
  auto s = (*db).prepare(kSearchUsers);
  s.bind(1, prefix_folded).bind(2, prefix_upper_bound(prefix_folded)).bind(3, limit);
  std::vector<domain::User> users;
  while (s.step()) users.push_back(read_user(s));
  return users;
}

std::optional<domain::Conversation> SqliteStore::load_conversation(Db& db, UserId viewer, ConversationId id) {
  domain::Conversation c;
  const auto member = detail::membership(db, id, viewer);
  if (!member) return std::nullopt;
  c.read_seq = member->read_seq;
  c.delivered_seq = member->delivered_seq;
  {
    auto s = db.prepare(kConversationRow);
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    c.id = s.int64(0);
    c.type = s.text(1) == "group" ? domain::ConversationType::group : domain::ConversationType::direct;
    c.name = s.text(2);
    c.created_at = s.int64(3);
    c.last_seq = s.int64(4);
  }
  {
    auto s = db.prepare(kMembers);
    s.bind(1, id);
    while (s.step()) {
      c.members.push_back(
          domain::Member{s.int64(0), s.text(1), s.text(2),
                         domain::parse_member_role(s.text(3)).value_or(domain::MemberRole::member),
                         s.int64(4), s.int64(5), s.int64(6)});
    }
  }
  {
    auto s = db.prepare(kLastMessage);
    s.bind(1, id).bind(2, member->joined_seq);
    if (s.step()) c.last_message = read_message(s);
    if (c.last_message) detail::load_reactions(db, *c.last_message);
  }
  {
    auto s = db.prepare(kUnread);
    s.bind(1, id).bind(2, std::max(c.read_seq, member->joined_seq)).bind(3, viewer);
    if (s.step()) c.unread_count = s.int64(0);
  }
  return c;
}

std::vector<domain::Conversation> SqliteStore::list_conversations(UserId viewer) {
  auto db = lease();
  std::vector<ConversationId> ids;
  {
    auto s = (*db).prepare(kConversationsOf);
    s.bind(1, viewer);
    while (s.step()) ids.push_back(s.int64(0));
  }
  // One read transaction, so the list is one consistent snapshot.
  (*db).exec("BEGIN");
  std::vector<domain::Conversation> out;
  try {
    for (auto id : ids) {
      if (auto c = load_conversation(*db, viewer, id)) out.push_back(std::move(*c));
    }
  } catch (...) {
    (*db).exec("ROLLBACK");
    throw;
  }
  (*db).exec("COMMIT");
  return out;
}

std::optional<domain::Conversation> SqliteStore::get_conversation(UserId viewer, ConversationId id) {
  auto db = lease();
  const detail::ReadTransaction snapshot(*db);
  return load_conversation(*db, viewer, id);
}

std::optional<HistoryPage> SqliteStore::history(UserId viewer, ConversationId id, const HistoryQuery& query) {
  auto db = lease();
  const detail::ReadTransaction snapshot(*db);
  const auto member = detail::membership(*db, id, viewer);
  if (!member) return std::nullopt;
  const std::string_view sql = query.after ? kHistoryAfter : query.before ? kHistoryBefore : kHistoryLatest;
  auto s = (*db).prepare(sql);
  s.bind(1, id).bind(2, query.limit + 1).bind(4, member->joined_seq);
  if (query.after) s.bind(3, *query.after);
  if (query.before) s.bind(3, *query.before);
  HistoryPage page;
  while (s.step()) page.messages.push_back(read_message(s));
  if (page.messages.size() > static_cast<std::size_t>(query.limit)) {
    page.has_more = true;
    page.messages.pop_back();
  }
  if (!query.after) std::reverse(page.messages.begin(), page.messages.end());
  detail::load_reactions(*db, page.messages);
  return page;
}

MessageId SqliteStore::max_message_id() {
  auto db = lease();
  auto s = (*db).prepare(kMaxMessageId);
  s.step();
  return s.int64(0);
}

bool SqliteStore::healthy() {
  try {
    auto db = lease();
    return (*db).prepare(kHealth).step();
  } catch (const StoreError&) {
    return false;
  }
}

}  // namespace chat::store::sqlite

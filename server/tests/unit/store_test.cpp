// SqliteStore against a real database file in a fresh temporary directory (no mocks: the point is
// the SQL). Writes run inside begin_batch/begin_job ... end_job/commit_batch, as on the writer thread.

#include "store/errors.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_builders.hpp"
#include "test_util.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <gtest/gtest.h>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace chat::store;  // NOLINT(google-build-using-namespace): the test reads like the contract
using chat::domain::ConversationId;
using chat::domain::MessageId;
using chat::domain::UserId;
using chat::store::sqlite::SqliteStore;
using chat::test::cat;

constexpr TimeMs kT0 = 1'750'000'000'000;

// Runs `fn` as one job of one batch, as StoreService's writer thread does, and commits.
template <class Fn>
auto in_job(Store& store, Fn&& fn) {
  store.begin_batch();
  store.begin_job();
  try {
    auto result = fn();
    store.end_job();
    store.commit_batch();
    return result;
  } catch (...) {
    store.rollback_job();
    store.rollback_batch();
    throw;
  }
}

// Reads PRAGMA user_version with a connection of our own.
int user_version(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr);
  sqlite3_step(stmt);
  const int version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return version;
}

void set_user_version(const std::string& path, int version) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string sql = cat("PRAGMA user_version = ", std::to_string(version));
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open() { store_ = std::make_unique<SqliteStore>(SqliteStore::Options{path(), 2}); }
  // Reopens the database with the checkpointer woken at `frames` WAL frames (checkpoint tests).
  SqliteStore& reopen_checkpointing_at(int frames) {
    close();
    store_ = std::make_unique<SqliteStore>(SqliteStore::Options{path(), 2, frames});
    return *store_;
  }
  void close() { store_.reset(); }
  std::string path() const { return dir_.path() + "/chatd.db"; }
  Store& store() { return *store_; }

  UserId add_user(const std::string& name, const std::string& display = {}) {
    auto r = in_job(store(), [&] {
      return store().create_user(
          chat::test::new_user(name, cat(name, "@example.com"), cat("hash-", name), display), kT0);
    });
    EXPECT_EQ(r.outcome, CreateUserOutcome::created) << name;
    return r.user.id;
  }

  ConversationId direct(UserId a, UserId b, TimeMs now = kT0) {
    return in_job(store(), [&] { return store().open_direct(a, b, now); }).conversation_id;
  }

  // `count` sends "m0", "m1", ... from `sender`, each its own batch (one fsync'd commit each).
  void append_many(ConversationId c, UserId sender, int count) {
    for (int i = 0; i < count; ++i)
      ASSERT_EQ(append(c, sender, cat("m", std::to_string(i))).outcome, AppendOutcome::appended);
  }

  AppendResult append(ConversationId c, UserId sender, const std::string& client_id, TimeMs now = kT0) {
    ++next_id_;
    return in_job(store(), [&] {
      return store().append_message(chat::test::new_message(c, sender, client_id, cat("body ", client_id)),
                                    next_id_, now);
    });
  }

  SessionIds add_session(UserId user, const std::string& access, const std::string& refresh) {
    return in_job(store(), [&] {
      return store().create_session(
          chat::test::new_session(user, access, kT0 + 3'600'000, refresh, kT0 + 86'400'000), kT0);
    });
  }

  RotateResult rotate(const std::string& old_refresh,
                      const std::string& access,
                      const std::string& refresh,
                      TimeMs now = kT0 + 1000) {
    return in_job(store(), [&] {
      return store().rotate_refresh(
          chat::test::rotate_request(old_refresh, access, now + 3'600'000, refresh, now + 86'400'000), now);
    });
  }

  chat::test::TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
  MessageId next_id_ = 1000;
};

// ---------------------------------------------------------------------------------------------
// WAL checkpoints

TEST_F(SqliteStoreTest, WalIsCheckpointedInTheBackgroundAndStaysBounded) {
  // Goal: commits no longer checkpoint inline (the checkpointer thread copies the WAL back), the
  // WAL restarts instead of growing, and nothing written is lost. Method: a store with a 50-frame
  // threshold; 400 sends, each its own fsync'd commit (~2000 WAL frames without checkpoints);
  // the checkpointer must have run, the WAL file must stay far below 2000 frames, and after a
  // reopen every message is in history, in order.
  auto& sqlite_store = reopen_checkpointing_at(50);
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  append_many(ab, a, 400);
  for (int i = 0; i < 500 && sqlite_store.background_checkpoints() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GT(sqlite_store.background_checkpoints(), 0U);
  const auto wal_frames = std::filesystem::file_size(path() + "-wal") / (4096 + 24);
  EXPECT_LT(wal_frames, 600U) << "the WAL grows: it is not restarted after checkpoints";
  close();
  open();
  const auto page = store().history(b, ab, chat::test::history_query(std::nullopt, std::nullopt, 100));
  ASSERT_TRUE(page);
  ASSERT_EQ(page->messages.size(), 100U);
  EXPECT_EQ(page->messages.front().seq, 301);  // the latest page, oldest first
  EXPECT_EQ(page->messages.back().body, "body m399");
  EXPECT_EQ(page->messages.back().seq, 400);
}

TEST_F(SqliteStoreTest, WriterFinishesABackgroundPassSoTheWalRestartsUnderConstantWrites) {
  // Goal: with commits arriving while a background pass runs, the pass always falls a few frames
  // short and the WAL never restarted on its own (only the writer's inline checkpoint at
  // frames_max, 200 frames here, restarted it); the writer now copies those last frames itself (at
  // most `finish_gap`, 16 here), so the WAL restarts before it reaches frames_max and nothing is
  // lost. Method: a 50-frame threshold; 1500 sends back to back from this thread (each its own
  // fsync'd commit, ~4 frames, ~6000 in all, so passes overlap commits). The writer must have
  // finished passes, and they (not the inline checkpoints at 200 frames, 43 of which restarted the
  // WAL before) must be what restarts it: fewer inline checkpoints than finished passes. Measured:
  // ~115 finished, 0 inline, also with two busy loops on this 2-core machine. The WAL file's size
  // is only bounded loosely (2x frames_max): how far past 200 frames it gets while an inline
  // checkpoint waits for a background pass depends on scheduling (220 seen in a loaded CI run).
  // Every message must be in history, in order, after a reopen.
  auto& sqlite_store = reopen_checkpointing_at(50);
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  append_many(ab, a, 1500);
  EXPECT_GT(sqlite_store.finished_checkpoints(), 0U);
  EXPECT_LT(sqlite_store.inline_checkpoints(), sqlite_store.finished_checkpoints());
  const auto wal_frames = std::filesystem::file_size(path() + "-wal") / (4096 + 24);
  EXPECT_LT(wal_frames, 400U);
  close();
  open();
  const auto page = store().history(b, ab, chat::test::history_query(std::nullopt, std::nullopt, 100));
  ASSERT_TRUE(page);
  ASSERT_EQ(page->messages.size(), 100U);
  EXPECT_EQ(page->messages.front().seq, 1401);
  EXPECT_EQ(page->messages.back().body, "body m1499");
  EXPECT_EQ(page->messages.back().seq, 1500);
}

TEST_F(SqliteStoreTest, BackgroundCheckpointsWaitForNewFrames) {
  // Goal: the checkpointer runs once per `checkpoint_frames / 4` new WAL frames, not after every
  // commit above the threshold (with a reader holding an old snapshot, that retried at every commit
  // what it could not copy). Method: a 50-frame threshold; another connection holds a read
  // transaction open, so no checkpoint can copy past its snapshot and the WAL never restarts; 300
  // sends of one commit each (~3 frames). Between 50 frames and the writer's own checkpoints at
  // 200 (4x), the background checkpointer may run about 150 / 12 times (it ran after nearly every
  // one of those ~50 commits: 30 measured).
  auto& sqlite_store = reopen_checkpointing_at(50);
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM users;", nullptr, nullptr, nullptr), SQLITE_OK);
  append_many(ab, a, 300);
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  EXPECT_GT(sqlite_store.background_checkpoints(), 0U);
  EXPECT_LE(sqlite_store.background_checkpoints(), 15U);
}

// ---------------------------------------------------------------------------------------------
// Schema

TEST_F(SqliteStoreTest, MigrationsCreateSchemaAndReopenIsIdempotent) {
  // Goal: a new file is migrated to schema_version(), and opening it again neither fails nor
  // re-runs migrations. Method: read PRAGMA user_version after each open; data stays.
  EXPECT_GE(SqliteStore::schema_version(), 1);
  add_user("alice");
  close();
  EXPECT_EQ(user_version(path()), SqliteStore::schema_version());
  open();
  close();
  open();
  EXPECT_EQ(user_version(path()), SqliteStore::schema_version());
  EXPECT_TRUE(store().healthy());
  EXPECT_TRUE(store().find_credentials("alice"));
}

TEST_F(SqliteStoreTest, FutureSchemaVersionIsRefused) {
  // Goal: a database written by a newer chatd is not touched. Method: set user_version to
  // schema_version() + 1 and reopen: StoreCorrupt.
  close();
  set_user_version(path(), SqliteStore::schema_version() + 1);
  EXPECT_THROW(open(), StoreCorrupt);
  // At N (the current version) it opens.
  set_user_version(path(), SqliteStore::schema_version());
  EXPECT_NO_THROW(open());
}

// ---------------------------------------------------------------------------------------------
// Users and credentials

TEST_F(SqliteStoreTest, UsernameAndEmailAreUniqueCaseInsensitively) {
  // Goal: create_user reports username_taken / email_taken for case variants. Method: register
  // Alice, then try the same name and the same email in other cases.
  auto first = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("Alice", "Alice@Example.com", "h", ""), kT0);
  });
  ASSERT_EQ(first.outcome, CreateUserOutcome::created);
  EXPECT_GT(first.user.id, 0);
  EXPECT_EQ(first.user.username, "Alice");
  EXPECT_EQ(first.user.email, "Alice@Example.com");
  EXPECT_EQ(first.user.display_name, "Alice");  // defaults to the username
  EXPECT_EQ(first.user.created_at, kT0);
  EXPECT_FALSE(first.user.last_seen);

  auto same_name = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("aLICE", "other@example.com", "h", ""), kT0);
  });
  EXPECT_EQ(same_name.outcome, CreateUserOutcome::username_taken);
  auto same_email = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("bob", "ALICE@example.COM", "h", ""), kT0);
  });
  EXPECT_EQ(same_email.outcome, CreateUserOutcome::email_taken);
  auto other = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("bob", "bob@example.com", "h", "Bobby"), kT0);
  });
  EXPECT_EQ(other.outcome, CreateUserOutcome::created);
  EXPECT_EQ(other.user.display_name, "Bobby");
  EXPECT_NE(other.user.id, first.user.id);
}

TEST_F(SqliteStoreTest, FindCredentialsByFoldedUsernameOrEmail) {
  // Goal: login works by username or email, both folded. Method: create a mixed-case user and look
  // it up by the folded forms; an unknown login is nullopt.
  auto created = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("Carol", "Carol@Example.com", "argon-hash", ""), kT0);
  });
  const auto by_name = store().find_credentials("carol");
  ASSERT_TRUE(by_name);
  EXPECT_EQ(by_name->user_id, created.user.id);
  EXPECT_EQ(by_name->password_hash, "argon-hash");
  const auto by_email = store().find_credentials("carol@example.com");
  ASSERT_TRUE(by_email);
  EXPECT_EQ(by_email->user_id, created.user.id);
  EXPECT_FALSE(store().find_credentials("dave"));
  EXPECT_FALSE(store().find_credentials(""));
  const auto user = store().find_user(created.user.id);
  ASSERT_TRUE(user);
  EXPECT_EQ(user->username, "Carol");
  EXPECT_FALSE(store().find_user(created.user.id + 100));
}

TEST_F(SqliteStoreTest, SearchUsersByPrefixOfUsernameOrDisplayName) {
  // Goal: search is a case-insensitive prefix match on username and display name, limited. Method:
  // four users, several folded prefixes.
  const auto alice = add_user("alice", "Wonder Alice");
  const auto alina = add_user("Alina");
  const auto bob = add_user("bob", "Alpha Bob");
  add_user("carl", "Carl");
  const auto ids = [](const std::vector<chat::domain::User>& users) {
    std::vector<UserId> out;
    for (const auto& u : users) out.push_back(u.id);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(ids(store().search_users("al", 20)), (std::vector<UserId>{alice, alina, bob}));
  EXPECT_EQ(ids(store().search_users("ali", 20)), (std::vector<UserId>{alice, alina}));
  EXPECT_EQ(ids(store().search_users("wonder", 20)), (std::vector<UserId>{alice}));
  EXPECT_EQ(ids(store().search_users("alpha b", 20)), (std::vector<UserId>{bob}));
  EXPECT_TRUE(store().search_users("zed", 20).empty());
  EXPECT_EQ(store().search_users("al", 2).size(), 2U);
  EXPECT_EQ(store().search_users("al", 1).size(), 1U);
}

// ---------------------------------------------------------------------------------------------
// Sessions

TEST_F(SqliteStoreTest, FindAccessHonoursExpiryAndRevocation) {
  // Goal: an access hash maps to its session until it expires or the session is revoked. Method:
  // look up at, just before and at the expiry time; then revoke.
  const auto user = add_user("alice");
  const auto ids = add_session(user, "access-1", "refresh-1");
  EXPECT_GT(ids.session_id, 0);
  EXPECT_GT(ids.device_id, 0);
  const auto auth = store().find_access("access-1", kT0);
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->user_id, user);
  EXPECT_EQ(auth->session_id, ids.session_id);
  EXPECT_EQ(auth->device_id, ids.device_id);
  EXPECT_TRUE(store().find_access("access-1", kT0 + 3'600'000 - 1));
  EXPECT_FALSE(store().find_access("access-1", kT0 + 3'600'000));  // expired
  EXPECT_FALSE(store().find_access("refresh-1", kT0));             // a refresh token is not an access one
  EXPECT_FALSE(store().find_access("unknown", kT0));

  EXPECT_TRUE(in_job(store(), [&] { return store().revoke_session(ids.session_id, kT0); }));
  EXPECT_FALSE(store().find_access("access-1", kT0));
  // Revoking twice reports that nothing changed.
  EXPECT_FALSE(in_job(store(), [&] { return store().revoke_session(ids.session_id, kT0); }));
  EXPECT_FALSE(in_job(store(), [&] { return store().revoke_session(ids.session_id + 99, kT0); }));
}

TEST_F(SqliteStoreTest, RotateRefreshIssuesNewTokensAndDetectsReuse) {
  // Goal: rotation replaces both tokens; presenting the old refresh token again revokes the session.
  // Method: rotate r1 -> r2, check the tokens, replay r1, then try r2.
  const auto user = add_user("alice");
  const auto ids = add_session(user, "a1", "r1");
  const auto rotated = rotate("r1", "a2", "r2");
  ASSERT_EQ(rotated.outcome, RotateOutcome::rotated);
  EXPECT_EQ(rotated.auth.user_id, user);
  EXPECT_EQ(rotated.auth.session_id, ids.session_id);
  EXPECT_EQ(rotated.auth.device_id, ids.device_id);
  EXPECT_FALSE(store().find_access("a1", kT0 + 2000));  // old access token stops working
  EXPECT_TRUE(store().find_access("a2", kT0 + 2000));

  // Replaying r1: theft detected, the whole session is revoked.
  const auto replay = rotate("r1", "a3", "r3");
  EXPECT_EQ(replay.outcome, RotateOutcome::reused);
  EXPECT_EQ(replay.auth.session_id, ids.session_id);
  EXPECT_EQ(replay.auth.user_id, user);
  EXPECT_FALSE(store().find_access("a2", kT0 + 2000));
  EXPECT_EQ(rotate("r2", "a4", "r4").outcome, RotateOutcome::not_found);
}

TEST_F(SqliteStoreTest, RotateRefreshUnknownOrExpired) {
  // Goal: an unknown refresh token and an expired one are not_found. Method: rotate a random token,
  // and a real one at and just before its expiry (kT0 + 1 day).
  const auto user = add_user("alice");
  add_session(user, "a1", "r1");
  EXPECT_EQ(rotate("nope", "x", "y").outcome, RotateOutcome::not_found);
  EXPECT_EQ(rotate("r1", "a2", "r2", kT0 + 86'400'000).outcome, RotateOutcome::not_found);
  EXPECT_EQ(rotate("r1", "a2", "r2", kT0 + 86'400'000 - 1).outcome, RotateOutcome::rotated);
}

TEST_F(SqliteStoreTest, RotateRefreshDetectsReuseOfAnyEarlierToken) {
  // Goal: the spec says presenting ANY already-rotated refresh token revokes the session. Method:
  // rotate r1 -> r2 -> r3, then replay r1 (two rotations old).
  const auto user = add_user("alice");
  add_session(user, "a1", "r1");
  ASSERT_EQ(rotate("r1", "a2", "r2").outcome, RotateOutcome::rotated);
  ASSERT_EQ(rotate("r2", "a3", "r3").outcome, RotateOutcome::rotated);
  EXPECT_EQ(rotate("r1", "a4", "r4").outcome, RotateOutcome::reused);
  EXPECT_FALSE(store().find_access("a3", kT0 + 2000));
}

// ---------------------------------------------------------------------------------------------
// Conversations

TEST_F(SqliteStoreTest, OpenDirectIsOnePerPair) {
  // Goal: one direct conversation per unordered pair; unknown users are refused; a self conversation
  // has one member. Method: open (a,b), (a,b), (b,a), (a,unknown), (a,a).
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto created = in_job(store(), [&] { return store().open_direct(a, b, kT0); });
  ASSERT_EQ(created.outcome, OpenDirectOutcome::created);
  const auto again = in_job(store(), [&] { return store().open_direct(a, b, kT0 + 1); });
  EXPECT_EQ(again.outcome, OpenDirectOutcome::existing);
  EXPECT_EQ(again.conversation_id, created.conversation_id);
  const auto reverse = in_job(store(), [&] { return store().open_direct(b, a, kT0 + 2); });
  EXPECT_EQ(reverse.outcome, OpenDirectOutcome::existing);
  EXPECT_EQ(reverse.conversation_id, created.conversation_id);
  const auto unknown = in_job(store(), [&] { return store().open_direct(a, b + 1000, kT0); });
  EXPECT_EQ(unknown.outcome, OpenDirectOutcome::user_not_found);

  const auto conv = store().get_conversation(a, created.conversation_id);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->type, chat::domain::ConversationType::direct);
  EXPECT_EQ(conv->members.size(), 2U);
  EXPECT_EQ(conv->last_seq, 0);
  EXPECT_FALSE(conv->last_message);
  EXPECT_EQ(conv->created_at, kT0);

  const auto self = in_job(store(), [&] { return store().open_direct(a, a, kT0); });
  ASSERT_EQ(self.outcome, OpenDirectOutcome::created);
  EXPECT_NE(self.conversation_id, created.conversation_id);
  const auto notes = store().get_conversation(a, self.conversation_id);
  ASSERT_TRUE(notes);
  ASSERT_EQ(notes->members.size(), 1U);
  EXPECT_EQ(notes->members[0].user_id, a);
  EXPECT_EQ(notes->members[0].username, "alice");
  EXPECT_EQ(in_job(store(), [&] { return store().open_direct(a, a, kT0); }).outcome,
            OpenDirectOutcome::existing);
}

TEST_F(SqliteStoreTest, GetConversationHidesItFromNonMembers) {
  // Goal: a non-member cannot tell a conversation exists. Method: get it as a third user, and an
  // unknown id as a member.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto conv = direct(a, b);
  EXPECT_TRUE(store().get_conversation(b, conv));
  EXPECT_FALSE(store().get_conversation(c, conv));
  EXPECT_FALSE(store().get_conversation(a, conv + 1000));
  EXPECT_FALSE(store().history(c, conv, HistoryQuery{}));
}

// ---------------------------------------------------------------------------------------------
// Messages

TEST_F(SqliteStoreTest, AppendAssignsGaplessSeqAndReturnsMembers) {
  // Goal: seq is 1, 2, 3 with no gaps per conversation, independent across conversations, and the
  // result names the members to fan out to. Method: three appends in one conversation, one in another.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto ac = direct(a, c);
  for (int i = 1; i <= 3; ++i) {
    const auto r = append(ab, i % 2 == 0 ? b : a, cat("m", std::to_string(i)), kT0 + i);
    ASSERT_EQ(r.outcome, AppendOutcome::appended);
    EXPECT_EQ(r.message.seq, i);
    EXPECT_EQ(r.message.id, next_id_);
    EXPECT_EQ(r.message.conversation_id, ab);
    EXPECT_EQ(r.message.created_at, kT0 + i);
    EXPECT_EQ(r.message.body, cat("body m", std::to_string(i)));
    EXPECT_EQ(r.message.type, "text");
    auto members = r.members;
    std::sort(members.begin(), members.end());
    EXPECT_EQ(members, (std::vector<UserId>{a, b}));
  }
  const auto other = append(ac, c, "x1");
  ASSERT_EQ(other.outcome, AppendOutcome::appended);
  EXPECT_EQ(other.message.seq, 1);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 3);
  EXPECT_EQ(store().max_message_id(), next_id_);
}

TEST_F(SqliteStoreTest, DuplicateClientMsgIdReturnsTheOriginal) {
  // Goal: a retry with the same (sender, client_msg_id) stores nothing and returns the first message;
  // the same id in another conversation is a conflict; another sender may reuse the id. Method:
  // append, retry, compare, then count messages in history.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto ac = direct(a, c);
  const auto first = append(ab, a, "c1");
  ASSERT_EQ(first.outcome, AppendOutcome::appended);
  const auto retry = append(ab, a, "c1", kT0 + 5000);
  EXPECT_EQ(retry.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(retry.message.id, first.message.id);
  EXPECT_EQ(retry.message.seq, first.message.seq);
  EXPECT_EQ(retry.message.created_at, first.message.created_at);
  EXPECT_EQ(retry.message.body, first.message.body);
  EXPECT_EQ(retry.message.client_msg_id, "c1");
  const auto page = store().history(a, ab, HistoryQuery{});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->messages.size(), 1U);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 1);

  EXPECT_EQ(append(ac, a, "c1").outcome, AppendOutcome::conflict);
  EXPECT_EQ(store().get_conversation(a, ac)->last_seq, 0);
  // Bob's "c1" is his own key.
  const auto bobs = append(ab, b, "c1");
  EXPECT_EQ(bobs.outcome, AppendOutcome::appended);
  EXPECT_EQ(bobs.message.seq, 2);
}

TEST_F(SqliteStoreTest, AppendStateIsKeptAcrossBatchesUntilAnotherConnectionWrites) {
  // Goal: a conversation's members and last_seq read by one batch serve the next batches (no
  // re-read per send), yet a commit by another connection (a sqlite3 shell, a test) is seen, and a
  // rolled-back append leaves no seq behind. Method: appends in separate batches; then a raw
  // connection raises last_seq by 5 and removes bob; the next append must take seq 8 and bob's
  // must be refused; a rolled-back batch's seq is taken again by the next append.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  EXPECT_EQ(append(ab, a, "m1").message.seq, 1);
  EXPECT_EQ(append(ab, b, "m2").message.seq, 2);

  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &raw), SQLITE_OK);
  sqlite3_busy_timeout(raw, 5000);
  const std::string sql =
      cat("UPDATE conversations SET last_seq = last_seq + 5 WHERE id = ", std::to_string(ab),
          "; DELETE FROM conversation_participants WHERE conversation_id = ", std::to_string(ab),
          " AND user_id = ", std::to_string(b));
  ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);

  EXPECT_EQ(append(ab, a, "m3").message.seq, 8);
  EXPECT_EQ(append(ab, b, "m4").outcome, AppendOutcome::not_found);

  store().begin_batch();
  store().begin_job();
  const auto undone = store().append_message(chat::test::new_message(ab, a, "m5", "undone"), ++next_id_, kT0);
  EXPECT_EQ(undone.message.seq, 9);
  store().end_job();
  store().rollback_batch();
  EXPECT_EQ(append(ab, a, "m6").message.seq, 9);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 9);
}

TEST_F(SqliteStoreTest, AppendByNonMemberIsNotFound) {
  // Goal: a non-member and an unknown conversation get the same not_found. Method: carl appends to
  // alice/bob, alice appends to a missing id; nothing is stored.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  EXPECT_EQ(append(ab, c, "x").outcome, AppendOutcome::not_found);
  EXPECT_EQ(append(ab + 1000, a, "y").outcome, AppendOutcome::not_found);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 0);
  EXPECT_EQ(store().max_message_id(), 0);
}

TEST_F(SqliteStoreTest, HistoryPagesAreAscendingWithHasMore) {
  // Goal: the latest page, before=S and after=S return ascending pages of at most `limit`, with
  // has_more telling if there is more in that direction. Method: 10 messages, several cursors.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  for (int i = 1; i <= 10; ++i) append(ab, a, cat("m", std::to_string(i)));
  const auto seqs = [](const HistoryPage& p) {
    std::vector<chat::domain::Seq> out;
    for (const auto& m : p.messages) out.push_back(m.seq);
    return out;
  };
  using Seqs = std::vector<chat::domain::Seq>;

  auto latest = store().history(b, ab, chat::test::history_query(std::nullopt, std::nullopt, 3));
  ASSERT_TRUE(latest);
  EXPECT_EQ(seqs(*latest), (Seqs{8, 9, 10}));
  EXPECT_TRUE(latest->has_more);

  auto all = store().history(b, ab, chat::test::history_query(std::nullopt, std::nullopt, 10));
  EXPECT_EQ(seqs(*all), (Seqs{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_FALSE(all->has_more);  // limit N = count: nothing more
  auto more = store().history(b, ab, chat::test::history_query(std::nullopt, std::nullopt, 9));
  EXPECT_EQ(more->messages.size(), 9U);
  EXPECT_TRUE(more->has_more);  // limit N - 1: one more

  auto before = store().history(b, ab, chat::test::history_query(8, std::nullopt, 3));
  EXPECT_EQ(seqs(*before), (Seqs{5, 6, 7}));
  EXPECT_TRUE(before->has_more);
  auto first_page = store().history(b, ab, chat::test::history_query(4, std::nullopt, 3));
  EXPECT_EQ(seqs(*first_page), (Seqs{1, 2, 3}));
  EXPECT_FALSE(first_page->has_more);
  auto before_one = store().history(b, ab, chat::test::history_query(1, std::nullopt, 3));
  EXPECT_TRUE(before_one->messages.empty());
  EXPECT_FALSE(before_one->has_more);

  auto after = store().history(b, ab, chat::test::history_query(std::nullopt, 2, 3));
  EXPECT_EQ(seqs(*after), (Seqs{3, 4, 5}));
  EXPECT_TRUE(after->has_more);
  auto tail = store().history(b, ab, chat::test::history_query(std::nullopt, 7, 3));
  EXPECT_EQ(seqs(*tail), (Seqs{8, 9, 10}));
  EXPECT_FALSE(tail->has_more);
  auto past_end = store().history(b, ab, chat::test::history_query(std::nullopt, 10, 3));
  EXPECT_TRUE(past_end->messages.empty());
  EXPECT_FALSE(past_end->has_more);

  // Messages carry every field.
  const auto& m = all->messages.front();
  EXPECT_EQ(m.conversation_id, ab);
  EXPECT_EQ(m.sender_id, a);
  EXPECT_EQ(m.client_msg_id, "m1");
  EXPECT_EQ(m.body, "body m1");
  EXPECT_EQ(m.created_at, kT0);
}

TEST_F(SqliteStoreTest, MarkReadMovesUpOnlyAndIsCapped) {
  // Goal: the read watermark only moves up, never beyond last_seq; a non-member gets not_found; no
  // change is `unchanged`. Method: mark_read_seq and mark_read with various seqs.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  std::vector<MessageId> ids;
  for (int i = 1; i <= 5; ++i) ids.push_back(append(ab, a, cat("m", std::to_string(i))).message.id);

  auto r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 3, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.read_seq, 3);
  EXPECT_EQ(r.conversation_id, ab);
  auto members = r.members;
  std::sort(members.begin(), members.end());
  EXPECT_EQ(members, (std::vector<UserId>{a, b}));

  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 2, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::unchanged);
  EXPECT_EQ(r.read_seq, 3);
  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 3, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::unchanged);
  EXPECT_EQ(r.read_seq, 3);

  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 1000, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.read_seq, 5);  // capped at last_seq
  EXPECT_EQ(store().get_conversation(b, ab)->read_seq, 5);

  EXPECT_EQ(in_job(store(), [&] { return store().mark_read_seq(c, ab, 1, kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read_seq(b, ab + 1000, 1, kT0); }).outcome,
            ReadOutcome::not_found);

  // By message id: carl is not a member, an unknown id is not_found, the sender's own is unchanged.
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(c, ids[0], kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(b, 999'999, kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(a, ids[4], kT0); }).outcome,
            ReadOutcome::unchanged);
}

TEST_F(SqliteStoreTest, MarkReadByMessageId) {
  // Goal: mark_read uses the seq of the given message. Method: 4 messages, mark the 2nd then the 4th.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  std::vector<MessageId> ids;
  for (int i = 1; i <= 4; ++i) ids.push_back(append(ab, a, cat("m", std::to_string(i))).message.id);
  auto r = in_job(store(), [&] { return store().mark_read(b, ids[1], kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.read_seq, 2);
  EXPECT_EQ(r.conversation_id, ab);
  r = in_job(store(), [&] { return store().mark_read(b, ids[0], kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::unchanged);
  r = in_job(store(), [&] { return store().mark_read(b, ids[3], kT0); });
  EXPECT_EQ(r.read_seq, 4);
  EXPECT_EQ(store().get_conversation(b, ab)->unread_count, 0);
}

TEST_F(SqliteStoreTest, ListConversationsByActivityWithUnreadAndLastMessage) {
  // Goal: the list is ordered by last activity, unread_count counts others' messages above the
  // read watermark, last_message is the newest. Method: three conversations with messages at
  // controlled times.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b, kT0);
  const auto ac = direct(a, c, kT0 + 1);
  const auto self = direct(a, a, kT0 + 2);
  // Newest first by creation while nothing is sent.
  auto list = store().list_conversations(a);
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].id, self);
  EXPECT_EQ(list[1].id, ac);
  EXPECT_EQ(list[2].id, ab);

  append(ab, b, "b1", kT0 + 10);
  append(ab, b, "b2", kT0 + 11);
  append(ab, a, "a1", kT0 + 12);  // own message: not unread for alice, and marks b1, b2 read
  append(ab, b, "b3", kT0 + 13);
  append(ac, c, "c1", kT0 + 20);
  list = store().list_conversations(a);
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].id, ac);
  EXPECT_EQ(list[1].id, ab);
  EXPECT_EQ(list[2].id, self);
  EXPECT_EQ(list[0].unread_count, 1);
  EXPECT_EQ(list[1].unread_count, 1);  // only b3 (b1, b2 came before alice's own a1)
  EXPECT_EQ(list[1].read_seq, 3);
  ASSERT_TRUE(list[1].last_message);
  EXPECT_EQ(list[1].last_message->client_msg_id, "b3");
  EXPECT_EQ(list[1].last_seq, 4);
  EXPECT_FALSE(list[2].last_message);

  const auto bobs = store().list_conversations(b);
  ASSERT_EQ(bobs.size(), 1U);
  EXPECT_EQ(bobs[0].unread_count, 0);  // his own b3 came after a1, which marked a1 read
  EXPECT_EQ(store().list_conversations(c).size(), 1U);

  // A message moves a conversation to the top.
  append(ab, b, "b4", kT0 + 30);
  list = store().list_conversations(a);
  EXPECT_EQ(list[0].id, ab);
  EXPECT_EQ(list[0].unread_count, 2);
}

// ---------------------------------------------------------------------------------------------
// Transactions and durability

TEST_F(SqliteStoreTest, RolledBackJobLeavesNoTrace) {
  // Goal: rollback_job undoes that job alone while the batch commits the others. Method: one batch
  // with three jobs, the middle one rolled back.
  store().begin_batch();
  store().begin_job();
  store().create_user(chat::test::new_user("kept1", "kept1@x.y", "h", ""), kT0);
  store().end_job();
  store().begin_job();
  store().create_user(chat::test::new_user("ghost", "ghost@x.y", "h", ""), kT0);
  store().rollback_job();
  store().begin_job();
  store().create_user(chat::test::new_user("kept2", "kept2@x.y", "h", ""), kT0);
  store().end_job();
  store().commit_batch();
  EXPECT_TRUE(store().find_credentials("kept1"));
  EXPECT_FALSE(store().find_credentials("ghost"));
  EXPECT_TRUE(store().find_credentials("kept2"));
  // The rolled-back name is free.
  EXPECT_GT(add_user("ghost"), 0);
}

TEST_F(SqliteStoreTest, RolledBackBatchLeavesNoTrace) {
  // Goal: rollback_batch undoes every job of the batch. Method: two committed-looking jobs, then
  // rollback_batch instead of commit.
  store().begin_batch();
  store().begin_job();
  store().create_user(chat::test::new_user("one", "one@x.y", "h", ""), kT0);
  store().end_job();
  store().rollback_batch();
  EXPECT_FALSE(store().find_credentials("one"));
  EXPECT_GT(add_user("one"), 0);
}

TEST_F(SqliteStoreTest, DataSurvivesReopening) {
  // Goal: committed data is durable across store instances. Method: write users, a session, a
  // conversation and messages; close; open a new SqliteStore on the file; read everything back.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  add_session(a, "acc", "ref");
  const auto ab = direct(a, b);
  append(ab, a, "m1");
  const auto last = append(ab, b, "m2");
  close();
  open();
  EXPECT_TRUE(store().find_credentials("alice"));
  EXPECT_TRUE(store().find_access("acc", kT0));
  const auto conv = store().get_conversation(a, ab);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->last_seq, 2);
  EXPECT_EQ(store().max_message_id(), last.message.id);
  // Appending continues the sequence and idempotency survives.
  EXPECT_EQ(append(ab, a, "m3").message.seq, 3);
  EXPECT_EQ(append(ab, a, "m1").outcome, AppendOutcome::duplicate);
}

TEST_F(SqliteStoreTest, ProfileUpdateAndLastSeen) {
  // Goal: update_profile changes only the given fields; set_last_seen is visible. Method: update
  // the display name, then the bio, then read the user back; search finds the new display name.
  const auto a = add_user("alice");
  auto updated = in_job(store(), [&] {
    return store().update_profile(
        a, chat::test::profile_update(std::string("Queen A"), std::nullopt, std::nullopt));
  });
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->display_name, "Queen A");
  updated = in_job(store(), [&] {
    return store().update_profile(
        a, chat::test::profile_update(std::nullopt, std::string("pic.png"), std::string("hi")));
  });
  EXPECT_EQ(updated->display_name, "Queen A");
  EXPECT_EQ(updated->profile_picture, "pic.png");
  EXPECT_EQ(updated->bio, "hi");
  in_job(store(), [&] {
    store().set_last_seen(a, kT0 + 42);
    return 0;
  });
  EXPECT_EQ(store().find_user(a)->last_seen, kT0 + 42);
  EXPECT_EQ(store().search_users("queen", 20).size(), 1U);
  EXPECT_FALSE(in_job(store(), [&] { return store().update_profile(a + 100, ProfileUpdate{}); }));
}

}  // namespace

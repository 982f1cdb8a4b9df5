// The append log (store/sqlite/append_log.hpp) and SqliteStore's use of it: sends made durable by
// the log and not yet committed to SQLite survive a crash, and nothing but the current run of the
// right database is ever replayed.

#include "store/sqlite/append_log.hpp"

#include "sqlite_probe.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_builders.hpp"
#include "test_util.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <string>
#include <vector>

namespace {

using chat::domain::ConversationId;
using chat::domain::UserId;
using chat::store::AppendOutcome;
using chat::store::sqlite::SqliteStore;
using chat::store::sqlite::detail::AppendLog;
using chat::test::cat;

constexpr chat::domain::TimeMs kT0 = 1'750'000'000'000;

void add(AppendLog& log, int i) {
  log.add(1000 + i, 7, i, 3, kT0 + i, std::nullopt, cat("c", std::to_string(i)),
          cat("body ", std::to_string(i)));
}

std::vector<int> seqs(const std::vector<chat::store::sqlite::detail::LoggedMessage>& records) {
  std::vector<int> out;
  for (const auto& r : records) out.push_back(static_cast<int>(r.seq));
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(AppendLogTest, FramesReadBackInOrderWithEveryField) {
  // Goal: committed frames come back from a fresh open, records in order, every field intact
  // (including an absent reply and a 100 000-character body). Method: two frames, reopen, recover.
  chat::test::TempDir dir;
  const auto path = dir.path() + "/log";
  const std::string big(100'000, 'x');
  {
    AppendLog log(path, 42, 1 << 20);
    add(log, 1);
    log.add(2000, 8, 9, 4, kT0, 1001, "", big);
    log.commit();
    add(log, 3);
    log.commit();
    EXPECT_EQ(log.frames_written(), 2U);
  }
  AppendLog again(path, 42, 1 << 20);
  const auto records = again.recover();
  ASSERT_EQ(records.size(), 3U);
  EXPECT_EQ(records[0].id, 1001);
  EXPECT_EQ(records[0].conversation_id, 7);
  EXPECT_EQ(records[0].seq, 1);
  EXPECT_EQ(records[0].sender_id, 3);
  EXPECT_EQ(records[0].created_at, kT0 + 1);
  EXPECT_FALSE(records[0].reply_to.has_value());
  EXPECT_EQ(records[0].client_msg_id, "c1");
  EXPECT_EQ(records[0].body, "body 1");
  EXPECT_EQ(records[1].reply_to, 1001);
  EXPECT_EQ(records[1].body, big);
  EXPECT_EQ(records[1].client_msg_id, "");
  EXPECT_EQ(records[2].seq, 3);
}

TEST(AppendLogTest, ATornOrDamagedFrameEndsTheRun) {
  // Goal: recovery keeps the frames before a damaged one and nothing from it on (a torn last write
  // is a batch that was never acknowledged). Method: three frames; flip one byte in the second.
  chat::test::TempDir dir;
  const auto path = dir.path() + "/log";
  std::size_t second = 0;
  {
    AppendLog log(path, 42, 1 << 20);
    add(log, 1);
    add(log, 2);
    log.commit();
    second = log.run_bytes();
    add(log, 3);
    log.commit();
    add(log, 4);
    log.commit();
  }
  auto bytes = slurp(path);
  bytes[second + AppendLog::kHeaderBytes + 3] ^= 0x5a;
  spit(path, bytes);
  AppendLog again(path, 42, 1 << 20);
  EXPECT_EQ(seqs(again.recover()), (std::vector<int>{1, 2}));
}

TEST(AppendLogTest, AResetRunHidesWhatTheOldRunLeftBehind) {
  // Goal: after reset() (the run is in a durable SQLite commit) only the new run is recovered,
  // although the old run's longer frames are still in the file after it. Method: a long run,
  // reset, one short frame, reopen.
  chat::test::TempDir dir;
  const auto path = dir.path() + "/log";
  {
    AppendLog log(path, 42, 1 << 20);
    for (int i = 1; i <= 5; ++i) {
      add(log, i);
      log.commit();
    }
    log.reset();
    EXPECT_TRUE(log.run_empty());
    add(log, 9);
    log.commit();
  }
  AppendLog again(path, 42, 1 << 20);
  EXPECT_EQ(seqs(again.recover()), (std::vector<int>{9}));
}

TEST(AppendLogTest, ALogOfAnotherDatabaseIsIgnored) {
  // Goal: frames written for another database id are never recovered. Method: write with id 42,
  // open with id 43.
  chat::test::TempDir dir;
  const auto path = dir.path() + "/log";
  {
    AppendLog log(path, 42, 1 << 20);
    add(log, 1);
    log.commit();
  }
  AppendLog other(path, 43, 1 << 20);
  EXPECT_TRUE(other.recover().empty());
  EXPECT_EQ(other.ignored_frames(), 1U);
}

TEST(AppendLogTest, AJobsRecordsAreDroppedWithItsRollback) {
  // Goal: truncate_to(mark) removes exactly the records added after the mark (a job rolled back
  // to its savepoint), and committed() reads back what the run holds. Method: add, mark, add two,
  // truncate, commit.
  chat::test::TempDir dir;
  AppendLog log(dir.path() + "/log", 42, 1 << 20);
  add(log, 1);
  const auto mark = log.mark();
  add(log, 2);
  add(log, 3);
  log.truncate_to(mark);
  add(log, 4);
  log.commit();
  EXPECT_EQ(seqs(log.committed()), (std::vector<int>{1, 4}));
  EXPECT_FALSE(log.has_pending());
}

TEST(AppendLogTest, FitsSaysWhenTheRunWouldPassItsLimit) {
  // Goal: fits() turns false once the pending frame would take the run past max_bytes. Method: a
  // 4 KiB limit and 1000-byte bodies.
  chat::test::TempDir dir;
  AppendLog log(dir.path() + "/log", 42, 4096);
  int committed = 0;
  for (int i = 0; i < 10; ++i) {
    log.add(i + 1, 1, i + 1, 1, kT0, std::nullopt, "c", std::string(1000, 'b'));
    if (!log.fits()) break;
    log.commit();
    ++committed;
  }
  EXPECT_EQ(committed, 3);
  EXPECT_LE(log.run_bytes(), 4096U);
}

// --- SqliteStore with its log -------------------------------------------------------------------

// Copies the database, its WAL and its log as a crash would leave them (the writer's transaction
// open, nothing closed).
void copy_as_crashed(const std::string& from_dir, const std::string& to_dir) {
  for (const char* suffix : {"", "-wal", "-log"}) {
    const auto from = from_dir + "/chatd.db" + suffix;
    if (std::filesystem::exists(from)) std::filesystem::copy_file(from, to_dir + "/chatd.db" + suffix);
  }
}

class AppendLogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<SqliteStore>(SqliteStore::Options{dir_.path() + "/chatd.db", 1});
    store_->begin_batch();
    alice_ = store_->create_user(chat::test::new_user("alice", "alice@example.com", "h", ""), kT0).user.id;
    bob_ = store_->create_user(chat::test::new_user("bob", "bob@example.com", "h", ""), kT0).user.id;
    conversation_ = store_->open_direct(alice_, bob_, kT0).conversation_id;
    store_->commit_batch();
  }

  // One deferred batch of sends c<from>..c<to> by alice (or bob for odd numbers).
  void deferred_batch(int from, int to) {
    store_->begin_batch();
    for (int i = from; i <= to; ++i) {
      const auto r = store_->append_message(
          chat::test::new_message(conversation_, i % 2 == 0 ? alice_ : bob_, cat("c", std::to_string(i)),
                                  cat("hello ", std::to_string(i))),
          next_id_++, kT0 + i);
      ASSERT_EQ(r.outcome, AppendOutcome::appended);
    }
    ASSERT_TRUE(store_->commit_batch_deferred());
  }

  chat::test::TempDir dir_;
  chat::test::TempDir crashed_;
  std::unique_ptr<SqliteStore> store_;
  UserId alice_ = 0;
  UserId bob_ = 0;
  ConversationId conversation_ = 0;
  chat::domain::MessageId next_id_ = 1'000'000;
};

TEST_F(AppendLogStoreTest, SendsInTheLogSurviveACrashBeforeThePublish) {
  // Goal: sends whose batches went to the log (acknowledged) but were never committed to SQLite
  // are all there after a crash, with their seqs, ids, bodies, the conversation's last_seq and the
  // senders' read markers; a retry is still recognised and the next send takes the next seq.
  // Method: two deferred batches, copy the files while the transaction is open, open the copy.
  deferred_batch(1, 3);
  deferred_batch(4, 5);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"),
            0);  // not in SQLite yet: only in the log
  EXPECT_EQ(store_->log_frames(), 2U);
  copy_as_crashed(dir_.path(), crashed_.path());

  SqliteStore copy(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
  EXPECT_EQ(copy.replayed_at_open(), 5U);
  const auto page =
      copy.history(bob_, conversation_, chat::test::history_query(std::nullopt, std::nullopt, 50));
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->messages.size(), 5U);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(page->messages[static_cast<std::size_t>(i)].seq, i + 1);
    EXPECT_EQ(page->messages[static_cast<std::size_t>(i)].id, 1'000'000 + i);
    EXPECT_EQ(page->messages[static_cast<std::size_t>(i)].body, cat("hello ", std::to_string(i + 1)));
  }
  EXPECT_EQ(copy.get_conversation(alice_, conversation_)->last_seq, 5);
  // Each sender has read up to their own last message (alice sent 2 and 4, bob 1, 3, 5).
  const auto receipts = copy.receipts(alice_, conversation_);
  ASSERT_TRUE(receipts.has_value());
  for (const auto& r : *receipts) EXPECT_EQ(r.read_seq, r.user_id == alice_ ? 4 : 5) << r.user_id;

  copy.begin_batch();
  const auto retry =
      copy.append_message(chat::test::new_message(conversation_, alice_, "c2", "again"), 9, kT0);
  EXPECT_EQ(retry.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(retry.message.seq, 2);
  const auto next = copy.append_message(chat::test::new_message(conversation_, alice_, "c6", "six"), 10, kT0);
  EXPECT_EQ(next.message.seq, 6);
  copy.commit_batch();
}

TEST_F(AppendLogStoreTest, PublishCommitsAndEndsTheRun) {
  // Goal: publish() makes the deferred sends visible to other connections, and a crash after it
  // replays nothing (the run ended with the durable commit). Method: deferred batch, publish,
  // copy, open.
  deferred_batch(1, 4);
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 4);
  copy_as_crashed(dir_.path(), crashed_.path());
  SqliteStore copy(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
  EXPECT_EQ(copy.replayed_at_open(), 0U);
  EXPECT_EQ(copy.get_conversation(alice_, conversation_)->last_seq, 4);
}

TEST_F(AppendLogStoreTest, ABatchThatIsMoreThanSendsCommitsEverythingBeforeIt) {
  // Goal: a batch with any other write (a read marker here) is committed to SQLite as before,
  // together with the deferred sends before it. Method: deferred batch, then a batch with a
  // send and mark_read_seq: commit_batch_deferred answers false and the rows are visible.
  deferred_batch(1, 2);
  store_->begin_batch();
  store_->append_message(chat::test::new_message(conversation_, alice_, "c3", "three"), next_id_++, kT0);
  store_->mark_read_seq(bob_, conversation_, 3, kT0);
  EXPECT_FALSE(store_->commit_batch_deferred());
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 3);
}

TEST_F(AppendLogStoreTest, ARolledBackBatchIsReplayedFromTheLog) {
  // Goal: when SQLite rolls back the open transaction (a failed batch), the deferred sends in it
  // are put back from the log before the next batch, so nothing acknowledged is lost or reordered.
  // Method: deferred batch, a batch that is rolled back, then a batch with one send.
  deferred_batch(1, 3);
  store_->begin_batch();
  store_->append_message(chat::test::new_message(conversation_, alice_, "doomed", "x"), next_id_++, kT0);
  store_->rollback_batch();
  deferred_batch(4, 4);
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 4);
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 4);
}

TEST_F(AppendLogStoreTest, ALogBesideANewDatabaseIsNotReplayedIntoIt) {
  // Goal: a log left next to a database file it does not belong to (the operator replaced the
  // file) is ignored. Method: deferred batch; copy only the log next to a fresh database.
  deferred_batch(1, 2);
  std::filesystem::copy_file(dir_.path() + "/chatd.db-log", crashed_.path() + "/chatd.db-log");
  SqliteStore fresh(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
  EXPECT_EQ(fresh.replayed_at_open(), 0U);
}

TEST_F(AppendLogStoreTest, ClosingTheStorePublishes) {
  // Goal: a store destroyed with deferred sends commits them (a clean shutdown leaves nothing to
  // replay). Method: deferred batch, destroy, count rows, reopen.
  deferred_batch(1, 3);
  store_.reset();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 3);
  SqliteStore reopened(SqliteStore::Options{dir_.path() + "/chatd.db", 1});
  EXPECT_EQ(reopened.replayed_at_open(), 0U);
}

}  // namespace

// The append log (store/sqlite/append_log.hpp) and SqliteStore's use of it: sends made durable by
// the log and not yet committed to SQLite survive a crash, and nothing but the current run of the
// right database is ever replayed.

#include "store/sqlite/append_log.hpp"

#include "sqlite_probe.hpp"
#include "store/errors.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_builders.hpp"
#include "test_util.hpp"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
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
  for (const char* suffix : {"", "-wal", "-log", "-log2"}) {
    const auto from = from_dir + "/chatd.db" + suffix;
    if (std::filesystem::exists(from)) std::filesystem::copy_file(from, to_dir + "/chatd.db" + suffix);
  }
}

class AppendLogStoreTest : public ::testing::Test {
 protected:
  virtual SqliteStore::Options options() { return SqliteStore::Options{dir_.path() + "/chatd.db", 1}; }

  void SetUp() override {
    store_ = std::make_unique<SqliteStore>(options());
    store_->begin_batch();
    alice_ = store_->create_user(chat::test::new_user("alice", "alice@example.com", "h", ""), kT0).user.id;
    bob_ = store_->create_user(chat::test::new_user("bob", "bob@example.com", "h", ""), kT0).user.id;
    conversation_ = store_->open_direct(alice_, bob_, kT0).conversation_id;
    store_->commit_batch();
  }

  // Send number i: by alice for even numbers, bob for odd ones.
  chat::store::AppendResult send(int i) {
    return store_->append_message(
        chat::test::new_message(conversation_, i % 2 == 0 ? alice_ : bob_, cat("c", std::to_string(i)),
                                cat("hello ", std::to_string(i))),
        next_id_++, kT0 + i);
  }

  // One deferred batch of sends c<from>..c<to>.
  void deferred_batch(int from, int to) {
    store_->begin_batch();
    for (int i = from; i <= to; ++i) {
      const auto r = send(i);
      ASSERT_EQ(r.outcome, AppendOutcome::appended);
      ASSERT_EQ(r.message.seq, i);
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
  // Goal: publish() makes the deferred sends visible to other connections, with the
  // conversation's last_seq and each sender's read marker as of the last batch (deferred batches
  // leave those rows to the publish), and a crash after it replays nothing (the run ended with the
  // durable commit). Method: two deferred batches, publish, copy, open.
  deferred_batch(1, 3);
  deferred_batch(4, 4);
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 4);
  copy_as_crashed(dir_.path(), crashed_.path());
  SqliteStore copy(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
  EXPECT_EQ(copy.replayed_at_open(), 0U);
  EXPECT_EQ(copy.get_conversation(alice_, conversation_)->last_seq, 4);
  const auto receipts = copy.receipts(alice_, conversation_);
  ASSERT_TRUE(receipts.has_value());
  ASSERT_EQ(receipts->size(), 2U);
  for (const auto& r : *receipts) EXPECT_EQ(r.read_seq, r.user_id == alice_ ? 4 : 3) << r.user_id;
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
  // The deferred batch's conversation row and read markers went in before the other write.
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 3);
  const auto receipts = store_->receipts(alice_, conversation_);
  ASSERT_TRUE(receipts.has_value());
  for (const auto& r : *receipts) EXPECT_EQ(r.read_seq, 3) << r.user_id;
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

// --- Publishing in the background ----------------------------------------------------------------

// Holds the publisher's COMMIT until opened: the test decides when a background publish ends.
struct CommitGate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  bool fail_next = false;  // the next commit fails (as a SQLite error would)
  void pass() {
    std::unique_lock lock(mutex);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
    if (std::exchange(fail_next, false)) throw chat::store::StoreUnavailable("disk I/O error (test)");
  }
  void wait_entered(int n) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return entered >= n; });
  }
  void set_open(bool value) {
    std::lock_guard lock(mutex);
    open = value;
    cv.notify_all();
  }
};

class BackgroundPublishTest : public AppendLogStoreTest {
 protected:
  SqliteStore::Options options() override {
    auto o = AppendLogStoreTest::options();
    o.before_background_commit = [this] { gate_.pass(); };
    return o;
  }
  void TearDown() override {
    gate_.set_open(true);
    if (opener_.joinable()) opener_.join();
  }
  // Starts a background publish of what is deferred and waits until its COMMIT is held.
  void begin_held_publish() {
    gate_.set_open(false);
    const int before = gate_.entered;
    ASSERT_TRUE(store_->begin_publish({}));
    gate_.wait_entered(before + 1);
  }
  // Opens the gate from another thread a little later: for calls that must wait for the publish
  // (when it opens does not change what they must return).
  void open_soon() {
    opener_ = std::thread([this] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      gate_.set_open(true);
    });
  }
  void finish() {
    gate_.set_open(true);
    bool deferred = false;
    ASSERT_TRUE(store_->finish_publish(/*wait=*/true, &deferred));
  }
  std::vector<chat::domain::Message> history() {
    auto page =
        store_->history(alice_, conversation_, chat::test::history_query(std::nullopt, std::nullopt, 50));
    return page ? page->messages : std::vector<chat::domain::Message>{};
  }

  CommitGate gate_;
  std::thread opener_;
};

TEST_F(BackgroundPublishTest, SendsAreAcknowledgedFromTheLogWhileAPublishRuns) {
  // Goal: while a publish's COMMIT runs on the publisher's thread, batches of sends are still
  // made durable and answered (seqs go on from the publishing transaction's), without touching
  // SQLite; once it ends they go in after it, in order, with their ids, and are published next.
  // Method: deferred batch 1-3, background publish held at its COMMIT, two batches 4-6 and 7
  // (answered while it is held: SQLite's file has no rows), open, end, publish, read back.
  deferred_batch(1, 3);
  begin_held_publish();
  deferred_batch(4, 6);
  deferred_batch(7, 7);
  EXPECT_EQ(store_->held_sends(), 4U);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 0);
  gate_.set_open(true);
  bool deferred = false;
  ASSERT_TRUE(store_->finish_publish(true, &deferred));
  EXPECT_TRUE(deferred);  // 4-7 are in a new transaction, not yet published
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 3);
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 7);
  const auto messages = history();
  ASSERT_EQ(messages.size(), 7U);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(messages[static_cast<std::size_t>(i)].seq, i + 1);
    EXPECT_EQ(messages[static_cast<std::size_t>(i)].id, 1'000'000 + i);
    EXPECT_EQ(messages[static_cast<std::size_t>(i)].body, cat("hello ", std::to_string(i + 1)));
  }
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 7);
  const auto receipts = store_->receipts(alice_, conversation_);
  ASSERT_TRUE(receipts.has_value());
  for (const auto& r : *receipts) EXPECT_EQ(r.read_seq, r.user_id == alice_ ? 6 : 7) << r.user_id;
}

TEST_F(BackgroundPublishTest, ACrashWhileAPublishRunsLosesNoAcknowledgedSend) {
  // Goal: a crash while a background COMMIT is unfinished loses nothing acknowledged: the sends of
  // the publishing transaction (first log) and those acknowledged meanwhile (second log) are all
  // replayed; so are the held ones after the COMMIT ended but before they were published.
  // Method: copy the files (as a crash leaves them) at both points, open each copy.
  deferred_batch(1, 3);
  begin_held_publish();
  deferred_batch(4, 5);
  copy_as_crashed(dir_.path(), crashed_.path());
  {
    SqliteStore copy(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
    EXPECT_EQ(copy.replayed_at_open(), 5U);
    EXPECT_EQ(copy.get_conversation(alice_, conversation_)->last_seq, 5);
    copy.begin_batch();
    EXPECT_EQ(
        copy.append_message(chat::test::new_message(conversation_, alice_, "c4", "again"), 1, kT0).outcome,
        AppendOutcome::duplicate);
    EXPECT_EQ(
        copy.append_message(chat::test::new_message(conversation_, alice_, "c6", "six"), 2, kT0).message.seq,
        6);
    copy.commit_batch();
  }
  finish();
  chat::test::TempDir after;
  copy_as_crashed(dir_.path(), after.path());
  SqliteStore copy(SqliteStore::Options{after.path() + "/chatd.db", 1});
  EXPECT_EQ(copy.replayed_at_open(), 2U);  // 1-3 are committed; 4-5 come from the second log
  EXPECT_EQ(copy.get_conversation(alice_, conversation_)->last_seq, 5);
}

TEST_F(BackgroundPublishTest, RetriesDuringAPublishAreAnsweredWithTheOriginal) {
  // Goal: a retried client_msg_id is recognised whether its original is committed (looked up on a
  // read connection while the publish runs), in the publishing transaction, or held since (those
  // two wait for the publish): never appended twice. Method: c1 published; c2 deferred; publish
  // held; c3 held; retries of c1, c2, c3; then everything read back.
  deferred_batch(1, 1);
  store_->publish();
  deferred_batch(2, 2);
  begin_held_publish();
  deferred_batch(3, 3);
  store_->begin_batch();
  const auto r1 = send(1);
  EXPECT_EQ(r1.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(r1.message.seq, 1);
  EXPECT_EQ(store_->held_sends(), 1U);  // answered without waiting: still the log-only path
  open_soon();
  const auto r2 = send(2);  // waits for the publish to end
  EXPECT_EQ(r2.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(r2.message.seq, 2);
  const auto r3 = send(3);
  EXPECT_EQ(r3.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(r3.message.seq, 3);
  EXPECT_EQ(send(4).message.seq, 4);
  store_->commit_batch_deferred();
  store_->publish();
  EXPECT_EQ(history().size(), 4U);
}

TEST_F(BackgroundPublishTest, AnotherWriteDuringAPublishWaitsForItAndKeepsTheOrder) {
  // Goal: a write that is not a send (a read marker) while a publish runs waits for it, then the
  // held sends go in before it and the batch commits with everything. Method: deferred 1-2,
  // publish held, a batch with send 3 and mark_read_seq(3) by the other user.
  deferred_batch(1, 2);
  begin_held_publish();
  store_->begin_batch();
  ASSERT_EQ(send(3).message.seq, 3);
  open_soon();
  const auto read = store_->mark_read_seq(alice_, conversation_, 3, kT0);
  EXPECT_EQ(read.outcome, chat::store::ReadOutcome::updated);
  EXPECT_FALSE(store_->commit_batch_deferred());
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 3);
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 3);
}

TEST_F(BackgroundPublishTest, AJobRolledBackDuringAPublishTakesOnlyItsSends) {
  // Goal: per-job rollback while sends are held: the failed job's send is gone from the held
  // ones and the log, its seq is not skipped, the other jobs' sends stay. Method: publish held;
  // a batch of three jobs (the second rolled back), end the publish, one more send, publish.
  deferred_batch(1, 1);
  begin_held_publish();
  store_->begin_batch();
  store_->begin_job();
  ASSERT_EQ(send(2).message.seq, 2);
  store_->end_job();
  store_->begin_job();
  ASSERT_EQ(send(3).message.seq, 3);
  store_->rollback_job();
  store_->begin_job();
  open_soon();  // the rollback dropped the cached conversation: this send waits for the publish
  ASSERT_EQ(send(4).message.seq, 3);
  store_->end_job();
  ASSERT_TRUE(store_->commit_batch_deferred());
  store_->publish();
  const auto messages = history();
  ASSERT_EQ(messages.size(), 3U);
  EXPECT_EQ(messages[1].body, "hello 2");
  EXPECT_EQ(messages[2].body, "hello 4");
  EXPECT_EQ(messages[2].seq, 3);
  copy_as_crashed(dir_.path(), crashed_.path());
  SqliteStore copy(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
  EXPECT_EQ(copy.replayed_at_open(), 0U);
}

TEST_F(BackgroundPublishTest, AFailedBackgroundCommitIsReplayedFromBothLogs) {
  // Goal: when the background COMMIT fails (SQLite rolls the transaction back), nothing
  // acknowledged is lost: the next batch puts back the publishing transaction's sends (first log)
  // and those held meanwhile (second log), then goes on. Method: deferred 1-2, publish held and
  // made to fail, 3-4 held; finish_publish throws; a batch with 5; publish; read back.
  deferred_batch(1, 2);
  gate_.fail_next = true;
  begin_held_publish();
  deferred_batch(3, 4);
  gate_.set_open(true);
  bool deferred = false;
  EXPECT_THROW(store_->finish_publish(true, &deferred), chat::store::StoreUnavailable);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 0);
  deferred_batch(5, 5);
  store_->publish();
  const auto messages = history();
  ASSERT_EQ(messages.size(), 5U);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(messages[static_cast<std::size_t>(i)].seq, i + 1);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 5);
}

TEST_F(BackgroundPublishTest, AFailedCommitEndedInsideABatchIsReplayedThere) {
  // Goal: the same failure found by a batch (it needed the database) rather than by
  // finish_publish: the batch puts the rolled-back and held sends back first and goes on.
  // Method: deferred 1-2, failing held publish, 3 held, then a batch with mark_read_seq.
  deferred_batch(1, 2);
  gate_.fail_next = true;
  begin_held_publish();
  deferred_batch(3, 3);
  store_->begin_batch();
  open_soon();
  EXPECT_EQ(store_->mark_read_seq(alice_, conversation_, 3, kT0).outcome, chat::store::ReadOutcome::updated);
  EXPECT_FALSE(store_->commit_batch_deferred());
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 3);
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 3);
}

TEST_F(BackgroundPublishTest, HeldSendsGoInAChunkAtATimeAfterThePublish) {
  // Goal: the sends held during a publish are inserted a chunk at a time when it ends, the rest
  // by the next batches, not all at once in front of the queued sends; none is lost by a crash
  // meanwhile, and the next publish holds them all in order. Method: 600 sends held during a
  // publish, count what is left after it ends and after one more batch, copy the files as a crash
  // leaves them, publish, read back.
  deferred_batch(1, 1);
  begin_held_publish();
  deferred_batch(2, 601);
  EXPECT_EQ(store_->held_unwritten(), 600U);
  finish();
  const auto after_publish = store_->held_unwritten();
  EXPECT_GT(after_publish, 0U);
  EXPECT_LT(after_publish, 600U);
  deferred_batch(602, 602);
  EXPECT_GT(store_->held_unwritten(), 0U);
  EXPECT_LT(store_->held_unwritten(), after_publish);
  copy_as_crashed(dir_.path(), crashed_.path());
  {
    SqliteStore copy(SqliteStore::Options{crashed_.path() + "/chatd.db", 1});
    EXPECT_EQ(copy.replayed_at_open(), 601U);  // 1 is committed; 2-602 are in the log
    EXPECT_EQ(copy.get_conversation(alice_, conversation_)->last_seq, 602);
  }
  store_->publish();
  EXPECT_EQ(store_->held_unwritten(), 0U);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 602);
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 602);
  const auto page =
      store_->history(alice_, conversation_, chat::test::history_query(std::nullopt, std::nullopt, 100));
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->messages.size(), 100U);  // the latest 100, in order, with their ids
  for (std::size_t i = 0; i < 100; ++i) {
    const auto n = static_cast<int>(503 + i);
    EXPECT_EQ(page->messages[i].seq, n);
    EXPECT_EQ(page->messages[i].id, 1'000'000 + n - 1);
    EXPECT_EQ(page->messages[i].body, cat("hello ", std::to_string(n)));
  }
  const auto receipts = store_->receipts(alice_, conversation_);
  ASSERT_TRUE(receipts.has_value());
  for (const auto& r : *receipts) EXPECT_EQ(r.read_seq, r.user_id == alice_ ? 602 : 601) << r.user_id;
}

// 900 sends (2-901) held during a publish; it ends, one more batch (902), and the next batch
// begins: the last of them (890-901 at least) are not inserted yet.
class HeldSendsNotInsertedTest : public BackgroundPublishTest {
 protected:
  void SetUp() override {
    BackgroundPublishTest::SetUp();
    deferred_batch(1, 1);
    begin_held_publish();
    deferred_batch(2, 901);
    finish();
    deferred_batch(902, 902);
    store_->begin_batch();
    ASSERT_GE(store_->held_unwritten(), 12U);
  }
};

TEST_F(HeldSendsNotInsertedTest, ARetryOfOneIsAnsweredWithTheOriginal) {
  // Goal: a retry of a held send whose row is not in yet is recognised (the rest go in first).
  const auto retry = store_->append_message(chat::test::new_message(conversation_, alice_, "c900", "again"),
                                            next_id_++, kT0);
  EXPECT_EQ(retry.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(retry.message.seq, 900);
  EXPECT_EQ(retry.message.id, 1'000'000 + 899);
  EXPECT_EQ(retry.message.body, "hello 900");
  EXPECT_EQ(store_->held_unwritten(), 0U);
  ASSERT_TRUE(store_->commit_batch_deferred());
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 902);
}

TEST_F(HeldSendsNotInsertedTest, AReplyToOneIsAccepted) {
  // Goal: a reply to a held send whose row is not in yet finds it (the rest go in first).
  auto reply = chat::test::new_message(conversation_, bob_, "r1", "re: 890");
  reply.reply_to = 1'000'000 + 889;  // send 890's id
  const auto replied = store_->append_message(reply, next_id_++, kT0);
  EXPECT_EQ(replied.outcome, AppendOutcome::appended);
  EXPECT_EQ(replied.message.seq, 903);
  EXPECT_EQ(replied.message.ref_id, 1'000'000 + 889);
  ASSERT_TRUE(store_->commit_batch_deferred());
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 903);
}

TEST_F(HeldSendsNotInsertedTest, AReplyToAnOlderMessageDoesNotWaitForThem) {
  // Goal: a reply to a message older than every send not inserted yet (the usual reply) does not
  // insert them all first. Method: a reply to send 1 (committed) while some are left.
  const auto left = store_->held_unwritten();
  auto reply = chat::test::new_message(conversation_, bob_, "r1", "re: 1");
  reply.reply_to = 1'000'000;  // send 1's id
  const auto replied = store_->append_message(reply, next_id_++, kT0);
  EXPECT_EQ(replied.outcome, AppendOutcome::appended);
  EXPECT_EQ(replied.message.seq, 903);
  EXPECT_EQ(store_->held_unwritten(), left);
  ASSERT_TRUE(store_->commit_batch_deferred());
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 903);
}

TEST_F(BackgroundPublishTest, ABatchRolledBackWhileHeldSendsGoInLosesOnlyItsOwn) {
  // Goal: a batch that fails while held sends are still being inserted takes only its own sends
  // with it: the acknowledged held ones come back from the log, in order, no seq gap.
  // Method: 600 held sends, the publish ends, a batch with one send rolled back, a batch, publish.
  deferred_batch(1, 1);
  begin_held_publish();
  deferred_batch(2, 601);
  finish();
  ASSERT_GT(store_->held_unwritten(), 0U);
  store_->begin_batch();
  EXPECT_EQ(
      store_->append_message(chat::test::new_message(conversation_, alice_, "doomed", "x"), next_id_++, kT0)
          .outcome,
      AppendOutcome::appended);
  store_->rollback_batch();
  EXPECT_EQ(store_->held_unwritten(), 0U);
  deferred_batch(602, 602);
  store_->publish();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 602);
  EXPECT_EQ(store_->get_conversation(alice_, conversation_)->last_seq, 602);
}

}  // namespace

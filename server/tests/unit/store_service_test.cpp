// StoreService over a real SqliteStore file: the writer thread, group commit, after_commit order,
// per-job failure, shutdown and overload. An io_context on its own thread plays the I/O thread.
//
// Ordering without timing: a "gate" job holds the writer thread until the test has queued exactly
// the jobs it wants in the next batch (it waits for queued_writes() to reach that count), so batch
// contents are deterministic.

#include "store/store_service.hpp"

#include "net/post_batch.hpp"
#include "sqlite_probe.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_builders.hpp"
#include "test_util.hpp"
#include "writer_gate.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <gtest/gtest.h>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = chat::net;
using chat::domain::ConversationId;
using chat::domain::Seq;
using chat::domain::UserId;
using chat::store::AppendOutcome;
using chat::store::AppendResult;
using chat::store::StoreService;
using chat::store::StoreUnavailable;
using chat::store::WriteContext;
using chat::store::sqlite::SqliteStore;
using chat::test::cat;

constexpr chat::domain::TimeMs kT0 = 1'750'000'000'000;

// What after_commit actions observed, in the order they ran (written on the writer thread).
struct Recorder {
  std::mutex mutex;
  std::vector<Seq> seqs;
  bool all_visible = true;  // every action saw its own message committed
  void record(Seq seq, bool visible) {
    std::lock_guard lock(mutex);
    seqs.push_back(seq);
    all_visible = all_visible && visible;
  }
};

using chat::test::Gate;
using chat::test::hold_writer;

// Appends message number `i` as `sender`; with a recorder, an after_commit action records its seq
// and whether a reader already sees it (the action must run after the commit).
net::awaitable<AppendResult> append(
    StoreService* svc, ConversationId conversation, UserId sender, int i, Recorder* recorder) {
  auto job = [conversation, sender, i, recorder](WriteContext& ctx) {
    auto result =
        ctx.store.append_message(chat::test::new_message(conversation, sender, cat("c", std::to_string(i)),
                                                         cat("hello ", std::to_string(i))),
                                 ctx.next_id(), ctx.now);
    if (recorder != nullptr && result.outcome == AppendOutcome::appended) {
      chat::store::Store* store = &ctx.store;
      const Seq seq = result.message.seq;
      ctx.after_commit([recorder, store, conversation, sender, seq] {
        const auto c = store->get_conversation(sender, conversation);
        recorder->record(seq, c && c->last_seq >= seq);
      });
    }
    return result;
  };
  auto result = co_await svc->write(std::move(job));
  co_return result;
}

// A job that creates a user and then throws `Error`: nothing of it may remain.
template <class Error>
net::awaitable<int> failing_job(StoreService* svc) {
  auto job = [](WriteContext& ctx) -> int {
    ctx.store.create_user(chat::test::new_user("ghost", "ghost@x.y", "h", ""), ctx.now);
    ctx.after_commit([] { ADD_FAILURE() << "after_commit of a failed job ran"; });
    throw Error("job failed on purpose");
  };
  const int r = co_await svc->write(std::move(job));
  co_return r;
}

// A job that appends message `i` to `conversation` and then throws: its seq must not be taken.
net::awaitable<int> append_then_fail(StoreService* svc, ConversationId conversation, UserId sender, int i) {
  auto job = [conversation, sender, i](WriteContext& ctx) -> int {
    ctx.store.append_message(
        chat::test::new_message(conversation, sender, cat("c", std::to_string(i)), "doomed"), ctx.next_id(),
        ctx.now);
    throw std::runtime_error("job failed on purpose");
  };
  const int r = co_await svc->write(std::move(job));
  co_return r;
}

// Where a write and a read resume, and where the write job ran.
struct Threads {
  std::thread::id write_job;
  std::thread::id after_write;
  std::thread::id read_job;
  std::thread::id after_read;
};

net::awaitable<Threads> probe_threads(StoreService* svc) {
  Threads t;
  auto write_job = [](WriteContext&) { return std::this_thread::get_id(); };
  t.write_job = co_await svc->write(std::move(write_job));
  t.after_write = std::this_thread::get_id();
  auto read_job = [](chat::store::Store&) { return std::this_thread::get_id(); };
  t.read_job = co_await svc->read(std::move(read_job));
  t.after_read = std::this_thread::get_id();
  co_return t;
}

class StoreServiceTest : public ::testing::Test {
 protected:
  virtual SqliteStore::Options store_options() { return SqliteStore::Options{dir_.path() + "/chatd.db", 2}; }

  void SetUp() override {
    auto store = std::make_unique<SqliteStore>(store_options());
    sqlite_ = store.get();
    service_ = std::make_unique<StoreService>(
        std::move(store), options_, [] { return kT0; },
        [this](std::size_t jobs, double, double) {
          ++batches_;
          std::size_t seen = max_batch_.load();
          while (jobs > seen && !max_batch_.compare_exchange_weak(seen, jobs)) {
          }
        },
        [this](double) { ++publishes_; });
    io_thread_ = std::thread([this] { io_.run(); });
    io_thread_id_ = io_thread_.get_id();
    // Two users and their conversation.
    alice_ = seed_user("alice");
    bob_ = seed_user("bob");
    auto open = [a = alice_, b = bob_](WriteContext& ctx) { return ctx.store.open_direct(a, b, ctx.now); };
    conversation_ = run(write_now(std::move(open))).conversation_id;
    batches_ = 0;
    max_batch_ = 0;
  }

  void TearDown() override {
    if (service_) service_->stop();
    work_.reset();
    io_thread_.join();
  }

  template <class T>
  T run(net::awaitable<T> awaitable) {
    return net::co_spawn(io_, std::move(awaitable), net::use_future).get();
  }

  template <class Fn>
  static net::awaitable<std::invoke_result_t<Fn&, WriteContext&>> write_on(StoreService* svc, Fn* fn) {
    auto job = std::move(*fn);
    auto r = co_await svc->write(std::move(job));
    co_return r;
  }

  template <class Fn>
  net::awaitable<std::invoke_result_t<Fn&, WriteContext&>> write_now(Fn fn) {
    // Keep the job in a heap cell so the coroutine parameter is a plain pointer (GCC 12).
    auto cell = std::make_shared<Fn>(std::move(fn));
    cells_.push_back(cell);
    return write_on(service_.get(), cell.get());
  }

  UserId seed_user(const std::string& name) {
    auto create = [name](WriteContext& ctx) {
      return ctx.store.create_user(chat::test::new_user(name, cat(name, "@example.com"), "h", ""), ctx.now)
          .user.id;
    };
    return run(write_now(std::move(create)));
  }

  // Starts holding the writer; returns once the gate job is running.
  std::future<int> close_gate(Gate& gate) {
    auto held = net::co_spawn(io_, hold_writer(service_.get(), &gate), net::use_future);
    gate.entered.get_future().wait();
    return held;
  }

  // Waits (without a deadline on behaviour: only a guard against hanging forever) until `n` writes
  // are queued behind the gate.
  void wait_queued(std::size_t n) {
    for (int i = 0; i < 60'000 && service_->queued_writes() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(service_->queued_writes(), n);
  }

  Seq last_seq() {
    auto read = [a = alice_, c = conversation_](chat::store::Store& s) {
      const auto conv = s.get_conversation(a, c);
      return conv ? conv->last_seq : Seq{-1};
    };
    return run(read_on(service_.get(), &read));
  }

  // `n` appends by alice spawned at once without a gate (batches form as they may); each must be
  // appended. With a recorder, their after_commit actions record into it.
  void append_all_ungated(int n, Recorder* recorder) {
    std::vector<std::future<AppendResult>> results;
    for (int i = 0; i < n; ++i) {
      results.push_back(
          net::co_spawn(io_, append(service_.get(), conversation_, alice_, i, recorder), net::use_future));
    }
    for (auto& f : results) EXPECT_EQ(f.get().outcome, AppendOutcome::appended);
  }

  template <class Fn>
  static net::awaitable<Seq> read_on(StoreService* svc, Fn* fn) {
    auto job = *fn;
    const Seq r = co_await svc->read(std::move(job));
    co_return r;
  }

  StoreService::Options options_;
  chat::test::TempDir dir_;
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  std::thread io_thread_;
  std::thread::id io_thread_id_;
  std::unique_ptr<StoreService> service_;
  SqliteStore* sqlite_ = nullptr;  // owned by service_
  std::vector<std::shared_ptr<void>> cells_;
  std::atomic<std::size_t> batches_{0};
  std::atomic<std::size_t> max_batch_{0};
  std::atomic<std::size_t> publishes_{0};
  UserId alice_ = 0;
  UserId bob_ = 0;
  ConversationId conversation_ = 0;
};

TEST_F(StoreServiceTest, ResultsResumeOnTheCallersExecutor) {
  // Goal: jobs run off the I/O thread and the awaiting coroutine resumes on its own executor.
  // Method: compare std::this_thread::get_id() inside the jobs and after each co_await with the io
  // thread's id.
  const auto t = run(probe_threads(service_.get()));
  EXPECT_EQ(t.after_write, io_thread_id_);
  EXPECT_EQ(t.after_read, io_thread_id_);
  EXPECT_NE(t.write_job, io_thread_id_);
  EXPECT_NE(t.read_job, io_thread_id_);
  EXPECT_NE(t.write_job, std::thread::id());
}

TEST_F(StoreServiceTest, ConcurrentWritesAreGroupCommitted) {
  // Goal: 500 concurrent appends all succeed with seq 1..500 and are committed as one batch (group
  // commit), and after_commit actions see them durable, in seq order. Method: hold the writer with a
  // gate, co_spawn 500 appends, wait until all 500 are queued, release.
  Gate gate;
  auto held = close_gate(gate);
  Recorder recorder;
  constexpr int kWrites = 500;
  std::vector<std::future<AppendResult>> results;
  for (int i = 0; i < kWrites; ++i) {
    const UserId sender = i % 2 == 0 ? alice_ : bob_;
    results.push_back(
        net::co_spawn(io_, append(service_.get(), conversation_, sender, i, &recorder), net::use_future));
  }
  wait_queued(kWrites);
  gate.release.set_value();
  EXPECT_EQ(held.get(), 0);

  std::vector<Seq> seqs;
  for (auto& f : results) {
    const auto r = f.get();
    ASSERT_EQ(r.outcome, AppendOutcome::appended);
    seqs.push_back(r.message.seq);
  }
  std::sort(seqs.begin(), seqs.end());
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(seqs[static_cast<std::size_t>(i)], i + 1);
  EXPECT_GT(max_batch_.load(), 1U);
  EXPECT_EQ(max_batch_.load(), static_cast<std::size_t>(kWrites));
  EXPECT_EQ(last_seq(), kWrites);

  std::lock_guard lock(recorder.mutex);
  ASSERT_EQ(recorder.seqs.size(), static_cast<std::size_t>(kWrites));
  EXPECT_TRUE(std::is_sorted(recorder.seqs.begin(), recorder.seqs.end()));
  EXPECT_TRUE(std::adjacent_find(recorder.seqs.begin(), recorder.seqs.end()) == recorder.seqs.end());
}

TEST_F(StoreServiceTest, AfterCommitRunsInCommitOrderAcrossBatches) {
  // Goal: after_commit actions run in commit order whatever the batching. Method: 300 appends
  // spawned without a gate (batches form as they may); the recorded seqs must be strictly increasing.
  Recorder recorder;
  append_all_ungated(300, &recorder);
  std::lock_guard lock(recorder.mutex);
  ASSERT_EQ(recorder.seqs.size(), 300U);
  for (std::size_t i = 0; i < recorder.seqs.size(); ++i) {
    EXPECT_EQ(recorder.seqs[i], static_cast<Seq>(i) + 1);
  }
}

// A service that commits every batch to SQLite (publish_interval 0: no append-log deferral).
class StoreServiceCommitEachBatchTest : public StoreServiceTest {
 protected:
  StoreServiceCommitEachBatchTest() { options_.publish_interval = std::chrono::milliseconds(0); }
};

TEST_F(StoreServiceCommitEachBatchTest, AfterCommitActionsSeeTheirWriteCommitted) {
  // Goal: without deferral, an after_commit action runs once its write is visible to readers.
  // Method: 300 appends without a gate; each action asks a reader for the conversation's last_seq.
  Recorder recorder;
  append_all_ungated(300, &recorder);
  std::lock_guard lock(recorder.mutex);
  EXPECT_EQ(recorder.seqs.size(), 300U);
  EXPECT_TRUE(recorder.all_visible);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 300);
}

// A service whose deferred batches are published only when a read or stop() asks (the interval
// is an hour), to see what waits for what.
class StoreServiceLongPublishTest : public StoreServiceTest {
 protected:
  StoreServiceLongPublishTest() { options_.publish_interval = std::chrono::hours(1); }
};

TEST_F(StoreServiceLongPublishTest, AReadAfterAnAcknowledgedSendSeesIt) {
  // Goal: acknowledged sends that wait to be published are seen by every read issued after the
  // acknowledgement (the read makes the writer publish), and inline reads are off meanwhile.
  // Method: three appends; SQLite's file has no rows yet (another connection sees none); a read
  // through the service sees last_seq 3; then the file has the rows and inline reads are back.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(run(append(service_.get(), conversation_, alice_, i, nullptr)).outcome,
              AppendOutcome::appended);
  }
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 0);
  EXPECT_FALSE(service_->inline_reads());
  EXPECT_EQ(publishes_.load(), 0U);
  EXPECT_EQ(last_seq(), 3);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 3);
  EXPECT_TRUE(service_->inline_reads());
  EXPECT_EQ(publishes_.load(), 1U);  // one publish, observed (chatd_store_publish_seconds)
}

TEST_F(StoreServiceLongPublishTest, StopPublishesDeferredSends) {
  // Goal: stop() publishes what is deferred: the file has every acknowledged send and nothing is
  // left to replay. Method: five appends, stop, count rows, reopen.
  for (int i = 0; i < 5; ++i) run(append(service_.get(), conversation_, alice_, i, nullptr));
  service_->stop();
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 5);
  service_.reset();
  SqliteStore reopened(SqliteStore::Options{dir_.path() + "/chatd.db", 1});
  EXPECT_EQ(reopened.replayed_at_open(), 0U);
}

TEST_F(StoreServiceLongPublishTest, AStoreErrorAfterDeferredSendsLosesNoneOfThem) {
  // Goal: a batch failing with a StoreError rolls back SQLite's open transaction, which held
  // acknowledged deferred sends; they come back from the log, in order, before later sends.
  // Method: two appends (deferred), then a gated batch with a StoreUnavailable job and an append
  // (all fail), then a read (last_seq 2) and another append (seq 3).
  for (int i = 0; i < 2; ++i) run(append(service_.get(), conversation_, alice_, i, nullptr));
  Gate gate;
  auto held = close_gate(gate);
  auto failing = net::co_spawn(io_, failing_job<StoreUnavailable>(service_.get()), net::use_future);
  auto doomed = net::co_spawn(io_, append(service_.get(), conversation_, bob_, 7, nullptr), net::use_future);
  wait_queued(2);
  gate.release.set_value();
  held.get();
  EXPECT_THROW(failing.get(), StoreUnavailable);
  EXPECT_THROW(doomed.get(), StoreUnavailable);
  EXPECT_EQ(last_seq(), 2);
  EXPECT_EQ(run(append(service_.get(), conversation_, alice_, 3, nullptr)).message.seq, 3);
}

// The interval's publishes run in the background; the first one's COMMIT is held until the test
// releases it.
class StoreServiceBackgroundPublishTest : public StoreServiceTest {
 protected:
  StoreServiceBackgroundPublishTest() { options_.publish_interval = std::chrono::milliseconds(1); }
  SqliteStore::Options store_options() override {
    auto o = StoreServiceTest::store_options();
    o.before_background_commit = [this] {
      if (held_.exchange(true)) return;
      entered_.set_value();
      release_future_.wait();
    };
    return o;
  }
  void TearDown() override {
    if (!released_) release_.set_value();
    StoreServiceTest::TearDown();
  }
  std::atomic<bool> held_{false};
  std::promise<void> entered_;
  std::promise<void> release_;
  std::shared_future<void> release_future_ = release_.get_future().share();
  bool released_ = false;
};

TEST_F(StoreServiceBackgroundPublishTest, SendsAreAcknowledgedWhileAPublishCommits) {
  // Goal: while the interval's publish commits (held here at its COMMIT), sends are still
  // acknowledged, from the append log; a read issued after them sees them all once the publish
  // ends. Method: one send (its publish starts 1 ms later and is held), three more sends must
  // complete while it is held (a 30 s guard against a hang, not a timing assertion), SQLite's file
  // has none of the four; release; a read sees last_seq 4, and so does the file.
  ASSERT_EQ(run(append(service_.get(), conversation_, alice_, 1, nullptr)).message.seq, 1);
  entered_.get_future().wait();
  std::vector<std::future<AppendResult>> sends;
  for (int i = 2; i <= 4; ++i) {
    sends.push_back(
        net::co_spawn(io_, append(service_.get(), conversation_, alice_, i, nullptr), net::use_future));
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(sends[static_cast<std::size_t>(i)].wait_for(std::chrono::seconds(30)),
              std::future_status::ready);
    const auto r = sends[static_cast<std::size_t>(i)].get();
    EXPECT_EQ(r.outcome, AppendOutcome::appended);
    EXPECT_EQ(r.message.seq, i + 2);
  }
  EXPECT_EQ(sqlite_->held_sends(), 3U);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 0);
  released_ = true;
  release_.set_value();
  EXPECT_EQ(last_seq(), 4);
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 4);
}

TEST_F(StoreServiceBackgroundPublishTest, AReadDuringAPublishWaitsWithoutStoppingSends) {
  // Goal: a read issued while a publish commits waits for it (and for the publish of what was
  // acknowledged meanwhile) in the background: sends queued after the read are still
  // acknowledged before it returns, and it sees every send acknowledged before it. Method: send 1
  // (its publish held), send 2, a read, sends 3 and 4 complete while the read cannot (the publish
  // is held), release: the read sees at least 2, a later read 4.
  ASSERT_EQ(run(append(service_.get(), conversation_, alice_, 1, nullptr)).message.seq, 1);
  entered_.get_future().wait();
  ASSERT_EQ(run(append(service_.get(), conversation_, alice_, 2, nullptr)).message.seq, 2);
  auto read = [a = alice_, c = conversation_](chat::store::Store& st) {
    const auto conv = st.get_conversation(a, c);
    return conv ? conv->last_seq : Seq{-1};
  };
  auto seen = net::co_spawn(io_, read_on(service_.get(), &read), net::use_future);
  for (int i = 3; i <= 4; ++i) {
    auto f = net::co_spawn(io_, append(service_.get(), conversation_, alice_, i, nullptr), net::use_future);
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_EQ(f.get().message.seq, i);
  }
  EXPECT_NE(seen.wait_for(std::chrono::milliseconds(0)), std::future_status::ready);
  released_ = true;
  release_.set_value();
  EXPECT_GE(seen.get(), 2);
  EXPECT_EQ(last_seq(), 4);
}

TEST_F(StoreServiceTest, DeferredSendsArePublishedWithoutAnyRead) {
  // Goal: with the default interval, deferred sends reach SQLite on their own (no read, no other
  // write). Method: one append, then poll another connection's count (a guard of 10 s against
  // hanging, not a timing assertion).
  run(append(service_.get(), conversation_, alice_, 1, nullptr));
  for (int i = 0; i < 1000 && chat::test::messages_in_file(dir_.path() + "/chatd.db") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(chat::test::messages_in_file(dir_.path() + "/chatd.db"), 1);
}

// A write whose after_commit action posts a task to `io` through transport::PostBatch (as the hub
// does); returns how many such tasks had run on `io` when the coroutine resumed.
net::awaitable<int> fanout_then_resume(StoreService* svc, net::io_context* io, std::atomic<int>* ran) {
  auto job = [io, ran](WriteContext& ctx) {
    ctx.after_commit([io, ran] { chat::transport::PostBatch::post(*io, [ran] { ++*ran; }); });
    return 0;
  };
  co_await svc->write(std::move(job));
  co_return ran->load();
}

TEST_F(StoreServiceTest, FanOutOfABatchReachesTheThreadBeforeItsCompletions) {
  // Goal: what after_commit actions post to an I/O thread through PostBatch (the hub's fan-out)
  // runs there before the completions of the same batch (a recipient's delivery is queued before
  // the sender's ack resumes). Method: a gate holds the writer while three such writes queue (one
  // batch); every coroutine must see all three fan-out tasks done when it resumes.
  Gate gate;
  auto held = close_gate(gate);
  std::atomic<int> ran{0};
  std::vector<std::future<int>> results;
  for (int i = 0; i < 3; ++i) {
    results.push_back(net::co_spawn(io_, fanout_then_resume(service_.get(), &io_, &ran), net::use_future));
  }
  wait_queued(3);
  gate.release.set_value();
  EXPECT_EQ(held.get(), 0);
  for (auto& f : results) EXPECT_EQ(f.get(), 3);
  EXPECT_EQ(max_batch_.load(), 3U);
}

TEST_F(StoreServiceTest, AFailingJobFailsAloneInItsBatch) {
  // Goal: a job that throws gets the exception and is rolled back; the other jobs of the same batch
  // commit. Method: gate, then append / throwing job / append queued together (batch of 3).
  Gate gate;
  auto held = close_gate(gate);
  Recorder recorder;
  auto first =
      net::co_spawn(io_, append(service_.get(), conversation_, alice_, 1, &recorder), net::use_future);
  auto failing = net::co_spawn(io_, failing_job<std::runtime_error>(service_.get()), net::use_future);
  auto third = net::co_spawn(io_, append(service_.get(), conversation_, bob_, 3, &recorder), net::use_future);
  wait_queued(3);
  gate.release.set_value();
  held.get();
  EXPECT_THROW(failing.get(), std::runtime_error);
  EXPECT_EQ(first.get().message.seq, 1);
  EXPECT_EQ(third.get().message.seq, 2);
  EXPECT_EQ(max_batch_.load(), 3U);
  EXPECT_EQ(last_seq(), 2);
  // The ghost user was rolled back with its job.
  auto find = [](chat::store::Store& s) { return s.find_credentials("ghost") ? Seq{1} : Seq{0}; };
  EXPECT_EQ(run(read_on(service_.get(), &find)), 0);
  std::lock_guard lock(recorder.mutex);
  EXPECT_EQ(recorder.seqs, (std::vector<Seq>{1, 2}));
}

TEST_F(StoreServiceTest, AFailingAppendInABatchOfAppendsLeavesNoGap) {
  // Goal: a job that appends and then throws, amid appends of the same batch to the same
  // conversation, is undone alone: the others get gapless seqs (in queue order) and the read
  // markers of their own last message, whatever the store deferred within the batch. Method: gate,
  // then four appends with the failing job third (batch of five).
  Gate gate;
  auto held = close_gate(gate);
  std::vector<std::future<AppendResult>> ok;
  ok.push_back(
      net::co_spawn(io_, append(service_.get(), conversation_, alice_, 1, nullptr), net::use_future));
  ok.push_back(net::co_spawn(io_, append(service_.get(), conversation_, bob_, 2, nullptr), net::use_future));
  auto failing =
      net::co_spawn(io_, append_then_fail(service_.get(), conversation_, alice_, 3), net::use_future);
  ok.push_back(
      net::co_spawn(io_, append(service_.get(), conversation_, alice_, 4, nullptr), net::use_future));
  ok.push_back(net::co_spawn(io_, append(service_.get(), conversation_, bob_, 5, nullptr), net::use_future));
  wait_queued(5);
  gate.release.set_value();
  held.get();
  EXPECT_THROW(failing.get(), std::runtime_error);
  std::vector<Seq> seqs;
  for (auto& f : ok) seqs.push_back(f.get().message.seq);
  EXPECT_EQ(seqs, (std::vector<Seq>{1, 2, 3, 4}));
  EXPECT_EQ(max_batch_.load(), 5U);
  EXPECT_EQ(last_seq(), 4);
  auto markers = [a = alice_, c = conversation_](chat::store::Store& s) {
    const auto receipts = s.receipts(a, c);
    Seq packed = 0;  // alice's read_seq * 100 + bob's
    for (const auto& r : *receipts) packed += r.user_id == a ? r.read_seq * 100 : r.read_seq;
    return packed;
  };
  EXPECT_EQ(run(read_on(service_.get(), &markers)), 304);
  // The failed job's client_msg_id is free: its message was never stored.
  auto again = net::co_spawn(io_, append(service_.get(), conversation_, alice_, 3, nullptr), net::use_future);
  const auto r = again.get();
  EXPECT_EQ(r.outcome, AppendOutcome::appended);
  EXPECT_EQ(r.message.seq, 5);
}

TEST_F(StoreServiceTest, AStoreErrorFailsTheWholeBatch) {
  // Goal: an infrastructure error (StoreError) in one job fails every job of its batch, and no
  // after_commit action runs. Method: gate, then append / job throwing StoreUnavailable / append.
  Gate gate;
  auto held = close_gate(gate);
  Recorder recorder;
  auto first =
      net::co_spawn(io_, append(service_.get(), conversation_, alice_, 1, &recorder), net::use_future);
  auto failing = net::co_spawn(io_, failing_job<StoreUnavailable>(service_.get()), net::use_future);
  auto third = net::co_spawn(io_, append(service_.get(), conversation_, bob_, 3, &recorder), net::use_future);
  wait_queued(3);
  gate.release.set_value();
  held.get();
  EXPECT_THROW(first.get(), StoreUnavailable);
  EXPECT_THROW(failing.get(), StoreUnavailable);
  EXPECT_THROW(third.get(), StoreUnavailable);
  EXPECT_EQ(last_seq(), 0);
  {
    std::lock_guard lock(recorder.mutex);
    EXPECT_TRUE(recorder.seqs.empty());
  }
  // The service keeps working afterwards.
  auto again = net::co_spawn(io_, append(service_.get(), conversation_, alice_, 1, nullptr), net::use_future);
  EXPECT_EQ(again.get().message.seq, 1);
}

TEST_F(StoreServiceTest, StopDrainsQueuedWritesThenRefuses) {
  // Goal: stop() finishes every write queued before it, and a later write fails with
  // StoreUnavailable. Method: gate, queue 50 appends, call stop() on another thread while the gate
  // holds, release; all 50 succeed; then one more write.
  Gate gate;
  auto held = close_gate(gate);
  std::vector<std::future<AppendResult>> results;
  for (int i = 0; i < 50; ++i) {
    results.push_back(
        net::co_spawn(io_, append(service_.get(), conversation_, alice_, i, nullptr), net::use_future));
  }
  wait_queued(50);
  std::thread stopper([this] { service_->stop(); });
  gate.release.set_value();
  stopper.join();
  held.get();
  for (auto& f : results) EXPECT_EQ(f.get().outcome, AppendOutcome::appended);

  auto late = net::co_spawn(io_, append(service_.get(), conversation_, alice_, 99, nullptr), net::use_future);
  EXPECT_THROW(late.get(), StoreUnavailable);
  service_->stop();  // idempotent

  // Everything queued before stop() is on disk.
  SqliteStore reopened(SqliteStore::Options{dir_.path() + "/chatd.db", 1});
  EXPECT_EQ(reopened.get_conversation(alice_, conversation_)->last_seq, 50);
}

// A service whose write queue holds at most 10 jobs.
class StoreServiceSmallQueueTest : public StoreServiceTest {
 protected:
  StoreServiceSmallQueueTest() { options_.queue_jobs_max = 10; }
};

TEST_F(StoreServiceSmallQueueTest, OverloadIsRefusedPastTheQueueLimit) {
  // Goal: with queue_jobs_max = N, N queued writes are accepted and write N+1 is refused at once
  // with StoreUnavailable. Method: N = 10, gate, queue 10, then one more.
  Gate gate;
  auto held = close_gate(gate);
  std::vector<std::future<AppendResult>> accepted;
  for (int i = 0; i < 10; ++i) {
    accepted.push_back(
        net::co_spawn(io_, append(service_.get(), conversation_, alice_, i, nullptr), net::use_future));
  }
  wait_queued(10);
  auto refused =
      net::co_spawn(io_, append(service_.get(), conversation_, alice_, 10, nullptr), net::use_future);
  EXPECT_THROW(refused.get(), StoreUnavailable);  // completes while the gate still holds
  gate.release.set_value();
  held.get();
  for (auto& f : accepted) EXPECT_EQ(f.get().outcome, AppendOutcome::appended);
  EXPECT_EQ(last_seq(), 10);
}

TEST_F(StoreServiceTest, IdsResumeAboveStoredMessagesAfterRestart) {
  // Goal: a new service on an existing file issues message ids above every stored one, even though
  // the clock is the same frozen instant. Method: append, restart the service, append, compare ids.
  auto before = run(append(service_.get(), conversation_, alice_, 1, nullptr));
  service_->stop();
  service_.reset();
  auto store = std::make_unique<SqliteStore>(SqliteStore::Options{dir_.path() + "/chatd.db", 1});
  service_ = std::make_unique<StoreService>(std::move(store), StoreService::Options{}, [] { return kT0; });
  auto after = run(append(service_.get(), conversation_, alice_, 2, nullptr));
  ASSERT_EQ(after.outcome, AppendOutcome::appended);
  EXPECT_GT(after.message.id, before.message.id);
  EXPECT_EQ(after.message.seq, 2);
}

// --- Commit window -------------------------------------------------------------------------
//
// A service of its own (no users needed: the jobs write nothing, every batch still commits) whose
// observer records each batch's size and whether it waited in a window.
class CommitWindowRig {
 public:
  explicit CommitWindowRig(StoreService::Options options) {
    auto store = std::make_unique<SqliteStore>(SqliteStore::Options{dir_.path() + "/chatd.db", 1});
    service = std::make_unique<StoreService>(
        std::move(store), options, [] { return kT0; },
        [this](std::size_t jobs, double, double window_seconds) {
          std::lock_guard lock(mutex_);
          sizes_.push_back(jobs);
          if (window_seconds > 0) ++windows_;
        });
    io_thread_ = std::thread([this] { io.run(); });
  }
  ~CommitWindowRig() {
    service->stop();
    work_.reset();
    io_thread_.join();
  }

  // Queues `n` writes from the io thread, back to back.
  std::vector<std::future<int>> spawn(int n) {
    std::promise<std::vector<std::future<int>>> spawned;
    net::post(io, [this, n, &spawned] {
      std::vector<std::future<int>> results;
      for (int i = 0; i < n; ++i) results.push_back(net::co_spawn(io, noop(service.get()), net::use_future));
      spawned.set_value(std::move(results));
    });
    return spawned.get_future().get();
  }

  std::vector<std::size_t> sizes() {
    std::lock_guard lock(mutex_);
    return sizes_;
  }
  std::size_t windows() {
    std::lock_guard lock(mutex_);
    return windows_;
  }

  static net::awaitable<int> noop(StoreService* svc) {
    auto job = [](WriteContext&) { return 1; };
    const int r = co_await svc->write(std::move(job));
    co_return r;
  }

  net::io_context io;
  std::unique_ptr<StoreService> service;

 private:
  chat::test::TempDir dir_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io);
  std::thread io_thread_;
  std::mutex mutex_;
  std::vector<std::size_t> sizes_;
  std::size_t windows_ = 0;
};

using Clock = std::chrono::steady_clock;

TEST(StoreServiceCommitWindow, PacedWritesShareCommitsWhenTheWindowIsOn) {
  // Goal: writes arriving faster than commit_window_min_rate but each alone at the writer (paced
  // ~every 250 us) are grouped by the window into fewer, larger batches; with the window off
  // nothing waits. Method: a producer thread queues 200 writes with a sleep between them, once
  // with a 5 ms window (min rate 300/s, 8 jobs), once with the window off.
  auto paced = [](CommitWindowRig& rig) {
    std::vector<std::future<int>> results;
    for (int i = 0; i < 200; ++i) {
      for (auto& f : rig.spawn(1)) results.push_back(std::move(f));
      std::this_thread::sleep_for(std::chrono::microseconds(250));
    }
    for (auto& f : results) EXPECT_EQ(f.get(), 1);
  };
  StoreService::Options on;
  on.commit_window = std::chrono::milliseconds(5);
  on.commit_window_min_rate = 300;
  on.commit_window_jobs = 8;
  CommitWindowRig windowed(on);
  paced(windowed);
  const auto sizes = windowed.sizes();
  EXPECT_GT(windowed.windows(), 0U);
  EXPECT_LT(sizes.size(), 100U) << "200 paced writes should need well under 100 commits";
  EXPECT_GT(*std::max_element(sizes.begin(), sizes.end()), 2U);

  StoreService::Options off = on;
  off.commit_window = std::chrono::microseconds(0);
  CommitWindowRig plain(off);
  paced(plain);
  EXPECT_EQ(plain.windows(), 0U);
}

TEST(StoreServiceCommitWindow, WindowEndsAsSoonAsEnoughJobsAreQueued) {
  // Goal: a window ends when commit_window_jobs are queued, not at its deadline. Method: a 10 s
  // window at any rate; after 1 s idle (rate estimate ~1/s: expected fill time seconds) 8 writes
  // are queued back to back; they must commit as one batch of 8, long before the deadline.
  StoreService::Options options;
  options.commit_window = std::chrono::seconds(10);
  options.commit_window_min_rate = 1e-6;
  options.commit_window_jobs = 8;
  CommitWindowRig rig(options);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto started = Clock::now();
  auto results = rig.spawn(8);
  for (auto& f : results) EXPECT_EQ(f.get(), 1);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));
  EXPECT_EQ(rig.sizes(), (std::vector<std::size_t>{8}));
}

TEST(StoreServiceCommitWindow, LoneWritesAtALowRateAreNotDelayed) {
  // Goal: below commit_window_min_rate no write waits, however long the window may be. Method: a
  // 2 s window, the default min rate (2000/s); 20 writes one at a time, 5 ms apart (~200/s).
  StoreService::Options options;
  options.commit_window = std::chrono::seconds(2);
  CommitWindowRig rig(options);
  for (int i = 0; i < 20; ++i) {
    const auto started = Clock::now();
    auto results = rig.spawn(1);
    EXPECT_EQ(results.front().get(), 1);
    EXPECT_LT(Clock::now() - started, std::chrono::seconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(rig.windows(), 0U);
  EXPECT_EQ(rig.sizes().size(), 20U);
}

TEST(StoreServiceCommitWindow, WindowsThatGainNothingStop) {
  // Goal: one fast closed-loop writer (each write waits for the previous one) is not held by a
  // window on every write: windows gain nothing, so they mostly stop. Method: a 20 ms window at
  // any rate; 100 sequential writes; at most a few windows plus one probe in 16 may wait.
  StoreService::Options options;
  options.commit_window = std::chrono::milliseconds(20);
  options.commit_window_min_rate = 1e-6;
  CommitWindowRig rig(options);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(rig.spawn(1).front().get(), 1);
  EXPECT_GT(rig.windows(), 0U);
  EXPECT_LE(rig.windows(), 15U);
}

TEST(StoreServiceCommitWindow, StopDuringAWindowReturnsPromptly) {
  // Goal: stop() ends a waiting window at once and still commits what is queued. Method: a 10 s
  // window that wants 1000 jobs; one write; 200 ms later it is still waiting; stop() must return
  // well before the deadline and the write must succeed.
  StoreService::Options options;
  options.commit_window = std::chrono::seconds(10);
  options.commit_window_min_rate = 1e-6;
  options.commit_window_jobs = 1000;
  CommitWindowRig rig(options);
  auto results = rig.spawn(1);
  EXPECT_EQ(results.front().wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  const auto started = Clock::now();
  rig.service->stop();
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(2));
  EXPECT_EQ(results.front().get(), 1);
  EXPECT_EQ(rig.windows(), 1U);
}

}  // namespace

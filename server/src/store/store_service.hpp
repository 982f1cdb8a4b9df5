#pragma once

#include "domain/snowflake.hpp"
#include "net/asio.hpp"
#include "store/errors.hpp"
#include "store/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace chat::store {

// What a write job sees on the writer thread.
class WriteContext {
 public:
  WriteContext(Store& target, domain::SnowflakeGenerator& ids, TimeMs batch_now)
      : store(target), now(batch_now), ids_(ids) {}

  Store& store;
  const TimeMs now;  // one clock reading per batch
  MessageId next_id() { return ids_.next(now); }
  // Runs on the writer thread after the batch is durable, in commit order (fan-out goes here:
  // it is what keeps every recipient's view in seq order). Dropped if the batch fails.
  void after_commit(std::function<void()> action) { after_.push_back(std::move(action)); }
  std::vector<std::function<void()>> take_after() { return std::exchange(after_, {}); }

 private:
  domain::SnowflakeGenerator& ids_;
  std::vector<std::function<void()>> after_;
};

// Runs a synchronous Store off the I/O threads and makes it awaitable:
// - writes go to one writer thread that commits everything queued as one transaction (group
//   commit); a job that throws is undone alone (the batch is then replayed with a savepoint per
//   job), so a write job must be replayable: it may run twice, with side effects only through
//   the store and after_commit;
// - reads go to a small pool;
// - results resume the awaiting coroutine on its own executor.
// Overload (more than queue_jobs_max writes waiting) is refused at once with StoreUnavailable
// rather than queued without bound.
//
// Commit window: most of the writer's CPU is per commit (fdatasync, SQLite's begin/commit, WAL
// locks), not per job, and at a few thousand jobs/s a commit holds only one or two. So when jobs
// arrive faster than commit_window_min_rate and the writer finds fewer than commit_window_jobs
// queued, it waits up to commit_window (or the expected time for the rest to arrive at the
// measured rate, if shorter) before running the batch, and starts at once when the rest are
// queued. Below that rate nothing waits: a lone job is committed as before. Nor does it wait while
// windows gain nothing (a fast closed-loop client alone: see window_for).
class StoreService {
 public:
  struct Options {
    int read_threads = 2;
    std::size_t batch_jobs_max = 1024;
    std::size_t queue_jobs_max = 100'000;
    std::uint32_t node_id = 0;
    std::chrono::microseconds commit_window{1000};  // 0: never wait
    double commit_window_min_rate = 2000;           // jobs/s (smoothed over ~50 ms)
    std::size_t commit_window_jobs = 32;            // a window ends once this many are queued
    // How long a batch the store made durable but not yet visible (Store::commit_batch_deferred)
    // may wait before the writer publishes it when no read asks sooner. 0: every batch commits.
    std::chrono::milliseconds publish_interval{1000};
  };
  using ClockMs = std::function<TimeMs()>;
  // After each batch: its jobs, how long it ran, and how long the writer waited in a commit window
  // before it (0 when it did not).
  using BatchObserver = std::function<void(std::size_t jobs, double seconds, double window_seconds)>;
  // After each publish of deferred batches: how long it took (the writer runs no batch meanwhile).
  using PublishObserver = std::function<void(double seconds)>;

  StoreService(std::unique_ptr<Store> store,
               Options options,
               ClockMs clock,
               BatchObserver observer = {},
               PublishObserver publish_observer = {});
  StoreService(const StoreService&) = delete;
  StoreService& operator=(const StoreService&) = delete;
  ~StoreService();

  // Finishes every queued write, then stops the threads. Idempotent.
  void stop();

  // Awaitable; must be awaited (the job is handed over when the coroutine suspends on it).
  //
  // Only pointers cross async_initiate: with use_awaitable its arguments become parameters of a
  // coroutine, and GCC 12 copies such parameters bitwise, which breaks any object holding a
  // std::string (seen as frees of addresses inside a coroutine frame under ASan).
  template <class Fn>
  auto write(Fn&& fn) {
    using F = std::decay_t<Fn>;
    using R = std::invoke_result_t<F&, WriteContext&>;
    F* owned = new F(std::forward<Fn>(fn));
    return net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [this, owned](auto handler) {
          enqueue_write(std::make_unique<WriteJob<R, F, decltype(handler)>>(std::unique_ptr<F>(owned),
                                                                            std::move(handler)));
        },
        net::use_awaitable);
  }

  template <class Fn>
  auto read(Fn&& fn) {
    using F = std::decay_t<Fn>;
    using R = std::invoke_result_t<F&, Store&>;
    F* owned = new F(std::forward<Fn>(fn));
    return net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [this, owned](auto handler) {
          auto work = net::make_work_guard(net::get_associated_executor(handler));
          auto run = [this, f = std::unique_ptr<F>(owned), handler = std::move(handler),
                      work = std::move(work)]() mutable {
            std::exception_ptr error;
            R result{};
            try {
              result = (*f)(*store_);
            } catch (...) {
              error = std::current_exception();
            }
            f.reset();
            auto ex = work.get_executor();
            net::post(ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
              std::move(handler)(error, std::move(result));
            });
          };
          // A read sees every write acknowledged before it was issued: while acknowledged writes
          // wait to be published, it waits for the writer to publish them (at once, for it).
          if (unpublished_.load(std::memory_order_acquire)) {
            auto shared = std::make_shared<decltype(run)>(std::move(run));
            if (wait_for_publish([shared] { (*shared)(); })) return;
            net::post(readers_, [shared] { (*shared)(); });
            return;
          }
          net::post(readers_, std::move(run));
        },
        net::use_awaitable);
  }

  // A small bounded read (one history page) on the caller's thread, for stores whose reads are
  // cheap (Store::cheap_reads): saves the two thread hand-offs of read(). Callers check
  // inline_reads() first and use read() otherwise.
  // False while acknowledged writes wait to be published (read() then waits for them).
  bool inline_reads() const noexcept {
    return inline_reads_ && !unpublished_.load(std::memory_order_acquire);
  }
  template <class Fn>
  auto read_inline(Fn& fn) {
    return fn(*store_);
  }

  std::size_t queued_writes() const;

 private:
  struct WriteJobBase {
    virtual ~WriteJobBase() = default;
    virtual void run(WriteContext& ctx) = 0;
    virtual void fail(std::exception_ptr error) = 0;
    // Where the awaiting coroutine resumes; deliver() must run there.
    virtual net::any_io_executor executor() const = 0;
    virtual void deliver() = 0;
    bool failed = false;
    std::vector<std::function<void()>> after;
  };

  template <class R, class F, class Handler>
  struct WriteJob final : WriteJobBase {
    WriteJob(std::unique_ptr<F> f, Handler h)
        : fn(std::move(f)),
          handler(std::move(h)),
          work(net::make_work_guard(net::get_associated_executor(handler))) {}
    void run(WriteContext& ctx) override { result = (*fn)(ctx); }
    void fail(std::exception_ptr e) override {
      failed = true;
      error = e;
    }
    net::any_io_executor executor() const override { return work.get_executor(); }
    void deliver() override {
      fn.reset();
      std::move(handler)(error, std::move(result));
      work.reset();
    }
    std::unique_ptr<F> fn;
    Handler handler;
    net::executor_work_guard<net::associated_executor_t<Handler>> work;
    R result{};
    std::exception_ptr error;
  };

  void enqueue_write(std::unique_ptr<WriteJobBase> job);
  // Queues `read` (to be posted to the read pool) until a publish begun after it ends; false if
  // there is nothing to wait for any more (the caller posts it itself).
  bool wait_for_publish(std::function<void()> read);
  // Commits the batch (deferred if the store can and publishing is on).
  void commit(bool* deferred);
  // Publishes deferred batches if a read waits, the interval is up, or the writer stops: in the
  // background when the interval is up (Store::begin_publish), at once otherwise. Ends a
  // background publish that is over (or that a read or the stop waits for).
  void maybe_publish(bool force);
  // Reads waiting for a publish go to the read pool; `published`: nothing is left unpublished.
  void release_readers(bool published);
  // The reads that came before publish number `number` began go to the read pool.
  void release_readers_before(std::uint64_t number);
  void writer_loop();
  std::chrono::steady_clock::duration window_for(std::size_t queued,
                                                 std::chrono::steady_clock::time_point now);
  void run_batch(std::vector<std::unique_ptr<WriteJobBase>>& batch, double window_seconds);
  void run_optimistic(std::vector<std::unique_ptr<WriteJobBase>>& batch, TimeMs now);
  void run_with_savepoints(std::vector<std::unique_ptr<WriteJobBase>>& batch, TimeMs now);
  static void complete(std::vector<std::unique_ptr<WriteJobBase>>& batch);

  std::unique_ptr<Store> store_;
  Options options_;
  ClockMs clock_;
  BatchObserver observer_;
  PublishObserver publish_observer_;
  domain::SnowflakeGenerator ids_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WriteJobBase>> queue_;
  bool stopping_ = false;
  bool writer_idle_ = false;  // the writer waits on cv_ (guarded by mutex_)
  // The writer waits in a commit window until commit_window_jobs are queued (guarded by mutex_).
  bool window_open_ = false;
  std::uint64_t arrivals_ = 0;  // writes ever queued (guarded by mutex_)
  // The writer's estimate of the arrival rate, and of the jobs a window gains (writer thread only).
  double rate_ = 0;
  std::uint64_t rate_arrivals_ = 0;
  std::chrono::steady_clock::time_point rate_at_ = std::chrono::steady_clock::now();
  double window_gain_ = 1;
  std::uint64_t windows_skipped_ = 0;
  bool inline_reads_ = false;
  // Deferred batches: `deferred_` and `publish_due_` are the writer's; `unpublished_` is what
  // readers check (set before a deferred batch's completions leave, cleared under mutex_ after a
  // publish), and `read_waiters_` (guarded by mutex_) the reads waiting for the next publish.
  bool deferred_ = false;
  bool batch_deferred_ = false;  // the last commit() deferred (writer thread)
  // A publish runs in the background (Store::begin_publish; writer thread), since when, and
  // whether the store said it is over (guarded by mutex_).
  bool publishing_ = false;
  std::chrono::steady_clock::time_point publish_started_{};
  bool publish_over_ = false;
  std::chrono::steady_clock::time_point publish_due_{};
  std::atomic<bool> unpublished_{false};
  // A read waiting for a publish, and how many publishes had begun when it came: any publish
  // begun after that makes every write acknowledged before the read visible.
  struct ReadWaiter {
    std::uint64_t after = 0;
    std::function<void()> read;
  };
  std::vector<ReadWaiter> read_waiters_;
  std::uint64_t publishes_begun_ = 0;  // guarded by mutex_
  std::uint64_t publish_number_ = 0;   // of the background publish running (writer thread)
  net::thread_pool readers_;
  std::thread writer_;
};

}  // namespace chat::store

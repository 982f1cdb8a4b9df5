#include "store/store_service.hpp"

#include "net/post_batch.hpp"
#include "obs/log.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <limits>

namespace chat::store {

StoreService::StoreService(std::unique_ptr<Store> store,
                           Options options,
                           ClockMs clock,
                           BatchObserver observer,
                           PublishObserver publish_observer)
    : store_(std::move(store)),
      options_(options),
      clock_(std::move(clock)),
      observer_(std::move(observer)),
      publish_observer_(std::move(publish_observer)),
      ids_(options.node_id),
      readers_(static_cast<std::size_t>(std::max(1, options.read_threads))) {
  inline_reads_ = store_->cheap_reads();
  ids_.resume_after(store_->max_message_id());
  writer_ = std::thread([this] {
    obs::name_this_thread("chatd-writer");
    writer_loop();
  });
}

StoreService::~StoreService() {
  stop();
}

void StoreService::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  readers_.join();
}

std::size_t StoreService::queued_writes() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void StoreService::enqueue_write(std::unique_ptr<WriteJobBase> job) {
  bool stopping = false;
  {
    std::unique_lock lock(mutex_);
    stopping = stopping_;
    if (!stopping && queue_.size() < options_.queue_jobs_max) {
      queue_.push_back(std::move(job));
      ++arrivals_;
      // Wake the writer only if it sleeps (a busy writer takes the job with its next batch) or its
      // commit window has what it waits for, and after unlocking: woken under the lock, it would at
      // once block on the mutex we still hold.
      const bool wake = writer_idle_ || (window_open_ && queue_.size() >= options_.commit_window_jobs);
      writer_idle_ = false;
      if (wake) window_open_ = false;
      lock.unlock();
      if (wake) cv_.notify_one();
      return;
    }
  }
  job->fail(
      std::make_exception_ptr(StoreUnavailable(stopping ? "store is shutting down" : "store overloaded")));
  auto ex = job->executor();
  net::post(ex, [job = std::move(job)] { job->deliver(); });
}

bool StoreService::wait_for_publish(std::function<void()> read) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    // Cleared under the mutex after a publish: if it is still set, that publish is yet to come and
    // will take this read with it.
    if (!unpublished_.load(std::memory_order_relaxed)) return false;
    read_waiters_.push_back(ReadWaiter{publishes_begun_, std::move(read)});
    wake = writer_idle_;
    writer_idle_ = false;
  }
  if (wake) cv_.notify_one();
  return true;
}

void StoreService::writer_loop() {
  std::vector<std::unique_ptr<WriteJobBase>> batch;
  for (;;) {
    double window_seconds = 0;
    {
      std::unique_lock lock(mutex_);
      while (!stopping_ && queue_.empty()) {
        if (publishing_) {
          if (publish_over_) break;  // reads that wait are released when it (or the next) ends
        } else if (deferred_ &&
                   (!read_waiters_.empty() || std::chrono::steady_clock::now() >= publish_due_)) {
          break;
        }
        writer_idle_ = true;
        if (deferred_ && !publishing_) {
          cv_.wait_until(lock, publish_due_);
        } else {
          cv_.wait(lock);
        }
      }
      writer_idle_ = false;
      if (queue_.empty()) {
        lock.unlock();
        maybe_publish(stopping_);
        if (stopping_) return;  // everything queued is done and published
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (const auto window = window_for(queue_.size(), now); window.count() > 0) {
        const auto before = arrivals_;
        window_open_ = true;
        cv_.wait_until(lock, now + window,
                       [this] { return stopping_ || queue_.size() >= options_.commit_window_jobs; });
        window_open_ = false;
        window_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - now).count();
        window_gain_ += 0.25 * (static_cast<double>(arrivals_ - before) - window_gain_);
      }
      while (!queue_.empty() && batch.size() < options_.batch_jobs_max) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    run_batch(batch, window_seconds);
    batch.clear();
    maybe_publish(false);
  }
}

void StoreService::commit(bool* deferred) {
  if (options_.publish_interval.count() > 0) {
    *deferred = store_->commit_batch_deferred();
  } else {
    store_->commit_batch();
    *deferred = false;
  }
}

void StoreService::maybe_publish(bool force) {
  const auto now = std::chrono::steady_clock::now();
  bool waiting = false;
  bool over = false;
  {
    std::lock_guard lock(mutex_);
    waiting = !read_waiters_.empty();
    over = publish_over_;
  }
  const auto observe = [this](std::chrono::steady_clock::time_point since) {
    if (publish_observer_)
      publish_observer_(std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
  };
  if (publishing_) {
    if (!over && !force) return;
    bool still_deferred = true;
    bool failed = false;
    try {
      store_->finish_publish(/*wait=*/true, &still_deferred);
      observe(publish_started_);
    } catch (const std::exception& e) {
      // As below: the store keeps the batches and publishes them at the next due time.
      obs::log_warn(std::string("store: publish failed: ") + e.what());
      failed = true;
    }
    publishing_ = false;
    {
      std::lock_guard lock(mutex_);
      publish_over_ = false;
    }
    if (failed) {
      publish_due_ = now + options_.publish_interval;
      release_readers(false);
      return;
    }
    if (!still_deferred) {
      release_readers(true);
      return;
    }
    // Sends acknowledged during the publish wait for the next one; reads that came before it
    // began see every write acknowledged before them now.
    deferred_ = true;
    publish_due_ = publish_started_ + options_.publish_interval;
    release_readers_before(publish_number_);
    {
      std::lock_guard lock(mutex_);
      waiting = !read_waiters_.empty();
    }
  }
  if (!deferred_) return;
  if (!force && !waiting && now < publish_due_) return;
  try {
    if (!force) {
      // The interval is up or a read waits: in the background if the store can (a read then
      // waits for this publish, or the next one if it came after this one began).
      if (store_->begin_publish([this] {
            {
              std::lock_guard lock(mutex_);
              publish_over_ = true;
            }
            cv_.notify_one();
          })) {
        publishing_ = true;
        publish_started_ = now;
        std::lock_guard lock(mutex_);
        publish_number_ = ++publishes_begun_;
        return;
      }
    } else {
      store_->publish();
    }
    observe(now);
  } catch (const std::exception& e) {
    // The store keeps the batches (SqliteStore: in its log) and tries again at the next due time;
    // the reads waiting now go on rather than hang, and see what is published.
    obs::log_warn(std::string("store: publish failed: ") + e.what());
    publish_due_ = now + options_.publish_interval;
    release_readers(false);
    return;
  }
  release_readers(true);
}

void StoreService::release_readers(bool published) {
  if (published) {
    // Before the waiters go: a read that checks unpublished_ after this posts itself.
    std::lock_guard lock(mutex_);
    deferred_ = false;
    unpublished_.store(false, std::memory_order_release);
  }
  release_readers_before(std::numeric_limits<std::uint64_t>::max());
}

void StoreService::release_readers_before(std::uint64_t number) {
  std::vector<ReadWaiter> ready;
  {
    std::lock_guard lock(mutex_);
    auto first = std::stable_partition(read_waiters_.begin(), read_waiters_.end(),
                                       [number](const ReadWaiter& w) { return w.after >= number; });
    std::move(first, read_waiters_.end(), std::back_inserter(ready));
    read_waiters_.erase(first, read_waiters_.end());
  }
  for (auto& w : ready) net::post(readers_, std::move(w.read));
}

// How long the writer waits for more jobs before running a batch of `queued` (see Options). The
// rate is an exponentially weighted average over ~50 ms of the arrivals between two batches (a
// burst of a few jobs at a low rate does not open a window). Called with mutex_ held.
std::chrono::steady_clock::duration StoreService::window_for(std::size_t queued,
                                                             std::chrono::steady_clock::time_point now) {
  constexpr double tau = 0.05;
  const double dt = std::chrono::duration<double>(now - rate_at_).count();
  if (dt > 0) {
    const double instant = static_cast<double>(arrivals_ - rate_arrivals_) / dt;
    rate_ += (1 - std::exp(-dt / tau)) * (instant - rate_);
    rate_at_ = now;
    rate_arrivals_ = arrivals_;
  }
  if (stopping_ || options_.commit_window.count() <= 0 || rate_ <= 0 ||
      rate_ < options_.commit_window_min_rate || queued >= options_.commit_window_jobs)
    return {};
  // A high rate from few clients that each wait for their previous write (closed loop) brings
  // nothing during a window: those clients are waiting on us. When recent windows gained less
  // than half a job on average, only every 16th eligible batch still tries one, to notice when
  // waiting pays again.
  if (window_gain_ < 0.5 && ++windows_skipped_ % 16 != 0) return {};
  // The expected time for the missing jobs to arrive, capped by the configured window.
  const auto fill =
      std::chrono::duration<double>(static_cast<double>(options_.commit_window_jobs - queued) / rate_);
  return std::min<std::chrono::steady_clock::duration>(
      options_.commit_window, std::chrono::duration_cast<std::chrono::steady_clock::duration>(fill));
}

// A batch first runs optimistically, every job straight in the one transaction: a savepoint per
// job makes SQLite copy every page the job touches into its statement journal (and free it again),
// which cost more than the job itself. If a job throws, the whole attempt is rolled back, that job
// keeps its exception, and the batch is replayed with a savepoint per job (a job failing again is
// undone alone). So a failing job still fails alone, and write jobs must be replayable: no side
// effects but their store calls and after_commit actions (which are discarded with the attempt).
void StoreService::run_batch(std::vector<std::unique_ptr<WriteJobBase>>& batch, double window_seconds) {
  const auto started = std::chrono::steady_clock::now();
  const TimeMs now = clock_();
  bool failed = false;
  batch_deferred_ = false;
  try {
    if (store_->optimistic_batches()) {
      run_optimistic(batch, now);
    } else {
      run_with_savepoints(batch, now);
    }
  } catch (...) {
    failed = true;
    store_->rollback_batch();
    const auto error = std::current_exception();
    for (auto& job : batch) {
      job->after.clear();
      if (!job->failed) job->fail(error);
    }
  }
  if (!failed) {
    if (batch_deferred_) {
      // Before the completions leave: a read issued after an acknowledgement waits for the publish.
      if (!deferred_) publish_due_ = std::chrono::steady_clock::now() + options_.publish_interval;
      deferred_ = true;
      unpublished_.store(true, std::memory_order_release);
    } else if (deferred_) {
      // Committed with everything before it: nothing is left to publish.
      release_readers(true);
    }
  }
  if (observer_) {
    observer_(batch.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
              window_seconds);
  }
  // The fan-out (hub posts) and the completions of the whole batch leave as one post per I/O
  // thread: on the sender's thread the deliveries of a batch and its acks then go out in the
  // same flush.
  transport::PostBatch posts;
  for (auto& job : batch) {
    for (auto& action : job->after) action();
    job->after.clear();
  }
  complete(batch);
}

// The optimistic pass (see run_batch): every job straight in the batch's transaction; on the first
// job that throws, roll back and replay with a savepoint per job. Throws on a StoreError.
void StoreService::run_optimistic(std::vector<std::unique_ptr<WriteJobBase>>& batch, TimeMs now) {
  bool replay = false;
  {
    WriteContext ctx(*store_, ids_, now);
    store_->begin_batch();
    for (auto& job : batch) {
      try {
        job->run(ctx);
        job->after = ctx.take_after();
      } catch (const StoreError&) {
        throw;  // the connection or the disk is in trouble: fail the whole batch
      } catch (...) {
        ctx.take_after();
        job->fail(std::current_exception());
        replay = true;
        break;
      }
    }
  }
  if (!replay) {
    commit(&batch_deferred_);
    return;
  }
  store_->rollback_batch();
  for (auto& job : batch) job->after.clear();
  run_with_savepoints(batch, now);
}

// The replay of a batch in which a job threw: each job that has not failed yet runs in its own
// savepoint. Throws (for run_batch to fail the batch) on a StoreError.
void StoreService::run_with_savepoints(std::vector<std::unique_ptr<WriteJobBase>>& batch, TimeMs now) {
  WriteContext ctx(*store_, ids_, now);
  store_->begin_batch();
  for (auto& job : batch) {
    if (job->failed) continue;
    store_->begin_job();
    try {
      job->run(ctx);
      store_->end_job();
      job->after = ctx.take_after();
    } catch (const StoreError&) {
      throw;
    } catch (...) {
      store_->rollback_job();
      ctx.take_after();
      job->fail(std::current_exception());
    }
  }
  commit(&batch_deferred_);
}

// Hands the results back: one post per distinct executor (usually one per I/O thread) instead of
// one per job, so a batch of 1000 sends wakes each I/O thread once. Jobs of one executor resume in
// commit order. Called inside run_batch's PostBatch: an io_context executor's completions join
// the fan-out already queued for that thread (they run after it).
void StoreService::complete(std::vector<std::unique_ptr<WriteJobBase>>& batch) {
  std::vector<std::pair<net::any_io_executor, std::vector<std::unique_ptr<WriteJobBase>>>> groups;
  for (auto& job : batch) {
    auto ex = job->executor();
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == ex; });
    if (it == groups.end()) {
      groups.emplace_back(ex, std::vector<std::unique_ptr<WriteJobBase>>{});
      it = std::prev(groups.end());
      it->second.reserve(batch.size());
    }
    it->second.push_back(std::move(job));
  }
  for (auto& [ex, jobs] : groups) {
    auto task = [jobs = std::move(jobs)]() mutable {
      for (auto& job : jobs) job->deliver();
      jobs.clear();
    };
    if (auto* io = transport::PostBatch::context_of(ex)) {
      transport::PostBatch::post(*io, std::move(task));  // with the batch's fan-out to that thread
    } else {
      net::post(ex, std::move(task));
    }
  }
}

}  // namespace chat::store

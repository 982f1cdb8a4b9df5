#include "store/store_service.hpp"

#include <chrono>

namespace chat::store {

StoreService::StoreService(std::unique_ptr<Store> store,
                           Options options,
                           ClockMs clock,
                           BatchObserver observer)
    : store_(std::move(store)),
      options_(options),
      clock_(std::move(clock)),
      observer_(std::move(observer)),
      ids_(options.node_id),
      readers_(static_cast<std::size_t>(std::max(1, options.read_threads))) {
  ids_.resume_after(store_->max_message_id());
  writer_ = std::thread([this] { writer_loop(); });
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
    std::lock_guard lock(mutex_);
    stopping = stopping_;
    if (!stopping && queue_.size() < options_.queue_jobs_max) {
      queue_.push_back(std::move(job));
      cv_.notify_one();
      return;
    }
  }
  job->fail(
      std::make_exception_ptr(StoreUnavailable(stopping ? "store is shutting down" : "store overloaded")));
  job->complete();
}

void StoreService::writer_loop() {
  std::vector<std::unique_ptr<WriteJobBase>> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is done
      while (!queue_.empty() && batch.size() < options_.batch_jobs_max) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    run_batch(batch);
    batch.clear();
  }
}

void StoreService::run_batch(std::vector<std::unique_ptr<WriteJobBase>>& batch) {
  const auto started = std::chrono::steady_clock::now();
  WriteContext ctx(*store_, ids_, clock_());
  try {
    store_->begin_batch();
    for (auto& job : batch) {
      store_->begin_job();
      try {
        job->run(ctx);
        store_->end_job();
        job->after = ctx.take_after();
      } catch (const StoreError&) {
        throw;  // the connection or the disk is in trouble: fail the whole batch
      } catch (...) {
        store_->rollback_job();
        ctx.take_after();
        job->fail(std::current_exception());
      }
    }
    store_->commit_batch();
  } catch (...) {
    store_->rollback_batch();
    const auto error = std::current_exception();
    for (auto& job : batch) {
      job->after.clear();
      if (!job->failed) job->fail(error);
    }
  }
  if (observer_) {
    observer_(batch.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  for (auto& job : batch) {
    for (auto& action : job->after) action();
    job->complete();
  }
}

}  // namespace chat::store

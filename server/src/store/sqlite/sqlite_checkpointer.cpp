#include "store/sqlite/sqlite_checkpointer.hpp"

#include "obs/log.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/sqlite/sqlite_wal_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>

namespace chat::store::sqlite::detail {

Checkpointer::Checkpointer(const std::string& path, int frames, int frames_max)
    : frames_(frames),
      frames_max_(frames_max),
      finish_gap_(std::max(16, frames / 256)),
      db_(std::make_unique<Db>(path, Db::Mode::read_write, write_behind_vfs())) {
  db_->exec("PRAGMA user_version");  // a first read opens the WAL on this connection
  thread_ = std::thread([this] {
    obs::name_this_thread("chatd-checkpt");
    loop();
  });
}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void Checkpointer::attach(sqlite3* writer) {
  sqlite3_wal_hook(writer, &Checkpointer::on_commit, this);
}

std::uint64_t Checkpointer::checkpoints() const noexcept {
  std::lock_guard lock(mutex_);
  return done_;
}

std::uint64_t Checkpointer::inline_checkpoints() const noexcept {
  std::lock_guard lock(mutex_);
  return inline_;
}

std::uint64_t Checkpointer::finished_checkpoints() const noexcept {
  std::lock_guard lock(mutex_);
  return finished_;
}

// Writer thread, right after a commit, outside any transaction. Cheap when below the threshold.
int Checkpointer::on_commit(void* self_ptr, sqlite3* db, const char* schema, int frames) {
  auto* self = static_cast<Checkpointer*>(self_ptr);
  if (frames < self->frames_) return SQLITE_OK;
  if (frames >= self->frames_max_) {
    // The background checkpoints did not let the WAL restart: do what SQLite would have done.
    // SQLITE_BUSY (the background checkpoint holds the checkpoint lock) is fine: next commit.
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    std::lock_guard lock(self->mutex_);
    ++self->inline_;
    return SQLITE_OK;
  }
  // A pass copied everything up to `backfilled`: finish it here if few frames came since (the WAL
  // then restarts at the next transaction), else have the thread go again now.
  if (const int backfilled = self->backfilled_.load(std::memory_order_relaxed); backfilled > 0) {
    self->backfilled_.store(0, std::memory_order_relaxed);
    if (frames >= backfilled && frames - backfilled <= self->finish_gap_) {
      int log_frames = 0;
      int copied = 0;
      const int rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
      std::lock_guard lock(self->mutex_);
      if (rc == SQLITE_OK && copied == log_frames) ++self->finished_;
      return SQLITE_OK;
    }
    if (frames > backfilled && frames - backfilled <= self->frames_ / 8) {
      self->wake();
      return SQLITE_OK;
    }
  }
  // Wake the checkpointer once `frames_ / 4` frames were added since its last pass: one started
  // after every commit above the threshold retried at every commit what a reader's snapshot kept it
  // from copying, and under load fsynced the database at every pass. Not rarer: the writer's own
  // checkpoint at frames_max copies what the last pass left, and that delays every queued send.
  // A WAL shorter than what the last pass saw has restarted from its beginning since.
  const int seen = self->seen_.load(std::memory_order_relaxed);
  if (frames >= seen && frames - seen < self->frames_ / 4) return SQLITE_OK;
  self->wake();
  return SQLITE_OK;
}

void Checkpointer::wake() {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = !wanted_;
    wanted_ = true;
  }
  if (first) cv_.notify_one();
}

void Checkpointer::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return wanted_ || stopping_; });
    if (stopping_) return;
    wanted_ = false;
    lock.unlock();
    int log_frames = 0;
    int copied = 0;
    const int rc =
        sqlite3_wal_checkpoint_v2(db_->handle(), "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      // A disk error here also reaches the writer's next commit, which reports it to its callers.
      obs::log_warn(std::string("background WAL checkpoint failed: ") + sqlite3_errstr(rc));
    }
    if (rc == SQLITE_OK) {
      seen_.store(log_frames, std::memory_order_relaxed);
      if (log_frames > 0 && copied == log_frames) backfilled_.store(log_frames, std::memory_order_relaxed);
    }
    lock.lock();
    ++done_;
  }
}

}  // namespace chat::store::sqlite::detail

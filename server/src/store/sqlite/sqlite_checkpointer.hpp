#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

// Copies the WAL back into the database file on its own thread and connection, so the writer
// never stops for a checkpoint. SQLite's default (wal_autocheckpoint) runs the checkpoint inside
// the commit that crosses the threshold: that commit and every send queued behind it wait while a
// few hundred pages are written and the database file is fsynced (2-6 ms on the benchmark VM, once
// per ~800 commits at 1000 msg/s: a visible share of the p99).
//
// attach() replaces the writer connection's auto-checkpoint with a WAL hook: after a commit that
// leaves at least `frames` frames in the WAL, and `frames / 4` more than its last pass saw, it
// wakes this thread, which runs a PASSIVE checkpoint (it never blocks the writer or readers). The WAL
// restarts from its beginning at the writer's next transaction once a checkpoint has copied every frame.
// Under constant writes a concurrent checkpoint may keep falling a few frames short; if the WAL reaches
// `frames_max` the writer checkpoints inline as before (bounded growth), which a passive checkpoint just
// before makes short.
namespace chat::store::sqlite::detail {

class Db;

class Checkpointer {
 public:
  Checkpointer(const std::string& path, int frames, int frames_max);
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  ~Checkpointer();  // stops the thread; SQLite checkpoints once more when the last connection closes

  // Installs the WAL hook on the writer connection (writer thread, before its first write).
  void attach(sqlite3* writer);

  std::uint64_t checkpoints() const noexcept;         // completed by this thread
  std::uint64_t inline_checkpoints() const noexcept;  // made by the writer at frames_max

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
  void loop();

  const int frames_;
  const int frames_max_;
  std::unique_ptr<Db> db_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<int> seen_{0};  // WAL frames when the last background checkpoint ran
  bool wanted_ = false;
  bool stopping_ = false;
  std::uint64_t done_ = 0;
  std::uint64_t inline_ = 0;
  std::thread thread_;
};

}  // namespace chat::store::sqlite::detail

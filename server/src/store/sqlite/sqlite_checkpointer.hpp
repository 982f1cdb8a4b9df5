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
//
// Under constant writes a background pass always falls short by the frames committed while it ran,
// so the WAL would never restart and grew to `frames_max`, where the writer checkpointed inline: a
// 264 MB WAL (disk, page cache, a longer wal-index for readers to search) whose first fill extends
// the file at every commit (an fdatasync that allocates blocks took ~2x one that overwrites in a
// micro-benchmark on the benchmark VM). So once a pass has copied every frame it saw, the writer
// finishes the job inline at its next commit if at most `finish_gap` (frames / 256, at least 16)
// frames came since: a few dozen pages and an fsync of the database, once per cycle; the WAL restarts
// at the next transaction. With up to frames / 8 since, it wakes this thread for another, shorter
// pass right away; with more (high rates: the gap never closes) nothing changes. At W2's 1000 msg/s
// the WAL now cycles through the same ~83 MB of file, overwriting (1 000 msg/s p99, median of 8
// steps: 1.7 against 2.3 ms in two interleaved pairs); at 8000-12000 msg/s it still reaches `frames_max`,
// where the writer checkpoints inline as before (bounded growth; a finish gap of frames / 32 made the p99
// there worse). The pass right away is what keeps the WAL cycling at 2000-4000 msg/s (83 MB; without
// it 264 MB, with a worse p99 there and at 8000); at 16 000 msg/s it keeps this thread copying back
// to back (twice its CPU, ~5 % of chatd's). Limiting it to passes whose gap shrinks saved that CPU and
// lost the cycling at 4000 msg/s: not done (bench/results/s7-changes.md section 3).

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

  std::uint64_t checkpoints() const noexcept;           // completed by this thread
  std::uint64_t inline_checkpoints() const noexcept;    // made by the writer at frames_max
  std::uint64_t finished_checkpoints() const noexcept;  // passes the writer finished (WAL restarts)

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
  void wake();  // asks the thread for a pass (once, however many ask before it starts)
  void loop();

  const int frames_;
  const int frames_max_;
  const int finish_gap_;
  std::unique_ptr<Db> db_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<int> seen_{0};        // WAL frames when the last background checkpoint ran
  std::atomic<int> backfilled_{0};  // a pass copied every one of these frames; 0: none to finish
  bool wanted_ = false;
  bool stopping_ = false;
  std::uint64_t done_ = 0;
  std::uint64_t inline_ = 0;
  std::uint64_t finished_ = 0;
  std::thread thread_;
};

}  // namespace chat::store::sqlite::detail

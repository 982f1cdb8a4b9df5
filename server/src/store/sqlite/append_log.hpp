#pragma once

#include "domain/types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The append log: what makes a batch of sends durable without committing it to SQLite.
//
// A send touches about two scattered 4 KiB B-tree leaves (the conversation's (conversation_id,
// seq) index and the sender's (sender_id, client_msg_id) index), and SQLite's WAL holds whole
// pages: a group commit of N sends writes ~2N pages to the WAL and fdatasyncs them, and the
// checkpointer copies them back. Here a batch of sends is written as one frame of logical
// records (~150 bytes each) and fdatasynced; the sends are acknowledged; and the rows, already
// inserted in the writer's open transaction, reach SQLite at the next publish (SqliteStore::
// publish, every few tens of ms or when a reader needs them), one transaction for many batches,
// so a leaf that many batches changed is written once.
//
// Invariant: the log's current run holds exactly the acknowledged sends that are not yet in a
// durable SQLite commit. A durable commit ends the run (reset(): the next frame starts at offset
// 0 with a new random run id, so what is left of the old run is never read again, and the old
// run's first frame is invalidated, unsynced). Replay is idempotent (INSERT OR IGNORE of rows with
// their ids and seqs, markers only move up), so an old run that a power cut brings back replays
// rows that are already there, harmlessly.
//
// File layout: frames from offset 0, each
//   header (40 bytes, little-endian): magic "CDAL", version u16, reserved u16, payload length u32,
//     record count u32, database id u64, run id u64, frame index u64 (0, 1, 2, ... in a run);
//   payload: the records;
//   BLAKE2b-128 of header and payload (libsodium).
// Recovery reads frames from offset 0 while each is whole, checks, belongs to this database
// (the id stored in it, so a log left beside a new database is ignored), carries the first
// frame's run id and the next index. A torn last frame is a batch that was never acknowledged.
// The file keeps its size across runs (overwriting blocks already allocated makes fdatasync
// cheaper than extending the file), and is created with kInitialBytes of zeros.
namespace chat::store::sqlite::detail {

struct LoggedMessage {
  domain::MessageId id = 0;
  domain::ConversationId conversation_id = 0;
  domain::Seq seq = 0;
  domain::UserId sender_id = 0;
  domain::TimeMs created_at = 0;
  std::optional<domain::MessageId> reply_to;
  std::string client_msg_id;
  std::string body;
};

class AppendLog {
 public:
  static constexpr std::size_t kInitialBytes = std::size_t{4} << 20;
  static constexpr std::size_t kHeaderBytes = 40;
  static constexpr std::size_t kMacBytes = 16;

  // Opens or creates the log at `path` for the database identified by `db_id`. A run may grow to
  // `max_bytes`; fits() says when the next frame would pass it. Throws StoreUnavailable.
  AppendLog(std::string path, std::uint64_t db_id, std::size_t max_bytes);
  AppendLog(const AppendLog&) = delete;
  AppendLog& operator=(const AppendLog&) = delete;
  ~AppendLog();

  // The records of the run found in the file (what a crash left unpublished), in order. Frames
  // that fail a check end the run; `ignored_frames` counts a first frame of another database.
  std::vector<LoggedMessage> recover();
  std::uint64_t ignored_frames() const noexcept { return ignored_frames_; }

  // The frame being built (the writer's batch). mark()/truncate_to() undo a job's records.
  struct Mark {
    std::size_t bytes = 0;
    std::uint32_t records = 0;
  };
  void add(domain::MessageId id,
           domain::ConversationId conversation,
           domain::Seq seq,
           domain::UserId sender,
           domain::TimeMs created_at,
           std::optional<domain::MessageId> reply_to,
           std::string_view client_msg_id,
           std::string_view body);
  Mark mark() const noexcept { return {pending_.size(), records_}; }
  void truncate_to(Mark mark) noexcept;
  bool has_pending() const noexcept { return records_ > 0; }
  // False if writing the pending frame would take the run past max_bytes.
  bool fits() const noexcept;
  // Writes the pending frame and fdatasyncs it: when this returns, the batch is durable. On an
  // error (StoreUnavailable) the frame is dropped and the run ends where it was.
  void commit();
  void discard_pending() noexcept;
  // The run is in a durable SQLite commit: the next frame starts a new run at offset 0.
  void reset() noexcept;
  // The records of the current run written so far (to redo them after SQLite rolled them back).
  std::vector<LoggedMessage> committed() const;
  bool run_empty() const noexcept { return offset_ == 0; }
  std::size_t run_bytes() const noexcept { return offset_; }

  // Frames written and bytes written (tests, metrics).
  std::uint64_t frames_written() const noexcept { return frames_written_; }

 private:
  void begin_frame();

  std::string path_;
  int fd_ = -1;
  std::uint64_t db_id_;
  std::size_t max_bytes_;
  std::uint64_t run_id_ = 0;
  std::uint64_t frame_index_ = 0;  // of the next frame in this run
  std::size_t offset_ = 0;         // where the next frame goes
  std::string pending_;            // header placeholder + records of the frame being built
  std::uint32_t records_ = 0;
  std::uint64_t frames_written_ = 0;
  std::uint64_t ignored_frames_ = 0;
};

}  // namespace chat::store::sqlite::detail

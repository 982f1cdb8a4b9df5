#pragma once

#include <cstdint>

// A VFS shim over the platform's default VFS ("unix") that gathers a connection's writes to its
// WAL file into one write per commit.
//
// SQLite writes a WAL frame as two calls (the 24-byte frame header, then the page), so a group
// commit of N dirty pages is 2N pwrite()s, each a system call that also walks the page cache for
// every 4 KiB folio it touches (a frame is 4120 bytes: the page straddles two folios and the
// header a third). On the W2 benchmark that was 36 % of the writer thread's CPU. Here consecutive
// writes to the WAL are copied into a buffer and written with one pwrite() when SQLite syncs the
// WAL (every commit under synchronous = FULL), reads it, asks its size, truncates it, closes it,
// when a write is not contiguous, or when the buffer is full.
//
// Durability is unchanged: nothing SQLite considers committed is ever only in the buffer, because
// a commit's frames become visible (the wal-index update) only after xSync, and xSync writes the
// buffer first. A write error found at the flush is returned by the call that flushed (xSync at a
// commit: the transaction fails as if the write had failed), and the buffer is dropped.
//
// Write-behind. A flush of the buffer starts the writeback of what it wrote (sync_file_range) and
// waits for the previous flush's: a big commit (a publish of the append log's transaction, several
// MB) reaches the device 1 MiB at a time instead of all at its fsync. Through write_behind_vfs()
// (the checkpointer's connection) writes to the main database file wait the same way every
// 512 KiB. What that buys: the append log's fdatasync, which every acknowledgement waits for, no
// longer queues behind tens of MB of WAL or checkpoint writes (W2 at 20 000 msg/s, 3 interleaved
// pairs: p99 medians 9.1 vs 17.2 ms, bench/results/s9-changes.md). The WAL's and the database's fsyncs
// are unchanged, so durability is too.
//
// Files other than WAL files (and, through write_behind_vfs(), main database files) are opened
// straight through the default VFS (no indirection).
namespace chat::store::sqlite::detail {

// Registers the shim once (not as the default VFS) and returns its name for sqlite3_open_v2().
const char* wal_write_combining_vfs();
// The same shim, plus write-behind on main database files (for the checkpointer's connection), or
// nullptr if the shim could not be registered.
const char* write_behind_vfs();

struct WalWriteStats {
  std::uint64_t calls = 0;               // xWrite calls SQLite made on WAL files opened through the shim
  std::uint64_t writes = 0;              // pwrite()s the shim made for them
  std::uint64_t write_behind_waits = 0;  // sync_file_range waits (WAL flushes and database writes)
};
// Process-wide counters (relaxed): for tests and the benchmark notes.
WalWriteStats wal_write_stats() noexcept;

}  // namespace chat::store::sqlite::detail

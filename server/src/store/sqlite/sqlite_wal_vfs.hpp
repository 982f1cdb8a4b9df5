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
// Files other than WAL files are opened straight through the default VFS (no indirection).
namespace chat::store::sqlite::detail {

// Registers the shim once (not as the default VFS) and returns its name for sqlite3_open_v2().
const char* wal_write_combining_vfs();

struct WalWriteStats {
  std::uint64_t calls = 0;   // xWrite calls SQLite made on WAL files opened through the shim
  std::uint64_t writes = 0;  // pwrite()s the shim made for them
};
// Process-wide counters (relaxed): for tests and the benchmark notes.
WalWriteStats wal_write_stats() noexcept;

}  // namespace chat::store::sqlite::detail

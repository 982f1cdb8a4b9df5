#include "store/sqlite/sqlite_wal_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <unistd.h>

namespace chat::store::sqlite::detail {
namespace {

constexpr char kName[] = "chatd-wal";
// 256 frames of 4 KiB pages: a group commit of the benchmarks' sizes in one write. Allocated at a
// WAL file's first write, so only the writer connection's WAL handle has one.
constexpr sqlite3_int64 kBufferSize = 1 << 20;
// The unix VFS masks a write's length to 17 bits (seekAndWriteFd: nBuf &= 0x1ffff), so one xWrite
// of 128 KiB or more fails as SQLITE_FULL: the buffer goes out in pieces below that.
constexpr sqlite3_int64 kMaxWrite = 31 * 4096;

std::atomic<std::uint64_t> g_calls{0};
std::atomic<std::uint64_t> g_writes{0};
std::atomic<std::uint64_t> g_waits{0};

sqlite3_vfs* g_real = nullptr;  // the default VFS the shim delegates to
sqlite3_vfs g_vfs{};
sqlite3_vfs g_wb_vfs{};  // the same, and write-behind on main database files (the checkpointer)
constexpr char kWriteBehindName[] = "chatd-wal-wb";

struct WalFile {
  sqlite3_file base;     // base.pMethods = &kWalMethods
  sqlite3_file* real;    // the default VFS's file, stored right after this struct
  char* buffer;          // kBufferSize bytes, or nullptr until the first write
  sqlite3_int64 offset;  // file offset of buffer[0]
  sqlite3_int64 length;  // bytes held
  // Write-behind (see the header): a descriptor of the same file for sync_file_range (-1: none),
  // the range whose writeback was started last (WAL), bytes written since the last wait (database).
  int fd;
  sqlite3_int64 started_offset;
  sqlite3_int64 started_length;
  sqlite3_int64 unsynced;
};

constexpr int kRealOffset = static_cast<int>((sizeof(WalFile) + 15) & ~std::size_t{15});

WalFile* wal(sqlite3_file* f) {
  return reinterpret_cast<WalFile*>(f);
}
const sqlite3_io_methods& real_methods(WalFile* w) {
  return *w->real->pMethods;
}

// Straight to the file, bypassing the buffer (which must be empty or already flushed).
int write_through(WalFile* w, const void* data, int amount, sqlite3_int64 offset) {
  g_writes.fetch_add(1, std::memory_order_relaxed);
  return real_methods(w).xWrite(w->real, data, amount, offset);
}

// Write-behind: how much a WAL file's flushes or a database file's writes (through the
// write-behind VFS) may put in the device's queue before the writer of them waits for it.
constexpr sqlite3_int64 kWriteBehind = sqlite3_int64{512} << 10;

int flush(WalFile* w) {
  int rc = SQLITE_OK;
  for (sqlite3_int64 done = 0; done < w->length && rc == SQLITE_OK; done += kMaxWrite) {
    const auto n = std::min(kMaxWrite, w->length - done);
    rc = write_through(w, w->buffer + done, static_cast<int>(n), w->offset + done);
  }
  if (rc == SQLITE_OK && w->fd >= 0 && w->length > 0) {
    // Start this range's writeback, then wait for the previous one's: at most two buffers are in
    // the device's queue at a time, instead of a whole commit at its fsync.
    ::sync_file_range(w->fd, w->offset, w->length, SYNC_FILE_RANGE_WRITE);
    if (w->started_length > 0) {
      ::sync_file_range(w->fd, w->started_offset, w->started_length,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      g_waits.fetch_add(1, std::memory_order_relaxed);
    }
    w->started_offset = w->offset;
    w->started_length = w->length;
  }
  w->length = 0;  // written or failed: either way not written again
  return rc;
}

// A database file's write (the checkpointer copying pages back): every kWriteBehind bytes, wait
// until what was written so far is on the device, so that the checkpoint's fsync does not put
// tens of MB in front of the append log's fdatasync.
int db_write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* w = wal(f);
  const int rc = real_methods(w).xWrite(w->real, data, amount, offset);
  if (rc == SQLITE_OK && w->fd >= 0) {
    w->unsynced += amount;
    if (w->unsynced >= kWriteBehind) {
      ::sync_file_range(w->fd, 0, 0,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      g_waits.fetch_add(1, std::memory_order_relaxed);
      w->unsynced = 0;
    }
  }
  return rc;
}

int wal_close(sqlite3_file* f) {
  WalFile* w = wal(f);
  const int flushed = flush(w);
  const int closed = real_methods(w).xClose(w->real);
  sqlite3_free(w->buffer);
  w->buffer = nullptr;
  if (w->fd >= 0) ::close(w->fd);
  w->fd = -1;
  return flushed != SQLITE_OK ? flushed : closed;
}

int wal_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  WalFile* w = wal(f);
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  return real_methods(w).xRead(w->real, out, amount, offset);
}

int wal_write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* w = wal(f);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (w->buffer == nullptr) {
    w->buffer = static_cast<char*>(sqlite3_malloc64(kBufferSize));
    if (w->buffer == nullptr) return write_through(w, data, amount, offset);
  }
  // Appends to what is held, or overwrites part of it (SQLite rewrites a frame of the open
  // transaction in place when the same page changes again).
  if (w->length > 0 && offset >= w->offset && offset <= w->offset + w->length &&
      offset + amount <= w->offset + kBufferSize) {
    std::memcpy(w->buffer + (offset - w->offset), data, static_cast<std::size_t>(amount));
    w->length = std::max(w->length, offset - w->offset + amount);
    return SQLITE_OK;
  }
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  if (amount > kBufferSize) return write_through(w, data, amount, offset);
  std::memcpy(w->buffer, data, static_cast<std::size_t>(amount));
  w->offset = offset;
  w->length = amount;
  return SQLITE_OK;
}

int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = wal(f);
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  return real_methods(w).xTruncate(w->real, size);
}

int wal_sync(sqlite3_file* f, int flags) {
  WalFile* w = wal(f);
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  return real_methods(w).xSync(w->real, flags);
}

int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
  WalFile* w = wal(f);
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  return real_methods(w).xFileSize(w->real, size);
}

int wal_lock(sqlite3_file* f, int level) {
  WalFile* w = wal(f);
  return real_methods(w).xLock(w->real, level);
}
int wal_unlock(sqlite3_file* f, int level) {
  WalFile* w = wal(f);
  return real_methods(w).xUnlock(w->real, level);
}
int wal_check_reserved_lock(sqlite3_file* f, int* out) {
  WalFile* w = wal(f);
  return real_methods(w).xCheckReservedLock(w->real, out);
}
int wal_file_control(sqlite3_file* f, int op, void* arg) {
  WalFile* w = wal(f);
  // A size hint or chunk change may touch the file: it sees what was written so far.
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  return real_methods(w).xFileControl(w->real, op, arg);
}
int wal_sector_size(sqlite3_file* f) {
  WalFile* w = wal(f);
  return real_methods(w).xSectorSize(w->real);
}
int wal_device_characteristics(sqlite3_file* f) {
  WalFile* w = wal(f);
  return real_methods(w).xDeviceCharacteristics(w->real);
}
// Shared memory and memory maps belong to the database file, never the WAL; passed on regardless.
int wal_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  WalFile* w = wal(f);
  return real_methods(w).xShmMap(w->real, region, size, extend, out);
}
int wal_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  WalFile* w = wal(f);
  return real_methods(w).xShmLock(w->real, offset, n, flags);
}
void wal_shm_barrier(sqlite3_file* f) {
  WalFile* w = wal(f);
  real_methods(w).xShmBarrier(w->real);
}
int wal_shm_unmap(sqlite3_file* f, int delete_flag) {
  WalFile* w = wal(f);
  return real_methods(w).xShmUnmap(w->real, delete_flag);
}
int wal_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  WalFile* w = wal(f);
  if (const int rc = flush(w); rc != SQLITE_OK) return rc;
  return real_methods(w).xFetch(w->real, offset, amount, out);
}
int wal_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  WalFile* w = wal(f);
  return real_methods(w).xUnfetch(w->real, offset, p);
}

const sqlite3_io_methods kWalMethods = {
    3,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    wal_shm_map,
    wal_shm_lock,
    wal_shm_barrier,
    wal_shm_unmap,
    wal_fetch,
    wal_unfetch,
};
// A main database file opened through the write-behind VFS: the same pass-through methods (with
// no buffer, a flush does nothing), and write-behind on its writes.
const sqlite3_io_methods kDbMethods = [] {
  sqlite3_io_methods methods = kWalMethods;
  methods.xWrite = db_write;
  return methods;
}();

int shim_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  const bool is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  const bool is_db = vfs == &g_wb_vfs && (flags & SQLITE_OPEN_MAIN_DB) != 0;
  // Neither: the default VFS's file lives at `file` itself (szOsFile covers it) and keeps its own
  // methods.
  if (!is_wal && !is_db) return g_real->xOpen(g_real, name, file, flags, out_flags);
  WalFile* w = wal(file);
  w->fd = -1;
  w->started_offset = 0;
  w->started_length = 0;
  w->unsynced = 0;
  w->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  w->real->pMethods = nullptr;
  w->buffer = nullptr;
  w->offset = 0;
  w->length = 0;
  const int rc = g_real->xOpen(g_real, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    // SQLite calls xClose only for a file whose pMethods is set: close the real one here.
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    w->base.pMethods = nullptr;
    return rc;
  }
  // The methods above are version 3; a default VFS older than that would not have xShmMap.
  if (w->real->pMethods->iVersion < 3) {
    w->real->pMethods->xClose(w->real);
    w->base.pMethods = nullptr;
    return SQLITE_CANTOPEN;
  }
  if (name != nullptr) w->fd = ::open(name, O_RDONLY | O_CLOEXEC);
  w->base.pMethods = is_wal ? &kWalMethods : &kDbMethods;
  return SQLITE_OK;
}

int shim_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return g_real->xDelete(g_real, name, sync_dir);
}
int shim_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_real->xAccess(g_real, name, flags, out);
}
int shim_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_real->xFullPathname(g_real, name, n, out);
}
void* shim_dl_open(sqlite3_vfs*, const char* name) {
  return g_real->xDlOpen(g_real, name);
}
void shim_dl_error(sqlite3_vfs*, int n, char* out) {
  g_real->xDlError(g_real, n, out);
}
void (*shim_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return g_real->xDlSym(g_real, handle, symbol);
}
void shim_dl_close(sqlite3_vfs*, void* handle) {
  g_real->xDlClose(g_real, handle);
}
int shim_randomness(sqlite3_vfs*, int n, char* out) {
  return g_real->xRandomness(g_real, n, out);
}
int shim_sleep(sqlite3_vfs*, int microseconds) {
  return g_real->xSleep(g_real, microseconds);
}
int shim_current_time(sqlite3_vfs*, double* out) {
  return g_real->xCurrentTime(g_real, out);
}
int shim_get_last_error(sqlite3_vfs*, int n, char* out) {
  return g_real->xGetLastError(g_real, n, out);
}
int shim_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return g_real->xCurrentTimeInt64(g_real, out);
}
int shim_set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr p) {
  return g_real->xSetSystemCall(g_real, name, p);
}
sqlite3_syscall_ptr shim_get_system_call(sqlite3_vfs*, const char* name) {
  return g_real->xGetSystemCall(g_real, name);
}
const char* shim_next_system_call(sqlite3_vfs*, const char* name) {
  return g_real->xNextSystemCall(g_real, name);
}

}  // namespace

namespace {
const char* wb_name = nullptr;
}

const char* wal_write_combining_vfs() {
  static std::once_flag once;
  static const char* name = nullptr;
  std::call_once(once, [] {
    g_real = sqlite3_vfs_find(nullptr);
    if (g_real == nullptr || g_real->iVersion < 3) return;  // no shim: callers open with the default
    g_vfs.iVersion = 3;
    g_vfs.szOsFile = kRealOffset + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = kName;
    g_vfs.xOpen = shim_open;
    g_vfs.xDelete = shim_delete;
    g_vfs.xAccess = shim_access;
    g_vfs.xFullPathname = shim_full_pathname;
    g_vfs.xDlOpen = shim_dl_open;
    g_vfs.xDlError = shim_dl_error;
    g_vfs.xDlSym = shim_dl_sym;
    g_vfs.xDlClose = shim_dl_close;
    g_vfs.xRandomness = shim_randomness;
    g_vfs.xSleep = shim_sleep;
    g_vfs.xCurrentTime = shim_current_time;
    g_vfs.xGetLastError = shim_get_last_error;
    g_vfs.xCurrentTimeInt64 = shim_current_time_int64;
    g_vfs.xSetSystemCall = shim_set_system_call;
    g_vfs.xGetSystemCall = shim_get_system_call;
    g_vfs.xNextSystemCall = shim_next_system_call;
    g_wb_vfs = g_vfs;
    g_wb_vfs.zName = kWriteBehindName;
    if (sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK) name = kName;
    if (name != nullptr && sqlite3_vfs_register(&g_wb_vfs, 0) == SQLITE_OK) wb_name = kWriteBehindName;
  });
  return name;
}

const char* write_behind_vfs() {
  wal_write_combining_vfs();
  return wb_name;
}

WalWriteStats wal_write_stats() noexcept {
  return {g_calls.load(std::memory_order_relaxed), g_writes.load(std::memory_order_relaxed),
          g_waits.load(std::memory_order_relaxed)};
}

}  // namespace chat::store::sqlite::detail

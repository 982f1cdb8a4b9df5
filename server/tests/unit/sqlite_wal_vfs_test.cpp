// The WAL write-combining VFS (store/sqlite/sqlite_wal_vfs): fewer writes, same bytes, same
// durability. Real SQLite files in a temp dir; the reader connections use the default VFS.
#include "store/sqlite/sqlite_wal_vfs.hpp"

#include "store/sqlite/sqlite_db.hpp"
#include "test_util.hpp"

#include <sqlite3.h>

#include <gtest/gtest.h>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using chat::store::sqlite::detail::Db;
using chat::store::sqlite::detail::wal_write_combining_vfs;
using chat::store::sqlite::detail::wal_write_stats;

class WalVfsTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/t.db"; }

  std::unique_ptr<Db> open_writer(int cache_pages = 2000) {
    const char* vfs = wal_write_combining_vfs();
    EXPECT_NE(vfs, nullptr);
    auto db = std::make_unique<Db>(path(), Db::Mode::read_write, vfs);
    db->exec("PRAGMA journal_mode = WAL");
    db->exec("PRAGMA synchronous = FULL");
    db->exec("PRAGMA wal_autocheckpoint = 0");  // keep every frame in the WAL: readers read them there
    db->exec("PRAGMA cache_size = " + std::to_string(cache_pages));
    db->exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, b BLOB NOT NULL)");
    return db;
  }

  // Through the default VFS, as chatd's readers and the checkpointer open the file.
  std::int64_t count_from_reader() {
    Db reader(path(), Db::Mode::read_only);
    return scalar(reader, kCount);
  }

  static std::int64_t scalar(Db& db, std::string_view sql) {
    auto s = db.prepare(sql);
    EXPECT_TRUE(s.step());
    return s.int64(0);
  }

  static std::string integrity(Db& db) {
    auto s = db.prepare(kIntegrity);
    EXPECT_TRUE(s.step());
    return s.text(0);
  }

  static constexpr std::string_view kCount = "SELECT count(*) FROM t";
  static constexpr std::string_view kIntegrity = "PRAGMA integrity_check";
  static constexpr std::string_view kInsert = "INSERT INTO t (n, b) VALUES (?1, randomblob(?2))";

  chat::test::TempDir dir_;
};

TEST_F(WalVfsTest, AGroupCommitIsOneWriteAndReadersSeeEveryRow) {
  auto writer = open_writer();
  const auto before = wal_write_stats();
  writer->exec("BEGIN IMMEDIATE");
  // ~700 pages: more than the 1 MiB buffer and far more than the 128 KiB the unix VFS writes at once.
  for (int i = 0; i < 700; ++i) writer->prepare(kInsert).bind(1, i).bind(2, 3000).run();
  writer->exec("COMMIT");
  const auto after = wal_write_stats();
  const auto calls = after.calls - before.calls;
  const auto writes = after.writes - before.writes;
  EXPECT_GE(calls, 1400u);  // two per frame: header and page
  EXPECT_LE(writes, calls / 20) << "calls " << calls << " writes " << writes;
  EXPECT_EQ(count_from_reader(), 700);
  Db reader(path(), Db::Mode::read_only);
  EXPECT_EQ(scalar(reader, "SELECT sum(length(b)) FROM t"), 700 * 3000);
  EXPECT_EQ(integrity(reader), "ok");
}

TEST_F(WalVfsTest, BigCommitsAndCheckpointsWriteBehind) {
  // Goal: a commit of several MB waits for its earlier flushes' writeback as it goes (write-behind),
  // a checkpoint through write_behind_vfs() waits every 512 KiB of database writes, and the data
  // is intact. Method: a ~8 MB commit through the shim, a checkpoint on a connection opened with
  // write_behind_vfs(), the stats' wait counter, a reader's count and integrity check.
  auto writer = open_writer();
  auto before = wal_write_stats();
  writer->exec("BEGIN IMMEDIATE");
  for (int i = 0; i < 2000; ++i) writer->prepare(kInsert).bind(1, i).bind(2, 3900).run();
  writer->exec("COMMIT");
  auto after = wal_write_stats();
  EXPECT_GE(after.write_behind_waits - before.write_behind_waits, 5u);  // ~8 flushes of 1 MiB
  const char* wb = chat::store::sqlite::detail::write_behind_vfs();
  ASSERT_NE(wb, nullptr);
  Db checkpointer(path(), Db::Mode::read_write, wb);
  before = wal_write_stats();
  checkpointer.exec("PRAGMA wal_checkpoint(PASSIVE)");
  after = wal_write_stats();
  EXPECT_GE(after.write_behind_waits - before.write_behind_waits, 10u);  // ~8 MB in 512 KiB steps
  Db reader(path(), Db::Mode::read_only);
  EXPECT_EQ(scalar(reader, kCount), 2000);
  EXPECT_EQ(scalar(reader, "SELECT sum(length(b)) FROM t"), 2000 * 3900);
  EXPECT_EQ(integrity(reader), "ok");
}

TEST_F(WalVfsTest, EverySmallCommitIsVisibleAtOnceInOneWrite) {
  auto writer = open_writer();
  for (int i = 1; i <= 30; ++i) {
    const auto before = wal_write_stats();
    writer->exec("BEGIN IMMEDIATE");
    writer->prepare(kInsert).bind(1, i).bind(2, 100).run();
    writer->exec("COMMIT");
    const auto after = wal_write_stats();
    EXPECT_EQ(after.writes - before.writes, 1u) << "commit " << i;
    EXPECT_EQ(count_from_reader(), i);
  }
}

TEST_F(WalVfsTest, PagesSpilledInsideATransactionAreReadBackAndRewritten) {
  // A 10-page cache: the transaction's pages spill to the WAL before COMMIT, are read back from
  // it, and frames of this transaction are rewritten in place when their page changes again.
  auto writer = open_writer(10);
  writer->exec("BEGIN IMMEDIATE");
  for (int i = 0; i < 2000; ++i) writer->prepare(kInsert).bind(1, i).bind(2, 200).run();
  writer->exec("SAVEPOINT s");
  writer->exec("UPDATE t SET n = n + 1");
  writer->exec("ROLLBACK TO s");
  writer->exec("RELEASE s");
  writer->exec("UPDATE t SET n = n * 2 WHERE id % 3 = 0");
  EXPECT_EQ(scalar(*writer, "SELECT count(*) FROM t"), 2000);
  EXPECT_EQ(
      scalar(*writer, "SELECT sum(n) FROM t"), 2000 * 1999 / 2 + [] {
        std::int64_t extra = 0;  // n = id - 1; rows with id % 3 == 0 doubled
        for (int id = 3; id <= 2000; id += 3) extra += id - 1;
        return extra;
      }());
  writer->exec("COMMIT");
  Db reader(path(), Db::Mode::read_only);
  EXPECT_EQ(scalar(reader, "SELECT sum(n) FROM t"), scalar(*writer, "SELECT sum(n) FROM t"));
  EXPECT_EQ(integrity(reader), "ok");
}

TEST_F(WalVfsTest, CommittedRowsSurviveAProcessThatDiesWithoutClosing) {
  open_writer().reset();  // schema and WAL mode, then closed
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // No destructors, no close: whatever is still buffered is lost with the process.
    Db* writer = open_writer().release();
    for (int i = 0; i < 20; ++i) {
      writer->exec("BEGIN IMMEDIATE");
      writer->prepare(kInsert).bind(1, i).bind(2, 500).run();
      writer->exec("COMMIT");
    }
    writer->exec("BEGIN IMMEDIATE");
    for (int i = 0; i < 50; ++i) writer->prepare(kInsert).bind(1, -1).bind(2, 500).run();
    _exit(0);  // the open transaction is never committed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(count_from_reader(), 20);
  Db reader(path(), Db::Mode::read_only);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM t WHERE n < 0"), 0);
  EXPECT_EQ(integrity(reader), "ok");
}

TEST_F(WalVfsTest, ACheckpointThroughAnotherConnectionCopiesTheBufferedCommits) {
  auto writer = open_writer();
  writer->exec("BEGIN IMMEDIATE");
  for (int i = 0; i < 300; ++i) writer->prepare(kInsert).bind(1, i).bind(2, 1000).run();
  writer->exec("COMMIT");
  {
    Db other(path(), Db::Mode::read_write);
    other.exec("PRAGMA user_version");  // a first read opens the WAL on this connection
    int log = 0;
    int copied = 0;
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(other.handle(), "main", SQLITE_CHECKPOINT_TRUNCATE, &log, &copied),
              SQLITE_OK);
    EXPECT_EQ(log, 0);  // TRUNCATE: everything copied and the WAL emptied
  }
  // The writer goes on after the WAL restarted under it.
  writer->exec("BEGIN IMMEDIATE");
  writer->prepare(kInsert).bind(1, 300).bind(2, 1000).run();
  writer->exec("COMMIT");
  EXPECT_EQ(count_from_reader(), 301);
  Db reader(path(), Db::Mode::read_only);
  EXPECT_EQ(integrity(reader), "ok");
}

}  // namespace

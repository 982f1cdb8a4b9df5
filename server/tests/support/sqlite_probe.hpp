#pragma once

#include <sqlite3.h>

#include <string>

namespace chat::test {

// Messages a separate read-only connection sees in the database file at `path`: what is committed
// to SQLite, whatever the store under test holds in its own transaction. -1 if the file cannot be
// read.
inline long long messages_in_file(const std::string& path) {
  sqlite3* db = nullptr;
  long long n = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM messages", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
      n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return n;
}

}  // namespace chat::test

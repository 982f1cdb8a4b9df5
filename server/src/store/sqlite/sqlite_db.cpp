#include "store/sqlite/sqlite_db.hpp"

#include "store/errors.hpp"

#include <sqlite3.h>

#include <string>

namespace chat::store::sqlite::detail {

void throw_error(int rc, sqlite3* db, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xFF) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
      throw StoreCorrupt(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      throw StoreUnavailable(message);
    default:
      throw StoreError(message);
  }
}

Statement::~Statement() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Statement& Statement::bind(int index, std::int64_t value) {
  if (int rc = sqlite3_bind_int64(stmt_, index, value); rc != SQLITE_OK) throw_error(rc, db_, "bind");
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  if (int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      rc != SQLITE_OK)
    throw_error(rc, db_, "bind");
  return *this;
}

Statement& Statement::bind_unowned(int index, std::string_view text) {
  if (int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
      rc != SQLITE_OK)
    throw_error(rc, db_, "bind");
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  if (int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
      rc != SQLITE_OK)
    throw_error(rc, db_, "bind");
  return *this;
}

Statement& Statement::bind_null(int index) {
  if (int rc = sqlite3_bind_null(stmt_, index); rc != SQLITE_OK) throw_error(rc, db_, "bind");
  return *this;
}

Statement& Statement::bind_optional(int index, const std::optional<std::string>& text) {
  return text ? bind(index, std::string_view(*text)) : bind_null(index);
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_error(rc, db_, "step");
}

void Statement::run() {
  while (step()) {
  }
}

std::int64_t Statement::int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::text(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  const int n = sqlite3_column_bytes(stmt_, column);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
                      : std::string();
}

std::string Statement::blob(int column) const {
  const auto* p = sqlite3_column_blob(stmt_, column);
  const int n = sqlite3_column_bytes(stmt_, column);
  return p != nullptr ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

Db::Db(const std::string& path, Mode mode, const char* vfs) {
  const int flags =
      (mode == Mode::read_write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) |
      SQLITE_OPEN_NOMUTEX;
  if (int rc = sqlite3_open_v2(path.c_str(), &db_, flags, vfs); rc != SQLITE_OK) {
    std::string message = "open " + path + ": " + (db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw StoreUnavailable(message);
  }
  sqlite3_extended_result_codes(db_, 1);
  // Readers never block on the writer in WAL mode; the timeout covers checkpoints and migrations.
  sqlite3_busy_timeout(db_, 5000);
}

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

void Db::exec(std::string_view sql) {
  char* err = nullptr;
  const std::string text(sql);
  if (int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : "";
    sqlite3_free(err);
    throw_error(rc, db_, "exec " + message);
  }
}

Statement Db::prepare(std::string_view sql) {
  auto it = cache_.find(sql.data());
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    if (int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &stmt, nullptr);
        rc != SQLITE_OK)
      throw_error(rc, db_, "prepare");
    it = cache_.emplace(sql.data(), stmt).first;
  }
  return Statement(it->second, db_);
}

std::int64_t Db::changes() const noexcept {
  return sqlite3_changes64(db_);
}

}  // namespace chat::store::sqlite::detail

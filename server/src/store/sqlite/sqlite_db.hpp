#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

// A thin RAII layer over sqlite3: one connection, cached prepared statements, and the one place
// where SQLITE_* result codes become store exceptions. A Db is used by one thread at a time.
namespace chat::store::sqlite::detail {

class Statement {
 public:
  Statement(sqlite3_stmt* stmt, sqlite3* db) noexcept : stmt_(stmt), db_(db) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();  // resets the statement so the cached one can be reused

  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view text);
  // Binds without SQLite's copy of the text: it must stay alive and unchanged until this Statement
  // is destroyed (which resets the statement and clears its bindings). For the hot path only.
  Statement& bind_unowned(int index, std::string_view text);
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_null(int index);
  Statement& bind_optional(int index, const std::optional<std::string>& text);

  // Steps once: true if a row is available.
  bool step();
  // Steps to completion of a statement that returns no rows.
  void run();

  std::int64_t int64(int column) const;
  std::string text(int column) const;
  std::string blob(int column) const;
  bool is_null(int column) const;

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
};

class Db {
 public:
  enum class Mode { read_write, read_only };

  // `vfs`: a registered VFS's name, or nullptr for the default.
  Db(const std::string& path, Mode mode, const char* vfs = nullptr);
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  void exec(std::string_view sql);
  // The statement is prepared once per connection and cached by its text's address, so pass the
  // named constexpr SQL constants, not temporaries.
  Statement prepare(std::string_view sql);
  std::int64_t changes() const noexcept;
  sqlite3* handle() const noexcept { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// Throws the store exception matching `rc`, with SQLite's message taken from `db` first.
[[noreturn]] void throw_error(int rc, sqlite3* db, std::string_view what);

}  // namespace chat::store::sqlite::detail

#pragma once

#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store.hpp"
#include "test_util.hpp"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

// The backends the store conformance suite runs against. Each makes a fresh, empty store (a SQLite
// file in a temp dir; a new PostgreSQL database from CHATD_TEST_PG_DSN) and can open it again.
namespace chat::test {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  virtual std::unique_ptr<store::Store> open() = 0;
  virtual int schema_version() = 0;
  // Leaves the schema version at `version`, as a chatd of that version would; the store is closed.
  virtual void set_schema_version(int version) = 0;
  // Cuts every connection the open store holds, as a server restart would. False: not applicable.
  virtual bool drop_connections() { return false; }
  // Connections of the open stores waiting for a lock held by another transaction (a writer that
  // blocked on another store's uncommitted row); -1: the backend has a single writer.
  virtual int lock_waiters() { return -1; }
};

class SqliteBackend final : public StoreBackend {
 public:
  std::unique_ptr<store::Store> open() override {
    return std::make_unique<store::sqlite::SqliteStore>(store::sqlite::SqliteStore::Options{path(), 2});
  }
  int schema_version() override { return store::sqlite::SqliteStore::schema_version(); }
  void set_schema_version(int version) override {
    sqlite3* db = nullptr;
    if (sqlite3_open(path().c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite3_open");
    const std::string sql = "PRAGMA user_version = " + std::to_string(version);
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
    if (rc != SQLITE_OK) throw std::runtime_error("set user_version");
  }

 private:
  std::string path() const { return dir_.path() + "/chatd.db"; }
  TempDir dir_;
};

// One database per test (CREATE DATABASE chatd_t_<random>), dropped at the end; the DSN's role
// needs CREATEDB (scripts/pg-test-server.sh sets that up).
class PostgresBackend final : public StoreBackend {
 public:
  explicit PostgresBackend(std::string dsn) : dsn_(std::move(dsn)) {
    std::random_device seed;
    std::mt19937_64 rng((static_cast<std::uint64_t>(seed()) << 32) ^ seed());
    name_ = "chatd_t_" + std::to_string(rng() % 1'000'000'000'000ULL);
    admin("CREATE DATABASE " + name_);
    conninfo_ = with_dbname(dsn_, name_);
  }
  ~PostgresBackend() override {
    try {
      admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
      // Left behind for a human to look at; the name is random, so nothing else collides with it.
    }
  }

  std::unique_ptr<store::Store> open() override {
    return std::make_unique<store::postgres::PostgresStore>(
        store::postgres::PostgresStore::Options{conninfo_, 2});
  }
  int schema_version() override { return store::postgres::PostgresStore::schema_version(); }
  void set_schema_version(int version) override {
    run(conninfo_, "DELETE FROM schema_migrations WHERE version > " + std::to_string(version) +
                       "; INSERT INTO schema_migrations (version) VALUES (" + std::to_string(version) +
                       ") ON CONFLICT DO NOTHING");
  }
  bool drop_connections() override {
    admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name_ + "'");
    return true;
  }
  int lock_waiters() override {
    return std::stoi(run(dsn_, "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + name_ +
                                   "' AND wait_event_type = 'Lock'"));
  }
  const std::string& conninfo() const { return conninfo_; }

 private:
  void admin(const std::string& sql) { run(dsn_, sql); }

  // Runs `sql`; returns the first column of the first row, if any.
  static std::string run(const std::string& conninfo, const std::string& sql) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      const std::string error = PQerrorMessage(conn);
      PQfinish(conn);
      throw std::runtime_error("connect " + conninfo + ": " + error);
    }
    PGresult* r = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(r);
    const std::string error = PQresultErrorMessage(r);
    std::string first;
    if (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) first = PQgetvalue(r, 0, 0);
    PQclear(r);
    PQfinish(conn);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + error);
    return first;
  }

  // The DSN's settings with another database, as a key=value conninfo string.
  static std::string with_dbname(const std::string& dsn, const std::string& dbname) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
    if (options == nullptr) {
      const std::string message = error != nullptr ? error : "out of memory";
      PQfreemem(error);
      throw std::runtime_error("bad CHATD_TEST_PG_DSN: " + message);
    }
    std::string out;
    for (auto* o = options; o->keyword != nullptr; ++o) {
      const std::string key = o->keyword;
      if (key == "dbname" || o->val == nullptr) continue;
      out.append(key).append("='").append(quote(o->val)).append("' ");
    }
    PQconninfoFree(options);
    out.append("dbname='").append(quote(dbname)).append("'");
    return out;
  }

  static std::string quote(const std::string& value) {
    std::string out;
    for (char c : value) {
      if (c == '\'' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    return out;
  }

  std::string dsn_;
  std::string name_;
  std::string conninfo_;
};

}  // namespace chat::test

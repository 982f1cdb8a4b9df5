#pragma once

#include "store/errors.hpp"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct pg_conn;
struct pg_result;

// A thin RAII layer over libpq: one connection, statements prepared once per connection, and the
// one place where SQLSTATEs become store exceptions. A Connection is used by one thread at a time.
namespace chat::store::postgres::detail {

// One statement parameter, sent as text (bytea as binary). Views are not owned: a Param lives only
// for the call it is passed to.
class Param {
 public:
  Param(std::int64_t value);  // NOLINT(google-explicit-constructor): params read like SQL arguments
  Param(int value) : Param(static_cast<std::int64_t>(value)) {}      // NOLINT(google-explicit-constructor)
  Param(std::string_view text) : kind_(Kind::text), view_(text) {}   // NOLINT(google-explicit-constructor)
  Param(const std::string& text) : Param(std::string_view(text)) {}  // NOLINT(google-explicit-constructor)
  Param(const char* text) : Param(std::string_view(text)) {}         // NOLINT(google-explicit-constructor)
  Param(std::nullopt_t) : kind_(Kind::null) {}                       // NOLINT(google-explicit-constructor)
  Param(const std::optional<std::string>& text);                     // NOLINT(google-explicit-constructor)
  Param(const std::optional<std::int64_t>& value);                   // NOLINT(google-explicit-constructor)
  static Param bytes(std::string_view raw);

  enum class Kind { null, int8, text, bytea };
  Kind kind() const noexcept { return kind_; }
  std::string_view value() const noexcept { return kind_ == Kind::int8 ? std::string_view(owned_) : view_; }

 private:
  Param() = default;
  Kind kind_ = Kind::null;
  std::string owned_;
  std::string_view view_;
};

// A query result, read as text.
class Result {
 public:
  explicit Result(pg_result* result) noexcept : result_(result) {}
  int rows() const noexcept;
  bool empty() const noexcept { return rows() == 0; }
  std::int64_t int64(int row, int column) const;
  std::string text(int row, int column) const;
  bool boolean(int row, int column) const;
  bool is_null(int row, int column) const;
  // Rows changed by an INSERT/UPDATE/DELETE.
  std::int64_t affected() const;
  std::string command() const;

 private:
  struct Clear {
    void operator()(pg_result* r) const noexcept;
  };
  std::unique_ptr<pg_result, Clear> result_;
};

class Connection {
 public:
  // `setup` runs after every (re)connect, e.g. session settings. With `reconnect`, a call finding
  // the connection lost reconnects first (readers); without, it throws StoreUnavailable and only
  // ensure_open() reconnects (the writer, whose batch must not continue on a new connection).
  Connection(std::string conninfo, std::vector<std::string> setup, bool reconnect);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Reconnects if the connection is known to be lost (prepared statements go with it).
  void ensure_open();
  // Runs a parameterized statement, prepared on first use on this connection (keyed by its text;
  // parameter types are taken from that first call). With `reconnect`, a statement run outside a
  // transaction that fails because the connection dropped is retried once on a new connection
  // (only reads and BEGIN run outside one). Text containing NUL throws std::invalid_argument.
  Result exec(std::string_view sql, std::initializer_list<Param> params = {});
  // Runs SQL text without parameters (may hold several statements), with the same retry rule.
  Result exec_script(std::string_view sql);
  // True if a transaction (or a failed one) is open on this connection.
  bool in_transaction() const noexcept;
  pg_conn* handle() const noexcept { return conn_; }
  // The SQLSTATE of the last statement that failed on the server ("" if the last one did not).
  const std::string& last_sqlstate() const noexcept { return last_sqlstate_; }

 private:
  void connect();
  Result run(std::string_view sql, std::initializer_list<Param> params, bool script);
  Result run_once(std::string_view sql, std::initializer_list<Param> params, bool script);

  std::string conninfo_;
  std::vector<std::string> setup_;
  bool reconnect_ = true;
  pg_conn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
  std::string last_sqlstate_;
};

// unique_violation (23505) on a live connection: a StoreError (a bug, if nobody handles it), thrown
// as its own type so that a check-then-insert write can tell "another node inserted the same key
// first" and settle the race (PostgresStore::settle_race).
class UniqueViolation final : public StoreError {
 public:
  using StoreError::StoreError;
};

// lock_not_available (55P03): a NOWAIT lock found the row held by another transaction
// (PostgresStore::next_seq); PostgresStore splits the batch and retries the job.
class LockBusy final : public StoreError {
 public:
  using StoreError::StoreError;
};

// Throws the store exception for a failed call: `result` (may be null) carries the SQLSTATE, the
// connection's state tells a dropped connection. The message is copied before anything is freed.
[[noreturn]] void throw_error(const pg_result* result, pg_conn* conn, std::string_view what);
// The mapping itself, for tests and for errors raised without a result.
[[noreturn]] void throw_sqlstate(std::string_view sqlstate, bool connection_lost, const std::string& message);

}  // namespace chat::store::postgres::detail

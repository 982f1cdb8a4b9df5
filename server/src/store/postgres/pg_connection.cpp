#include "store/postgres/pg_connection.hpp"

#include "store/errors.hpp"

#include <libpq-fe.h>

#include <array>
#include <charconv>
#include <stdexcept>
#include <utility>

namespace chat::store::postgres::detail {

namespace {

// Type OIDs from pg_type.h (stable across releases; server headers are not a build dependency).
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaOid = 17;

constexpr char kConnectTimeoutSeconds[] = "10";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

// The one place where PostgreSQL errors are sorted (see store/errors.hpp):
// - retryable: connection exceptions (08), insufficient resources (53, disk full, too many
//   connections), operator intervention (57P: shutdown, crash recovery), serialization failure and
//   deadlock (40001, 40P01), and any error after which libpq reports the connection gone;
// - data corrupted (XX001, XX002): an operator must look;
// - unique_violation (23505) is UniqueViolation, a StoreError that PostgresStore catches where two
//   writers can race for the same key, and lock_not_available (55P03) is LockBusy, which it
//   catches around NOWAIT locks;
// - everything else (other constraint violations, syntax, types) is a bug or a broken schema: StoreError.
void throw_sqlstate(std::string_view sqlstate, bool connection_lost, const std::string& message) {
  if (sqlstate == "XX001" || sqlstate == "XX002") throw StoreCorrupt(message);
  if (connection_lost || starts_with(sqlstate, "08") || starts_with(sqlstate, "53") ||
      starts_with(sqlstate, "57P") || sqlstate == "40001" || sqlstate == "40P01")
    throw StoreUnavailable(message);
  if (sqlstate == "23505") throw UniqueViolation(message);
  if (sqlstate == "55P03") throw LockBusy(message);
  throw StoreError(message);
}

void throw_error(const pg_result* result, pg_conn* conn, std::string_view what) {
  std::string message(what);
  message += ": ";
  const char* text = result != nullptr ? PQresultErrorMessage(result) : nullptr;
  if (text == nullptr || *text == '\0') text = conn != nullptr ? PQerrorMessage(conn) : "no connection";
  message += text;
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  if (!sqlstate.empty()) {
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on `" [" + std::string`.
    message.append(" [").append(sqlstate).append("]");
  }
  const bool lost = conn == nullptr || PQstatus(conn) != CONNECTION_OK;
  throw_sqlstate(sqlstate, lost, message);
}

Param::Param(std::int64_t value) : kind_(Kind::int8), owned_(std::to_string(value)) {}

Param::Param(const std::optional<std::string>& text) {
  if (text) {
    kind_ = Kind::text;
    view_ = *text;
  }
}

Param::Param(const std::optional<std::int64_t>& value) {
  if (value) {
    kind_ = Kind::int8;
    owned_ = std::to_string(*value);
  }
}

Param Param::bytes(std::string_view raw) {
  Param p;
  p.kind_ = Kind::bytea;
  p.view_ = raw;
  return p;
}

void Result::Clear::operator()(pg_result* r) const noexcept {
  PQclear(r);
}

int Result::rows() const noexcept {
  return PQntuples(result_.get());
}

std::int64_t Result::int64(int row, int column) const {
  const char* p = PQgetvalue(result_.get(), row, column);
  const int n = PQgetlength(result_.get(), row, column);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(p, p + n, value);
  if (ec != std::errc() || end != p + n) {
    throw StoreCorrupt("not an integer in column " + std::to_string(column) + ": " + std::string(p, n));
  }
  return value;
}

std::string Result::text(int row, int column) const {
  return {PQgetvalue(result_.get(), row, column),
          static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
}

bool Result::boolean(int row, int column) const {
  return PQgetvalue(result_.get(), row, column)[0] == 't';
}

bool Result::is_null(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::int64_t Result::affected() const {
  const char* n = PQcmdTuples(result_.get());
  std::int64_t value = 0;
  std::from_chars(n, n + std::char_traits<char>::length(n), value);
  return value;
}

std::string Result::command() const {
  return PQcmdStatus(result_.get());
}

Connection::Connection(std::string conninfo, std::vector<std::string> setup, bool reconnect)
    : conninfo_(std::move(conninfo)), setup_(std::move(setup)), reconnect_(reconnect) {
  connect();
}

Connection::~Connection() {
  PQfinish(conn_);
}

void Connection::connect() {
  PQfinish(conn_);
  conn_ = nullptr;
  prepared_.clear();
  // The DSN is expanded in place of `dbname`, so its own connect_timeout wins over our default.
  const std::array<const char*, 3> keys{"connect_timeout", "dbname", nullptr};
  const std::array<const char*, 3> values{kConnectTimeoutSeconds, conninfo_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn_ == nullptr) throw StoreUnavailable("postgres connect: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) throw_error(nullptr, conn_, "postgres connect");
  for (const auto& sql : setup_) {
    pg_result* r = PQexec(conn_, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      // Never leave a connection without its settings (synchronous_commit) for the next call.
      const Result owned(r);
      pg_conn* failed = std::exchange(conn_, nullptr);
      const std::unique_ptr<pg_conn, void (*)(pg_conn*)> close(failed, PQfinish);
      throw_error(r, failed, "postgres session setup");
    }
    PQclear(r);
  }
}

void Connection::ensure_open() {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) connect();
}

bool Connection::in_transaction() const noexcept {
  const auto status = PQtransactionStatus(conn_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
}

Result Connection::exec(std::string_view sql, std::initializer_list<Param> params) {
  return run(sql, params, /*script=*/false);
}

Result Connection::exec_script(std::string_view sql) {
  return run(sql, {}, /*script=*/true);
}

Result Connection::run(std::string_view sql, std::initializer_list<Param> params, bool script) {
  if (!reconnect_ && (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK)) {
    // The writer never reconnects in the middle of a batch: its transaction is gone, and statements
    // run on a new connection would commit on their own. begin_batch reconnects.
    throw StoreUnavailable("postgres: connection lost");
  }
  ensure_open();
  const bool idle = !in_transaction();
  try {
    return run_once(sql, params, script);
  } catch (const StoreUnavailable&) {
    // A server restart or a dropped TCP connection: retry once on a fresh connection, unless a
    // transaction was open (its work is gone; the caller must fail the batch).
    if (!reconnect_ || !idle || PQstatus(conn_) == CONNECTION_OK) throw;
  }
  connect();
  return run_once(sql, params, script);
}

Result Connection::run_once(std::string_view sql, std::initializer_list<Param> params, bool script) {
  last_sqlstate_.clear();
  pg_result* raw = nullptr;
  if (script) {
    const std::string text(sql);
    raw = PQexec(conn_, text.c_str());
  } else {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    values.reserve(params.size());
    for (const auto& p : params) {
      values.push_back(p.kind() == Param::Kind::null ? nullptr : p.value().data());
      lengths.push_back(static_cast<int>(p.value().size()));
      formats.push_back(p.kind() == Param::Kind::bytea ? 1 : 0);
    }
    // Text params go NUL-terminated (libpq takes their length from strlen), so copy them.
    std::vector<std::string> copies;
    copies.reserve(params.size());
    std::size_t i = 0;
    for (const auto& p : params) {
      if (p.kind() == Param::Kind::text) {
        // PostgreSQL text cannot hold U+0000. Not a StoreError: that would fail the whole batch for
        // one bad input; this fails the one job (StoreService rolls back its savepoint only).
        if (p.value().find('\0') != std::string_view::npos) {
          throw std::invalid_argument("postgres: text with a NUL character cannot be stored");
        }
        copies.emplace_back(p.value());
        values[i] = copies.back().c_str();
      }
      ++i;
    }
    std::string key(sql);
    auto it = prepared_.find(key);
    if (it == prepared_.end()) {
      std::vector<Oid> types;
      for (const auto& p : params) {
        switch (p.kind()) {
          case Param::Kind::int8:
            types.push_back(kInt8Oid);
            break;
          case Param::Kind::text:
            types.push_back(kTextOid);
            break;
          case Param::Kind::bytea:
            types.push_back(kByteaOid);
            break;
          case Param::Kind::null:
            types.push_back(0);
            break;  // the server infers it from the SQL
        }
      }
      std::string name = "s";
      name += std::to_string(prepared_.size() + 1);
      pg_result* prep = PQprepare(conn_, name.c_str(), key.c_str(), static_cast<int>(types.size()),
                                  types.empty() ? nullptr : types.data());
      const Result owned(prep);
      if (PQresultStatus(prep) != PGRES_COMMAND_OK) throw_error(prep, conn_, sql.substr(0, 80));
      it = prepared_.emplace(std::move(key), name).first;
    }
    raw = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()), values.data(),
                         lengths.data(), formats.data(), /*resultFormat=*/0);
  }
  Result result(raw);
  const auto status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
    last_sqlstate_ = state != nullptr ? state : "";
    throw_error(raw, conn_, sql.substr(0, 80));
  }
  return result;
}

}  // namespace chat::store::postgres::detail

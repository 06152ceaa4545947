// A thin RAII layer over libpq: one connection, statements with parameters, results read by row
// and column, errors as absl::Status carrying the SQLSTATE. Used only inside server/store/pg (and
// the tests and tools built on it).
//
// Parameters are sent as text, except byte strings (Params::Bytes), which are sent in binary so
// that any byte goes through unchanged (a text parameter holding a NUL byte, which PostgreSQL
// text cannot store and libpq would cut short, makes Exec answer INVALID_ARGUMENT unsent); the server infers each parameter's type from the
// statement. Results come back in binary, so byte columns need no unescaping and integers are
// read exactly (Result::Int reads int2, int4, int8 and bool columns).
//
// Errors (ErrorStatus): unique_violation (23505) → ALREADY_EXISTS, an answer about the data;
// a data exception (class 22, e.g. a NUL byte in a text value) → INVALID_ARGUMENT, also an
// answer; query_canceled (57014) → DEADLINE_EXCEEDED; a lost or refused connection (class 08, the
// server shutting down, class 57P) → UNAVAILABLE; anything else → INTERNAL. All but
// ALREADY_EXISTS and INVALID_ARGUMENT are marked as store failures (server/store/store_failure.h), as for SQLite: the
// engine is crash-only on them. Every message names the SQLSTATE.
//
// Threading: a Connection is used by one thread at a time.
#ifndef RETRYD_SERVER_STORE_PG_PG_CONN_H_
#define RETRYD_SERVER_STORE_PG_PG_CONN_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retryd::pg {

// The SQLSTATE of a unique-constraint violation.
inline constexpr absl::string_view kUniqueViolation = "23505";

// Statement parameters ($1, $2, ... in the order added).
class Params {
 public:
  Params& Int(int64_t v);
  Params& Text(absl::string_view v);
  // Sent in binary: for bytea parameters.
  Params& Bytes(absl::string_view v);
  Params& Bool(bool v) { return Text(v ? "true" : "false"); }
  Params& Null();
  int size() const { return static_cast<int>(values_.size()); }

 private:
  friend class Connection;
  std::vector<std::string> values_;
  std::vector<int> formats_;  // 0 text, 1 binary.
  std::vector<bool> nulls_;
  int nul_in_text_ = 0;  // The first text parameter ($N) holding a NUL byte; 0: none.
};

// A statement's result (binary columns). Move-only.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : r_(r) {}
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result& operator=(Result&& o) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const { return r_ ? PQntuples(r_) : 0; }
  int columns() const { return r_ ? PQnfields(r_) : 0; }
  // Rows changed by an INSERT/UPDATE/DELETE.
  int64_t affected() const;
  bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  // int2, int4, int8 or bool column; 0 when NULL.
  int64_t Int(int row, int col) const;
  // The bytes of a text or bytea column (empty when NULL).
  absl::string_view Bytes(int row, int col) const;
  std::string Text(int row, int col) const { return std::string(Bytes(row, col)); }
  int64_t ByteSize(int row, int col) const { return PQgetlength(r_, row, col); }
  const PGresult* raw() const { return r_; }

 private:
  PGresult* r_ = nullptr;
};

// The Status for a failed result (null: the connection's own error), as described above.
// `what` prefixes the message.
absl::Status ErrorStatus(PGconn* conn, const PGresult* result, absl::string_view what);

class Connection {
 public:
  // Connects with a libpq connection string or URI (empty: libpq's PG* environment variables
  // and defaults). UNAVAILABLE (a store failure) when the server cannot be reached; the message
  // names the DSN with its password redacted.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& dsn);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement with parameters; results in binary.
  absl::StatusOr<Result> Exec(absl::string_view sql, const Params& params = Params());
  // Runs one or more statements without parameters (a migration script, BEGIN, COMMIT).
  [[nodiscard]] absl::Status ExecScript(absl::string_view sql);

  // Transactions and savepoints (names are the caller's identifiers, not user input).
  [[nodiscard]] absl::Status Begin() { return ExecScript("BEGIN"); }
  [[nodiscard]] absl::Status Commit() { return ExecScript("COMMIT"); }
  // Rolls back the open transaction, if any; errors are ignored (the connection may be gone).
  void Rollback();
  [[nodiscard]] absl::Status Savepoint(absl::string_view name);
  [[nodiscard]] absl::Status ReleaseSavepoint(absl::string_view name);
  [[nodiscard]] absl::Status RollbackToSavepoint(absl::string_view name);

  // True while the connection to the server is up (as libpq last saw it).
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  // The backend's process id (for tests that end a session).
  int backend_pid() const { return PQbackendPID(conn_); }
  PGconn* raw() const { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  PGconn* conn_;
};

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_CONN_H_

// A thin RAII layer over the SQLite C API: a connection and prepared statements, errors as
// absl::Status. Used only inside server/store.
#ifndef RETRYD_SERVER_STORE_SQLITE_DB_H_
#define RETRYD_SERVER_STORE_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retryd::sqlite {

// Maps a SQLite result code to a Status: CONSTRAINT → ALREADY_EXISTS (an answer about the data);
// INTERRUPT → DEADLINE_EXCEEDED (a read stopped for running too long); BUSY/LOCKED/IOERR/FULL/
// CANTOPEN → UNAVAILABLE and anything else → INTERNAL, both marked as store failures
// (store_failure.h). `what` prefixes the message.
absl::Status ErrorStatus(sqlite3* db, int rc, absl::string_view what);

// A prepared statement. Not thread-safe; reset by Reset() or by the next Bind after Step.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite.
  void BindInt(int i, int64_t v);
  void BindText(int i, absl::string_view v);
  void BindBlob(int i, absl::string_view v);
  // Binds without copying: `v` must stay alive and unchanged until the statement is reset
  // (Run resets before it returns). For large values bound for one Run.
  void BindBlobUncopied(int i, absl::string_view v);
  void BindNull(int i);

  // Runs a step: true when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Runs to completion (for statements without rows).
  [[nodiscard]] absl::Status Run();
  void Reset();

  int64_t ColumnInt(int i) const;
  std::string ColumnText(int i) const;
  std::string ColumnBlob(int i) const;
  // Size in bytes of a text or blob column, without copying it.
  int64_t ColumnBytes(int i) const;
  bool ColumnIsNull(int i) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// An open connection. Not thread-safe: callers serialize access.
class Database {
 public:
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path, bool read_only);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without parameters.
  [[nodiscard]] absl::Status Exec(absl::string_view sql);
  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  int64_t LastInsertRowId() const;
  int Changes() const;
  sqlite3* raw() const { return db_; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace retryd::sqlite

#endif  // RETRYD_SERVER_STORE_SQLITE_DB_H_

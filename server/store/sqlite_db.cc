#include "server/store/sqlite_db.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/store_failure.h"

namespace retryd::sqlite {

absl::Status ErrorStatus(sqlite3* db, int rc, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                                 " (sqlite code ", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);  // An answer about the data, not a failure.
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
      return MarkStoreFailure(absl::UnavailableError(msg));
    case SQLITE_INTERRUPT:  // A progress handler stopped a read that ran too long.
      return absl::DeadlineExceededError(msg);
    default:
      return MarkStoreFailure(absl::InternalError(msg));
  }
}

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

// SQLite refuses (SQLITE_MISUSE) to bind to a statement that has been stepped and not reset, and
// the Bind methods return nothing, so each one resets first (keeping the other bindings); this is
// what makes "reset by the next Bind after Step" hold.
void Statement::BindInt(int i, int64_t v) {
  sqlite3_reset(stmt_);
  sqlite3_bind_int64(stmt_, i, v);
}
void Statement::BindText(int i, absl::string_view v) {
  sqlite3_reset(stmt_);
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}
void Statement::BindBlob(int i, absl::string_view v) {
  sqlite3_reset(stmt_);
  // A zero-length blob must still be a blob, not NULL.
  sqlite3_bind_blob(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                    SQLITE_TRANSIENT);
}
void Statement::BindBlobUncopied(int i, absl::string_view v) {
  sqlite3_reset(stmt_);
  sqlite3_bind_blob(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                    SQLITE_STATIC);
}

void Statement::BindNull(int i) {
  sqlite3_reset(stmt_);
  sqlite3_bind_null(stmt_, i);
}

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status s = ErrorStatus(db_, rc, "sqlite step");
  sqlite3_reset(stmt_);
  return s;
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  Reset();
  return row.status();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
std::string Statement::ColumnText(int i) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
  return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
}
std::string Statement::ColumnBlob(int i) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
  return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
}
int64_t Statement::ColumnBytes(int i) const { return sqlite3_column_bytes(stmt_, i); }
bool Statement::ColumnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | (read_only ? SQLITE_OPEN_READONLY
                                               : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = ErrorStatus(db, rc, absl::StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  return std::unique_ptr<Database>(new Database(db));
}

Database::~Database() { sqlite3_close_v2(db_); }

absl::Status Database::Exec(absl::string_view sql) {
  char* err = nullptr;
  std::string owned(sql);
  int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    absl::Status s = ErrorStatus(db_, rc, absl::StrCat("exec `", sql.substr(0, 60), "`"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return ErrorStatus(db_, rc, absl::StrCat("prepare `", sql, "`"));
  return Statement(db_, stmt);
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int Database::Changes() const { return sqlite3_changes(db_); }

}  // namespace retryd::sqlite

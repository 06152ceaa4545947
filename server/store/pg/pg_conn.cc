#include "server/store/pg/pg_conn.h"

#include <endian.h>

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/store/pg/pg_dsn.h"
#include "server/store/store_failure.h"

namespace retryd::pg {

namespace {

// Type oids of the integer columns Result::Int reads (pg_type.h).
constexpr Oid kBoolOid = 16;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;

absl::Status StatusFor(absl::string_view sqlstate, std::string message) {
  if (sqlstate == kUniqueViolation) return absl::AlreadyExistsError(message);
  if (sqlstate == "57014") return MarkStoreFailure(absl::DeadlineExceededError(message));
  // Data exceptions (class 22): a value PostgreSQL cannot hold, such as a NUL byte in text. An
  // answer about the request, not a failure of the database: the op is undone, the batch goes on.
  if (absl::StartsWith(sqlstate, "22")) {
    return absl::InvalidArgumentError(
        absl::StrCat(message, "; PostgreSQL text fields cannot hold NUL bytes or invalid UTF-8"));
  }
  if (sqlstate.empty() || absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57P")) {
    return MarkStoreFailure(absl::UnavailableError(message));
  }
  return MarkStoreFailure(absl::InternalError(message));
}

}  // namespace

Params& Params::Int(int64_t v) {
  values_.push_back(absl::StrCat(v));
  formats_.push_back(0);
  nulls_.push_back(false);
  return *this;
}

Params& Params::Text(absl::string_view v) {
  if (v.find('\0') != absl::string_view::npos) nul_in_text_ = static_cast<int>(values_.size()) + 1;
  values_.emplace_back(v);
  formats_.push_back(0);
  nulls_.push_back(false);
  return *this;
}

Params& Params::Bytes(absl::string_view v) {
  values_.emplace_back(v);
  formats_.push_back(1);
  nulls_.push_back(false);
  return *this;
}

Params& Params::Null() {
  values_.emplace_back();
  formats_.push_back(0);
  nulls_.push_back(true);
  return *this;
}

Result& Result::operator=(Result&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

Result::~Result() {
  if (r_) PQclear(r_);
}

int64_t Result::affected() const {
  const char* n = r_ ? PQcmdTuples(r_) : "";
  int64_t v = 0;
  for (; *n >= '0' && *n <= '9'; ++n) v = v * 10 + (*n - '0');
  return v;
}

int64_t Result::Int(int row, int col) const {
  if (PQgetisnull(r_, row, col)) return 0;
  const char* p = PQgetvalue(r_, row, col);
  switch (PQftype(r_, col)) {
    case kBoolOid:
      return p[0] != 0;
    case kInt2Oid: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<int16_t>(be16toh(v));
    }
    case kInt4Oid: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<int32_t>(be32toh(v));
    }
    case kInt8Oid: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<int64_t>(be64toh(v));
    }
    default:
      return 0;  // Not an integer column: a programming error the tests catch.
  }
}

absl::string_view Result::Bytes(int row, int col) const {
  if (PQgetisnull(r_, row, col)) return {};
  return absl::string_view(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
}

absl::Status ErrorStatus(PGconn* conn, const PGresult* result, absl::string_view what) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  std::string detail = result ? PQresultErrorMessage(result) : "";
  if (detail.empty() && conn) detail = PQerrorMessage(conn);
  if (sqlstate.empty() && conn && PQstatus(conn) != CONNECTION_OK) sqlstate = "08006";
  absl::string_view message = absl::StripAsciiWhitespace(detail);
  return StatusFor(sqlstate, absl::StrCat(what, ": ", message, " (SQLSTATE ",
                                          sqlstate.empty() ? "none" : sqlstate, ")"));
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& dsn) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  if (conn == nullptr) return MarkStoreFailure(absl::ResourceExhaustedError("libpq: out of memory"));
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message(absl::StripAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return MarkStoreFailure(absl::UnavailableError(
        absl::StrCat("connecting to PostgreSQL (", dsn.empty() ? "PG* environment" : RedactDsn(dsn),
                     "): ", message)));
  }
  // Server notices (e.g. "relation ... already exists, skipping") are not errors: dropped.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

absl::StatusOr<Result> Connection::Exec(absl::string_view sql, const Params& params) {
  if (params.nul_in_text_ > 0) {
    // libpq would cut a text parameter at its first NUL byte, silently: refuse it unsent.
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter $", params.nul_in_text_,
        " holds a NUL byte, which PostgreSQL text cannot store; nothing was written"));
  }
  const int n = params.size();
  std::vector<const char*> values(n);
  std::vector<int> lengths(n);
  for (int i = 0; i < n; ++i) {
    values[i] = params.nulls_[i] ? nullptr : params.values_[i].data();
    lengths[i] = static_cast<int>(params.values_[i].size());
  }
  Result out(PQexecParams(conn_, std::string(sql).c_str(), n, nullptr, values.data(),
                          lengths.data(), params.formats_.data(), /*resultFormat=*/1));
  const ExecStatusType st = out.raw() ? PQresultStatus(out.raw()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return ErrorStatus(conn_, out.raw(), absl::StrCat("PostgreSQL: ", sql.substr(0, 60)));
  }
  return out;
}

absl::Status Connection::ExecScript(absl::string_view sql) {
  PGresult* r = PQexec(conn_, std::string(sql).c_str());
  const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  absl::Status s;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    s = ErrorStatus(conn_, r, absl::StrCat("PostgreSQL: ", sql.substr(0, 60)));
  }
  if (r) PQclear(r);
  return s;
}

void Connection::Rollback() {
  if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  ExecScript("ROLLBACK").IgnoreError();
}

absl::Status Connection::Savepoint(absl::string_view name) {
  return ExecScript(absl::StrCat("SAVEPOINT ", name));
}

absl::Status Connection::ReleaseSavepoint(absl::string_view name) {
  return ExecScript(absl::StrCat("RELEASE SAVEPOINT ", name));
}

absl::Status Connection::RollbackToSavepoint(absl::string_view name) {
  return ExecScript(absl::StrCat("ROLLBACK TO SAVEPOINT ", name));
}

}  // namespace retryd::pg

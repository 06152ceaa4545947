#include "server/store/pg/pg_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/store_failure.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

Pool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(std::move(conn_));
}

absl::StatusOr<std::unique_ptr<Pool>> Pool::Open(std::string dsn, Options options) {
  std::unique_ptr<Pool> pool(new Pool(std::move(dsn), options));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> first, pool->Connect());
  absl::MutexLock lock(&pool->mu_);
  pool->idle_.push_back(std::move(first));
  return pool;
}

absl::StatusOr<std::unique_ptr<Connection>> Pool::Connect() {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(dsn_));
  RETURN_IF_ERROR(conn->ExecScript(absl::StrCat(
      "SET statement_timeout = ", absl::ToInt64Milliseconds(options_.read_timeout),
      "; SET application_name = 'retryd-reader'")));
  return conn;
}

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  std::unique_ptr<Connection> conn;
  {
    absl::MutexLock lock(&mu_);
    auto can_lend = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || lent_ < options_.size;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&can_lend), options_.wait)) {
      return absl::UnavailableError(absl::StrCat(
          "store: every PostgreSQL read connection stayed busy for ",
          absl::FormatDuration(options_.wait)));
    }
    ++lent_;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (conn == nullptr || !conn->ok()) {
    absl::StatusOr<std::unique_ptr<Connection>> fresh = Connect();
    if (!fresh.ok()) {
      absl::MutexLock lock(&mu_);
      --lent_;
      return fresh.status();
    }
    conn = std::move(*fresh);
  }
  return Lease(this, std::move(conn));
}

void Pool::Release(std::unique_ptr<Connection> conn) {
  absl::MutexLock lock(&mu_);
  --lent_;
  // A read ends its own transaction; one left open (an error midway) is rolled back here.
  if (conn != nullptr && conn->ok()) {
    conn->Rollback();
    idle_.push_back(std::move(conn));
  }
}

}  // namespace retryd::pg

#include "server/dlq/shared_job_claims.h"

#include <utility>

#include "server/store/pg/pg_job_claims.h"
#include "server/util/status_macros.h"

namespace retryd {

absl::StatusOr<std::unique_ptr<SharedJobClaims>> SharedJobClaims::Open(const std::string& dsn,
                                                                       PgStore* store,
                                                                       Options options) {
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn, pg::Connection::Open(dsn));
  return std::unique_ptr<SharedJobClaims>(
      new SharedJobClaims(dsn, store, std::move(options), std::move(conn)));
}

absl::StatusOr<pg::Connection*> SharedJobClaims::Conn() {
  if (conn_ == nullptr || !conn_->ok()) {
    conn_.reset();
    ASSIGN_OR_RETURN(conn_, pg::Connection::Open(dsn_));
  }
  return conn_.get();
}

absl::StatusOr<std::optional<int64_t>> SharedJobClaims::Claim(absl::string_view kind,
                                                              absl::string_view job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(pg::Connection * conn, Conn());
  return pg::ClaimJob(*conn, kind, job_id, options_.owner, options_.takeover_age);
}

absl::StatusOr<bool> SharedJobClaims::Heartbeat(absl::string_view kind, absl::string_view job_id,
                                                int64_t epoch) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(pg::Connection * conn, Conn());
  return pg::HeartbeatJob(*conn, kind, job_id, epoch);
}

absl::Status SharedJobClaims::Fence(absl::string_view kind, absl::string_view job_id,
                                    int64_t epoch) {
  RETURN_IF_ERROR(pg::FenceJob(store_->writer(), kind, job_id, epoch));
  // Held and locked: the renewal cannot miss.
  return pg::HeartbeatJob(store_->writer(), kind, job_id, epoch).status();
}

absl::StatusOr<std::optional<int64_t>> SharedJobClaims::ClaimInTxn(absl::string_view kind,
                                                                   absl::string_view job_id) {
  return pg::ClaimJob(store_->writer(), kind, job_id, options_.owner, options_.takeover_age);
}

absl::Status SharedJobClaims::ReleaseInTxn(absl::string_view kind, absl::string_view job_id,
                                           int64_t epoch) {
  return pg::ReleaseJob(store_->writer(), kind, job_id, epoch);
}

absl::Status SharedJobClaims::Release(absl::string_view kind, absl::string_view job_id,
                                      int64_t epoch) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(pg::Connection * conn, Conn());
  return pg::ReleaseJob(*conn, kind, job_id, epoch);
}

}  // namespace retryd

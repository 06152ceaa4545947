#include "server/store/pg/pg_job_claims.h"

#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_db_time.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

absl::StatusOr<std::optional<int64_t>> ClaimJob(Connection& conn, absl::string_view kind,
                                                absl::string_view job_id, absl::string_view owner,
                                                absl::Duration takeover_after) {
  // A free job is inserted at epoch 1; a held one is taken (next epoch) only when its heartbeat
  // is stale. A fresh holder's row is left alone: no row comes back.
  static const std::string kSql = absl::StrCat(
      "INSERT INTO job_claims AS j (kind, job_id, owner, epoch, heartbeat_at)"
      " VALUES ($1, $2, $3, 1, ", kDbNowMicros, ")"
      " ON CONFLICT (kind, job_id) DO UPDATE"
      "   SET owner = EXCLUDED.owner, epoch = j.epoch + 1, heartbeat_at = EXCLUDED.heartbeat_at"
      "   WHERE j.heartbeat_at <= EXCLUDED.heartbeat_at - $4::bigint"
      " RETURNING epoch");
  Params p;
  p.Text(kind).Text(job_id).Text(owner).Int(absl::ToInt64Microseconds(takeover_after));
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, p));
  if (r.rows() == 0) return std::nullopt;
  return r.Int(0, 0);
}

absl::StatusOr<bool> HeartbeatJob(Connection& conn, absl::string_view kind,
                                  absl::string_view job_id, int64_t epoch) {
  static const std::string kSql = absl::StrCat(
      "UPDATE job_claims SET heartbeat_at = ", kDbNowMicros,
      " WHERE kind = $1 AND job_id = $2 AND epoch = $3");
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, Params().Text(kind).Text(job_id).Int(epoch)));
  return r.affected() == 1;
}

absl::Status FenceJob(Connection& conn, absl::string_view kind, absl::string_view job_id,
                      int64_t epoch) {
  ASSIGN_OR_RETURN(Result r, conn.Exec("SELECT epoch FROM job_claims WHERE kind = $1 AND"
                                       " job_id = $2 FOR UPDATE",
                                       Params().Text(kind).Text(job_id)));
  if (r.rows() == 1 && r.Int(0, 0) == epoch) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", kind, "/", job_id, " was taken over by another replica (JOB_TAKEN_OVER)"));
}

absl::Status ReleaseJob(Connection& conn, absl::string_view kind, absl::string_view job_id,
                        int64_t epoch) {
  return conn
      .Exec("DELETE FROM job_claims WHERE kind = $1 AND job_id = $2 AND epoch = $3",
            Params().Text(kind).Text(job_id).Int(epoch))
      .status();
}

}  // namespace retryd::pg

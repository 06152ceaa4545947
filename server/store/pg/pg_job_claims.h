// Replays and purges run once across replicas: a job (kind, job_id) is run by the replica that
// holds its row in job_claims. The holder renews the row's heartbeat while it runs; a replica
// that finds a heartbeat older than the takeover age (by database time) claims the job with the
// next epoch and resumes it from its stored progress. Every progress write of the job is made in
// a transaction that first checks the epoch (FenceJob), so a holder that was taken over (paused,
// partitioned, or slow to notice) writes nothing more: each step commits under one holder only.
#ifndef RETRYD_SERVER_STORE_PG_PG_JOB_CLAIMS_H_
#define RETRYD_SERVER_STORE_PG_PG_JOB_CLAIMS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// Claims the job for `owner` when nobody holds it, or its holder's heartbeat is older than
// `takeover_after` at database time; answers the epoch to run it under. nullopt while another
// holder's heartbeat is fresh. Autocommitted, or inside the caller's transaction.
absl::StatusOr<std::optional<int64_t>> ClaimJob(Connection& conn, absl::string_view kind,
                                                absl::string_view job_id, absl::string_view owner,
                                                absl::Duration takeover_after);

// Renews the heartbeat of a job held under `epoch`; false when it was taken over (stop running).
absl::StatusOr<bool> HeartbeatJob(Connection& conn, absl::string_view kind,
                                  absl::string_view job_id, int64_t epoch);

// Inside the transaction of a progress write: locks the job's row and checks it is still held
// under `epoch`. FAILED_PRECONDITION (JOB_TAKEN_OVER) otherwise; the caller rolls back.
absl::Status FenceJob(Connection& conn, absl::string_view kind, absl::string_view job_id,
                      int64_t epoch);

// The job is finished: its row goes (only while still held under `epoch`).
absl::Status ReleaseJob(Connection& conn, absl::string_view kind, absl::string_view job_id,
                        int64_t epoch);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_JOB_CLAIMS_H_

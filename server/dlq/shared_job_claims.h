// SharedJobClaims: JobClaims on PostgreSQL, for replicas sharing one database
// (docs/shared-replicas.md, "Replays and purges run once"). A claim is a row of job_claims
// (kind, job_id, owner, epoch, heartbeat_at) written by pg_job_claims.h: claimed when absent or
// when its heartbeat is older than the takeover age at database time (the replicas' clocks never
// decide a takeover), renewed by heartbeats, deleted on release. Claim, Heartbeat and Release
// run autocommitted on a connection of their own (reopened after it was lost); Fence and the
// *InTxn calls run on the store's writer connection inside the engine's batch transaction,
// where the claim's row stays locked until the batch ends.
//
// Threading: Claim, Heartbeat and Release are serialised by a mutex (any thread); Fence is the
// writer thread's.
#ifndef RETRYD_SERVER_DLQ_SHARED_JOB_CLAIMS_H_
#define RETRYD_SERVER_DLQ_SHARED_JOB_CLAIMS_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server/dlq/job_claims.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_store.h"

namespace retryd {

class SharedJobClaims final : public JobClaims {
 public:
  struct Options {
    // This replica's name in job_claims.owner (for operators reading the table), e.g. host:pid.
    std::string owner;
    // A claim whose heartbeat is older than this (database time) may be taken over. Long enough
    // that a live holder is never taken over by a slow heartbeat or a long batch; short enough
    // that a dead holder's replay does not stall for long.
    absl::Duration takeover_age = absl::Seconds(10);
    // How often a holder renews its claims: several heartbeats fit in the takeover age.
    absl::Duration heartbeat_interval = absl::Seconds(2);
  };

  // Connects (the DSN of `store`'s database) for the claims' own statements. `store` is the
  // store the engine writes (its writer connection fences) and must outlive the claims.
  // UNAVAILABLE when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<SharedJobClaims>> Open(const std::string& dsn,
                                                               PgStore* store, Options options);

  absl::StatusOr<std::optional<int64_t>> Claim(absl::string_view kind,
                                               absl::string_view job_id) override;
  absl::StatusOr<bool> Heartbeat(absl::string_view kind, absl::string_view job_id,
                                 int64_t epoch) override;
  absl::Status Fence(absl::string_view kind, absl::string_view job_id, int64_t epoch) override;
  absl::Status Release(absl::string_view kind, absl::string_view job_id, int64_t epoch) override;
  absl::StatusOr<std::optional<int64_t>> ClaimInTxn(absl::string_view kind,
                                                    absl::string_view job_id) override;
  absl::Status ReleaseInTxn(absl::string_view kind, absl::string_view job_id,
                            int64_t epoch) override;
  absl::Duration heartbeat_interval() const override { return options_.heartbeat_interval; }

 private:
  SharedJobClaims(std::string dsn, PgStore* store, Options options,
                  std::unique_ptr<pg::Connection> conn)
      : dsn_(std::move(dsn)), store_(store), options_(std::move(options)), conn_(std::move(conn)) {}

  // The claims' connection, reopened when it was lost.
  absl::StatusOr<pg::Connection*> Conn() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dsn_;
  PgStore* const store_;
  const Options options_;
  absl::Mutex mu_;
  std::unique_ptr<pg::Connection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_SHARED_JOB_CLAIMS_H_

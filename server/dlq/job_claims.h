// JobClaims: who runs an operator job (a replay, a purge) when several retryd replicas share one
// store. A job is run by the replica that holds its claim; a holder renews its claim by
// heartbeats, and a replica takes over a job whose holder stopped heartbeating (dead, paused,
// cut off). Every step of a job that writes progress checks its claim in the step's own
// transaction (Fence), so a holder that was taken over commits nothing more: each step commits
// under one holder only, and the new holder resumes from the progress stored with the last
// committed step.
//
// Chosen once, where the store is chosen (server_main): SoleJobClaims on SQLite, where one
// process is the only one and always holds every job (no table, no thread, no heartbeat);
// SharedJobClaims on PostgreSQL (shared_job_claims.h: job_claims rows, database time).
//
// Two ways to hold a job: a runner thread (replays) claims, heartbeats and releases on its own,
// between steps; a job made of back-to-back engine transactions (a purge's chunks) does it all
// inside them (ClaimInTxn, Fence, ReleaseInTxn), so that its claim is written and dropped
// together with its progress.
//
// Threading: Claim, Heartbeat and Release may be called from any thread (one at a time); the
// *InTxn calls and Fence only on the engine's writer thread, inside a transaction (from an
// Engine::TxnFunction), on the same store the engine writes.
#ifndef RETRYD_SERVER_DLQ_JOB_CLAIMS_H_
#define RETRYD_SERVER_DLQ_JOB_CLAIMS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace retryd {

// Job kinds (job_claims.kind).
inline constexpr absl::string_view kReplayJob = "replay";
inline constexpr absl::string_view kPurgeJob = "purge";  // job_id: the request_id.

class JobClaims {
 public:
  virtual ~JobClaims() = default;

  // Claims job (kind, job_id) for this replica when nobody holds it or its holder's heartbeat
  // is older than the takeover age; answers the epoch to run it under (each claim of a job gets
  // a larger one). nullopt while another holder's claim is fresh. A caller remembers what it
  // holds and does not claim it again. An error changes nothing; try later.
  [[nodiscard]] virtual absl::StatusOr<std::optional<int64_t>> Claim(absl::string_view kind,
                                                                     absl::string_view job_id) = 0;
  // Renews a held claim: true while it is still held under `epoch`, false once another replica
  // took it over (stop running the job; it is the other holder's now).
  [[nodiscard]] virtual absl::StatusOr<bool> Heartbeat(absl::string_view kind,
                                                       absl::string_view job_id,
                                                       int64_t epoch) = 0;
  // Inside a step's transaction, before its writes: OK while the job is held under `epoch`
  // (and, on PostgreSQL, locked until the transaction ends, so no takeover lands in between;
  // the heartbeat is renewed with the transaction);
  // FAILED_PRECONDITION (JOB_TAKEN_OVER) otherwise: the step must return that error so that
  // its savepoint is rolled back, and the caller must stop running the job. A store failure
  // (lost connection) is marked as such: the engine stops the process (crash-only).
  [[nodiscard]] virtual absl::Status Fence(absl::string_view kind, absl::string_view job_id,
                                           int64_t epoch) = 0;
  // The job is finished (or this replica stops running it, e.g. at shutdown): the claim goes,
  // if it is still held under `epoch`, so another replica may claim it at once.
  [[nodiscard]] virtual absl::Status Release(absl::string_view kind, absl::string_view job_id,
                                             int64_t epoch) = 0;
  // Claim, inside a transaction: the claim is written (and visible) with the transaction.
  [[nodiscard]] virtual absl::StatusOr<std::optional<int64_t>> ClaimInTxn(
      absl::string_view kind, absl::string_view job_id) = 0;
  // Release, inside a transaction: the claim goes with the transaction's last progress.
  [[nodiscard]] virtual absl::Status ReleaseInTxn(absl::string_view kind,
                                                  absl::string_view job_id, int64_t epoch) = 0;
  // How often a holder should renew its claims (well within the takeover age).
  virtual absl::Duration heartbeat_interval() const = 0;
};

// One process alone on its store (SQLite): it holds every job, always under epoch 1; nothing is
// stored and nothing can be taken over.
class SoleJobClaims final : public JobClaims {
 public:
  absl::StatusOr<std::optional<int64_t>> Claim(absl::string_view, absl::string_view) override {
    return std::optional<int64_t>(1);
  }
  absl::StatusOr<bool> Heartbeat(absl::string_view, absl::string_view, int64_t) override {
    return true;
  }
  absl::Status Fence(absl::string_view, absl::string_view, int64_t) override {
    return absl::OkStatus();
  }
  absl::Status Release(absl::string_view, absl::string_view, int64_t) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<int64_t>> ClaimInTxn(absl::string_view,
                                                    absl::string_view) override {
    return std::optional<int64_t>(1);
  }
  absl::Status ReleaseInTxn(absl::string_view, absl::string_view, int64_t) override {
    return absl::OkStatus();
  }
  absl::Duration heartbeat_interval() const override { return absl::InfiniteDuration(); }
};

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_JOB_CLAIMS_H_

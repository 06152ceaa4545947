// Purging dead letters in chunks. A purge deletes at most kPurgeChunk rows per engine
// transaction, so a large purge never holds the writer for seconds (workers' requests
// interleave with it). Each chunk deletes its rows AND updates the purge's audit record
// (written by the first chunk, with the running count) in the same transaction: nothing leaves
// the DLQ unaudited, even if the server dies mid-purge. Only dead letters dead-lettered before
// the purge started are considered, so a purge ends even while new ones keep arriving.
//
// Idempotency ("run once"): a purge with a request_id is a job (kPurgeJob, request_id) held
// through JobClaims (job_claims.h) by the replica running it: its first chunk claims it in the
// transaction that records the audit, each later chunk fences the claim (renewing its heartbeat)
// in its transaction, and the last chunk releases it in the transaction that writes the final
// count. So a retried call (same request_id, same filter and note) on any replica:
//   - while the purge runs in this process: waits for its end and answers its final count;
//   - while it runs on another replica (its claim is fresh): UNAVAILABLE (PURGE_IN_PROGRESS),
//     deleting nothing: retry the same request for the final count. Never a partial count;
//   - once it ended, or once its replica died and its claim went stale (the takeover age):
//     claims it and finishes it, after the count recorded so far, over the dead letters there
//     when it was first recorded (dead-lettered before its audit record's time); an ended purge
//     finds nothing more, so the answer is its final count. Deletes are by filter, so nothing is
//     deleted or counted twice: each chunk's deletes and count commit under one holder only.
// On SQLite (SoleJobClaims) the one process always holds the claim: a retry after a crash
// finishes the purge the crash cut short. The same request_id with a different request is
// ALREADY_EXISTS (REQUEST_ID_REUSED), naming request_id. A purge without a request_id is not a
// job: a retry of it is a new purge. Dry runs change nothing and are answered afresh.
#ifndef RETRYD_SERVER_DLQ_PURGE_H_
#define RETRYD_SERVER_DLQ_PURGE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/filter.h"
#include "server/dlq/dlq_counters.h"
#include "server/dlq/job_claims.h"
#include "server/engine/engine.h"
#include "server/store/store.h"

namespace retryd {

// Rows deleted per transaction (about 50 ms of writer time on the benchmark machine).
inline constexpr int64_t kPurgeChunk = 1000;

// The purges with a request_id that are running in this process, so that a retried call waits
// for the end of the one it repeats. Thread-safe.
class RunningPurges {
 public:
  using Done = std::function<void(absl::StatusOr<int64_t>)>;

  // A purge with `request_id` started (its first chunk recorded it).
  void Add(const std::string& request_id);
  // If the purge with `request_id` is still running, `done` will get its final answer: true.
  // False (and `done` untouched) when none is running.
  bool Join(const std::string& request_id, Done& done);
  // The purge with `request_id` ended with `result`: answers every call that joined it.
  void End(const std::string& request_id, const absl::StatusOr<int64_t>& result);

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<Done>> waiting_ ABSL_GUARDED_BY(mu_);
};

// Purges the dead letters matching `filter`; `audit` has identity, peer, method, filter, note,
// request_id and target set. `done` gets the number purged (on the engine's syncer thread, once
// the last chunk is durable). `running` (shared by every purge of the process; kept alive by the
// purge while it runs) tracks purges with a request_id; `claims` (null: SoleJobClaims; must
// outlive the purge) holds them across replicas.
void PurgeInChunks(Engine* engine, const EnvelopeFilter& filter, absl::Time started,
                   AuditRecord audit, DlqCounters* counters,
                   std::shared_ptr<RunningPurges> running, JobClaims* claims,
                   std::function<void(absl::StatusOr<int64_t>)> done);

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_PURGE_H_

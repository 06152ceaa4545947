// Purging dead letters in chunks. A purge deletes at most kPurgeChunk rows per engine
// transaction, so a large purge never holds the writer for seconds (workers' requests
// interleave with it). Each chunk deletes its rows AND updates the purge's audit record
// (written by the first chunk, with the running count) in the same transaction: nothing leaves
// the DLQ unaudited, even if the server dies mid-purge. Only dead letters dead-lettered before
// the purge started are considered, so a purge ends even while new ones keep arriving.
//
// Idempotency: a request_id already recorded by a (non-dry-run) purge with the same request
// (filter and note) deletes nothing and answers that purge's final count: while that purge is
// still running in this process, the answer waits for its end (never a partial count). The same
// request_id with a different request is ALREADY_EXISTS (REQUEST_ID_REUSED), naming request_id.
// A purge cut short by a crash keeps the count it reached; purge again with a new request_id to
// finish it. Dry runs change nothing and are answered afresh.
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
// purge while it runs) tracks purges with a request_id.
void PurgeInChunks(Engine* engine, const EnvelopeFilter& filter, absl::Time started,
                   AuditRecord audit, DlqCounters* counters,
                   std::shared_ptr<RunningPurges> running,
                   std::function<void(absl::StatusOr<int64_t>)> done);

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_PURGE_H_

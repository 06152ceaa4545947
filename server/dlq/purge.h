// Purging dead letters in chunks. A purge deletes at most kPurgeChunk rows per engine
// transaction, so a large purge never holds the writer for seconds (workers' requests
// interleave with it). Each chunk deletes its rows AND updates the purge's audit record
// (written by the first chunk, with the running count) in the same transaction: nothing leaves
// the DLQ unaudited, even if the server dies mid-purge. Only dead letters dead-lettered before
// the purge started are considered, so a purge ends even while new ones keep arriving.
//
// Idempotency: a request_id already recorded by a (non-dry-run) purge answers that purge's
// count and deletes nothing. A purge cut short by a crash keeps the count it reached; purge
// again with a new request_id to finish it.
#ifndef RETRYD_SERVER_DLQ_PURGE_H_
#define RETRYD_SERVER_DLQ_PURGE_H_

#include <functional>

#include "absl/status/statusor.h"
#include "server/core/filter.h"
#include "server/dlq/dlq_counters.h"
#include "server/engine/engine.h"
#include "server/store/store.h"

namespace retryd {

// Rows deleted per transaction (about 50 ms of writer time on the benchmark machine).
inline constexpr int64_t kPurgeChunk = 1000;

// Purges the dead letters matching `filter`; `audit` has identity, peer, method, filter, note,
// request_id and target set. `done` gets the number purged (on the engine's syncer thread, once
// the last chunk is durable).
void PurgeInChunks(Engine* engine, const EnvelopeFilter& filter, absl::Time started,
                   AuditRecord audit, DlqCounters* counters,
                   std::function<void(absl::StatusOr<int64_t>)> done);

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_PURGE_H_

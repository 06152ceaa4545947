// Counters of the dead-letter operations, for the metrics exporter (issue: metrics) to read:
// monotonic totals since start-up, updated after each commit. Thread-safe.
#ifndef RETRYD_SERVER_DLQ_DLQ_COUNTERS_H_
#define RETRYD_SERVER_DLQ_DLQ_COUNTERS_H_

#include <atomic>
#include <cstdint>

namespace retryd {

struct DlqCounters {
  // Dead letters deleted by the retention sweeper (retryd_dead_letters_trimmed_total).
  std::atomic<int64_t> retention_trimmed{0};
  // Dead letters deleted by PurgeDeadLetters (retryd_dead_letters_purged_total).
  std::atomic<int64_t> purged{0};
  // Dead letters re-scheduled by replays (retryd_replay_replayed_total).
  std::atomic<int64_t> replayed{0};
  // Dead letters a replay skipped because policy blocks their schema version
  // (retryd_replay_skipped_total).
  std::atomic<int64_t> replay_skipped{0};
};

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_DLQ_COUNTERS_H_

// Counters of the dead-letter operations, for the metrics exporter (issue: metrics) to read:
// monotonic totals since start-up, updated after each commit. Thread-safe.
#ifndef RETRYD_SERVER_DLQ_DLQ_COUNTERS_H_
#define RETRYD_SERVER_DLQ_DLQ_COUNTERS_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace retryd {

// Told, after each commit, what left the dead-letter queue and why (the metrics implement it).
// Called from the replay runner, the sweeper and purge completions; must be thread-safe and cheap.
class DlqObserver {
 public:
  virtual ~DlqObserver() = default;
  // `n` dead letters of `service` were deleted: `cause` is "retention" or "purge".
  virtual void OnDeadLettersRemoved(const std::string& service, const char* cause, int64_t n) = 0;
  // A replay re-scheduled `replayed` dead letters of `service` and skipped `skipped_blocked`
  // (schema version blocked by policy).
  virtual void OnReplayed(const std::string& service, int64_t replayed,
                          int64_t skipped_blocked) = 0;
};

struct DlqCounters {
  // Optional; set before the runner, sweeper and RPCs start.
  DlqObserver* observer = nullptr;
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

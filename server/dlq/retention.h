// RetentionSweeper: deletes dead letters older than their policy's `dead_letter.retention`
// (0 = keep until purged). Nothing leaves the DLQ silently: every trim is counted
// (DlqCounters::retention_trimmed), logged (`dead_letters_trimmed`, warn) and audited
// (method `RetentionSweep`, identity `retryd`, target the service) in the same transaction as
// the delete, which goes through the engine like every mutation.
#ifndef RETRYD_SERVER_DLQ_RETENTION_H_
#define RETRYD_SERVER_DLQ_RETENTION_H_

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/policy_set.h"
#include "server/dlq/dlq_counters.h"
#include "server/engine/engine.h"
#include "server/store/store.h"
#include "server/util/clock.h"

namespace retryd {

class RetentionSweeper {
 public:
  // The pointers must outlive the sweeper.
  RetentionSweeper(Engine* engine, Store* store, const PolicySet* policies, const Clock* clock,
                   DlqCounters* counters);
  ~RetentionSweeper();

  // Starts the sweeping thread; does nothing when no policy has a retention.
  void Start();
  void Stop();

  // One sweep over every service (also what the thread runs); returns the rows trimmed.
  absl::StatusOr<int64_t> SweepOnce();

  // How often the thread sweeps: half the shortest retention, between 1 s and 1 min.
  absl::Duration interval() const { return interval_; }

 private:
  void Loop();

  Engine* const engine_;
  Store* const store_;
  const PolicySet* const policies_;
  const Clock* const clock_;
  DlqCounters* const counters_;
  absl::Duration interval_ = absl::Minutes(1);
  bool enabled_ = false;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_RETENTION_H_

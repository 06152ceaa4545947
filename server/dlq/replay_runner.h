// ReplayRunner: filtered, paced, resumable replays of dead letters (StartReplay and friends).
//
// A replay is a row in the store's `replays` table: its retryd.v1.Replay (filter, pace, counts)
// plus the runner's progress — a keyset cursor over (dead_lettered_at, id), the phase and the
// canary ids. The runner thread paces work into the engine as transactions: each batch
// re-schedules the next dead letters after the cursor AND writes the new cursor and counts in
// the same transaction, so after a crash (kill -9) the replay resumes exactly after the last
// committed batch and nothing is replayed twice. Only dead letters dead-lettered before the
// replay was created are considered, so an envelope that fails again is not replayed again.
//
// Phases: with canary_count > 0 the replay first re-schedules that many (kCanary), then waits
// for each canary's outcome (kCanaryWait): all succeeded (or left the DLQ otherwise) → kMain;
// any dead-lettered again → FAILED with the reason. kMain re-schedules the rest at
// max_per_second until the filter is exhausted or `limit` is reached (SUCCEEDED), or
// CancelReplay (CANCELLED). Envelopes whose schema_version their policy blocks are skipped and
// counted. Dry runs count and sample, are recorded SUCCEEDED at once, and change no envelope.
#ifndef RETRYD_SERVER_DLQ_REPLAY_RUNNER_H_
#define RETRYD_SERVER_DLQ_REPLAY_RUNNER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "retryd/v1/admin_service.pb.h"
#include "server/core/policy_set.h"
#include "server/dlq/dlq_counters.h"
#include "server/engine/engine.h"
#include "server/store/store.h"
#include "server/util/clock.h"

namespace retryd {

// Runner phases, as stored in ReplayRow::phase.
enum class ReplayPhase : int { kMain = 0, kCanary = 1, kCanaryWait = 2 };

// Progress of one unfinished replay, for the metrics exporter.
struct ReplayProgress {
  std::string name;
  int state = 0;  // retryd.v1.ReplayState.
  int64_t matched = 0;
  int64_t replayed = 0;
  int64_t skipped_blocked_schema = 0;
};

class ReplayRunner {
 public:
  using ReplayCallback = std::function<void(absl::StatusOr<v1::Replay>)>;

  // The pointers must outlive the runner.
  ReplayRunner(Engine* engine, Store* store, const PolicySet* policies, const Clock* clock,
               DlqCounters* counters);
  ~ReplayRunner();

  // Starts the runner thread; unfinished replays found in the store resume.
  void Start();
  void Stop();

  // `req` must be validated (ValidateStartReplay). `audit` carries identity, peer and note;
  // the replay is created and audited in one transaction. A request_id already used by the same
  // request answers the existing replay as it is now; by a different request, ALREADY_EXISTS
  // naming request_id. `done` runs on the engine's syncer thread, once the change is durable.
  void StartReplay(const v1::StartReplayRequest& req, AuditRecord audit, ReplayCallback done);
  // NOT_FOUND for an unknown id; FAILED_PRECONDITION if it already SUCCEEDED or FAILED; a
  // cancelled replay is answered as is.
  void CancelReplay(int64_t id, AuditRecord audit, ReplayCallback done);
  absl::StatusOr<v1::Replay> GetReplay(int64_t id);
  // Newest first, ids below before_id (0: from the newest).
  absl::StatusOr<std::vector<v1::Replay>> ListReplays(int64_t before_id, int limit);

  // The pace applied to a request: the request's (0 = the cap), capped by the smallest
  // replay.max_per_second among the policies the filter may reach.
  double EffectiveRate(const v1::StartReplayRequest& req) const;

  // Unfinished replays and their counts (metrics: retryd_replay_* gauges), as of the runner's
  // last scan of the store; the scan's error when it failed (or has not run yet), so that a
  // caller does not show the counts of an older scan as current.
  absl::StatusOr<std::vector<ReplayProgress>> Progress() const;

  // Test/ops knob: how often the runner ticks.
  static constexpr absl::Duration kTick = absl::Milliseconds(20);

 private:
  struct Pace {
    absl::Time start;
    int64_t done = 0;  // Envelopes counted against the pace in this process.
    absl::Time next_canary_check = absl::InfinitePast();
  };

  void Loop();
  void Step(const ReplayRow& row);
  // One paced batch: re-schedules up to `budget` dead letters after the cursor; returns how
  // many it re-scheduled.
  absl::StatusOr<int64_t> RunBatch(int64_t id, int64_t budget);
  absl::Status CheckCanaries(int64_t id);

  Engine* const engine_;
  Store* const store_;
  const PolicySet* const policies_;
  const Clock* const clock_;
  DlqCounters* const counters_;

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<std::vector<ReplayProgress>> progress_ ABSL_GUARDED_BY(mu_) =
      absl::UnavailableError("the replay runner has not read the replays yet");
  absl::flat_hash_map<int64_t, Pace> pace_;  // Runner thread only.
  std::thread thread_;
};

// "replays/<id>" → id; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<int64_t> ParseReplayName(absl::string_view field, absl::string_view name);

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_REPLAY_RUNNER_H_

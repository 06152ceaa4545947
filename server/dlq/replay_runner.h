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
//
// Several replicas (PostgreSQL): every replica has a runner over the same `replays` table, and a
// replay is run by one of them at a time, the one holding its claim (job_claims.h). A runner
// claims an unfinished replay when it first sees it and, while another replica holds it, tries
// again every kClaimPollInterval; a claim whose holder stopped heartbeating (killed, paused) is
// taken over after the claims' takeover age, and the new holder resumes from the cursor of the
// last committed batch. Each batch (and each canary check) fences the claim in its transaction,
// so a holder that was taken over commits nothing more and stops running the replay (silently:
// the other holder runs it). CancelReplay on any replica writes the replay row; the holder sees
// it at its next step and releases the claim. On SQLite (SoleJobClaims) the one process holds
// every replay and nothing changes.
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
#include "server/dlq/job_claims.h"
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

  // The pointers must outlive the runner. `claims` says which replays this runner may run
  // (null: SoleJobClaims, the one process on a SQLite store runs them all); on PostgreSQL it is
  // a SharedJobClaims over `store`.
  ReplayRunner(Engine* engine, Store* store, const PolicySet* policies, const Clock* clock,
               DlqCounters* counters, JobClaims* claims = nullptr);
  ~ReplayRunner();

  // Starts the runner thread; unfinished replays found in the store resume (those another
  // replica holds are left to it).
  void Start();
  // Stops the runner thread and releases the claims it holds, so that another replica resumes
  // its replays at once. Idempotent.
  void Stop();
  // Stops the runner thread WITHOUT releasing its claims, as a killed process leaves them: they
  // go stale and other replicas take the replays over after the takeover age.
  void StopWithoutReleaseForTest();

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

  // The claims this runner holds replays by (the purges of the process use them too).
  JobClaims& claims() const { return *claims_; }

  // The pace applied to a request: the request's (0 = the cap), capped by the smallest
  // replay.max_per_second among the policies the filter may reach.
  double EffectiveRate(const v1::StartReplayRequest& req) const;

  // The unfinished replays this runner holds (all of them on SQLite) and their counts (metrics:
  // retryd_replay_* gauges; each replay is reported by one replica), as of the runner's last
  // scan of the store; the scan's error when it failed (or has not run yet), so that a
  // caller does not show the counts of an older scan as current.
  absl::StatusOr<std::vector<ReplayProgress>> Progress() const;

  // Test/ops knob: how often the runner ticks.
  static constexpr absl::Duration kTick = absl::Milliseconds(20);
  // How often a runner tries again to claim an unfinished replay another replica holds (a
  // replay it has not seen before is claimed at once). A takeover happens within this much
  // after the holder's claim went stale; not a setting, as the takeover age dominates it.
  static constexpr absl::Duration kClaimPollInterval = absl::Seconds(1);

 private:
  struct Pace {
    absl::Time start;
    int64_t done = 0;  // Envelopes counted against the pace in this process.
    absl::Time next_canary_check = absl::InfinitePast();
  };

  // A replay this runner holds the claim of.
  struct Held {
    int64_t epoch = 0;
    absl::Time next_heartbeat;
  };

  void Loop();
  // Claims, heartbeats and releases for this scan of the unfinished replays: afterwards held_
  // has exactly the replays of `active` this runner may step.
  void UpdateClaims(const std::vector<ReplayRow>& active, absl::Time now);
  // Stops running replay `id` here: another replica holds it now.
  void Drop(int64_t id, absl::string_view why);
  void Step(const ReplayRow& row, int64_t epoch);
  // One paced batch: re-schedules up to `budget` dead letters after the cursor; returns how
  // many it re-scheduled. Sets *fenced_out when the claim was lost (nothing was written).
  absl::StatusOr<int64_t> RunBatch(int64_t id, int64_t epoch, int64_t budget, bool* fenced_out);
  absl::Status CheckCanaries(int64_t id, int64_t epoch, bool* fenced_out);
  // Joins the runner thread.
  void JoinThread();

  Engine* const engine_;
  Store* const store_;
  const PolicySet* const policies_;
  const Clock* const clock_;
  DlqCounters* const counters_;
  SoleJobClaims sole_claims_;
  JobClaims* const claims_;

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<std::vector<ReplayProgress>> progress_ ABSL_GUARDED_BY(mu_) =
      absl::UnavailableError("the replay runner has not read the replays yet");
  // Runner thread only (and the stopping thread once it has joined the runner).
  absl::flat_hash_map<int64_t, Pace> pace_;
  absl::flat_hash_map<int64_t, Held> held_;
  // Replays another replica held at the last try: when to try claiming them again.
  absl::flat_hash_map<int64_t, absl::Time> next_claim_;
  std::thread thread_;
};

// "replays/<id>" → id; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<int64_t> ParseReplayName(absl::string_view field, absl::string_view name);

}  // namespace retryd

#endif  // RETRYD_SERVER_DLQ_REPLAY_RUNNER_H_

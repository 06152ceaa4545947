// Engine: runs retryd's state machine over a Store. The transitions and the state they change
// (the schedule, the lease table, the parked long-polls, the counts, the guards) are the
// Scheduler's (server/core/scheduler.h: in memory for one process, LocalScheduler; in the database
// for replicas sharing PostgreSQL); the engine applies every mutation through it on one writer
// thread in batches: all requests queued while the previous
// batch was being applied share the next transaction (group commit), and each is answered only
// after that transaction is durable. Durability is a pipeline stage of its own (CommitPipeline,
// commit_pipeline.h): once a batch is committed, the syncer thread fsyncs the log and answers the
// batch, while the writer already applies the next one; the log is append-only, so one fsync makes
// every earlier commit durable too.
//
// Crash-only: a store failure (store_failure.h) after a batch began writing, or a failed sync or
// checkpoint, stops the process with kStoreFailureExitCode before anything more is answered, and
// start-up recovery (Start rebuilds everything from the store) is the one recovery path: the
// engine never keeps running on an in-memory schedule that may no longer match the disk. Errors
// that change nothing (BEGIN refused, a request's own domain error such as an unknown lease
// token) are answered without stopping.
//
// Threading: the public methods are thread-safe and asynchronous. Their `done` callbacks run on
// the syncer thread after the commit is durable, in commit order (a request refused before it
// is queued is answered on the caller's thread), and must not block.
#ifndef RETRYD_SERVER_ENGINE_ENGINE_H_
#define RETRYD_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/circuit_breaker.h"
#include "server/core/envelope.h"
#include "server/core/policy_set.h"
#include "server/core/scheduler.h"
#include "server/core/service_guards.h"
#include "server/engine/commit_pipeline.h"
#include "server/engine/engine_observer.h"
#include "server/store/store.h"
#include "server/util/clock.h"
#include "server/util/random.h"

namespace retryd {

// The exit code of a process stopped by a store failure (EX_IOERR of sysexits.h).
inline constexpr int kStoreFailureExitCode = 74;

// Logs a store failure (event store_failed, with the stage it happened in) and ends the process
// with kStoreFailureExitCode at once, without answering anything more or running destructors.
[[noreturn]] void StopOnStoreFailure(absl::string_view stage, const absl::Status& status);

struct EngineOptions {
  // A Lease response stops growing past this many bytes (but holds at least one envelope).
  int64_t max_lease_response_bytes = 3670016;
  // How long succeeded envelopes are remembered for duplicate detection. Afterwards they are
  // forgotten (deleted, with their keys) by housekeeping passes that keep pace with the success
  // rate; see Engine::ForgetSucceeded and the three settings below it.
  absl::Duration dedupe_window = absl::Hours(24);
  // Most requests accepted and not yet answered; past it Submit refuses with RESOURCE_EXHAUSTED.
  int64_t max_pending_requests = 100000;
  // Most requests applied in one transaction.
  int max_batch = 1024;
  // Most expired leases re-decided in one transaction.
  int max_expirations_per_batch = 1000;
  // A housekeeping pass deletes at most max(forget_min_slice, forget_slice_per_op × requests in
  // its batch) expired succeeded envelopes: a batch holds at most one success per request, so
  // passes in consecutive batches can delete up to twice as fast as envelopes succeed; the slice
  // grows with the batch, so it costs each request in it about the same, never a long stall.
  int forget_min_slice = 64;
  int forget_slice_per_op = 2;
  // Once a pass has deleted every expired envelope, the next waits until the oldest one left
  // leaves the window, but at least this long, so that envelopes that expire one batch after
  // another are deleted a slice at a time rather than one batch's worth per pass. A succeeded
  // envelope is therefore forgotten up to about this long after its window ended.
  absl::Duration forget_granularity = absl::Milliseconds(100);
  // The longest wait between two housekeeping passes, whatever the stored times say (a wall clock
  // stepped back makes envelopes look younger than they are).
  absl::Duration housekeeping_interval = absl::Minutes(1);
  // How often committed data is checkpointed from the log into the store's main file, off the
  // writer's thread (when something was committed since). Often, so that each pass writes little:
  // a pass's flush of the main file delays the log's fsyncs, which every answer waits for (50 ms
  // passes gave a 16 ms p99 at 64 requests in flight, 2 ms passes 8 ms, for 3 % of throughput).
  absl::Duration checkpoint_interval = absl::Milliseconds(2);
  // When the log still holds more pages than this after a checkpoint, the writer pauses between
  // two batches for one more checkpoint pass, so that the log starts over from its beginning
  // (32 MB of 4 KB pages; the pause is about two fsyncs).
  int64_t log_restart_pages = 8192;
  // Disk-full check: before a batch begins, when `free_bytes` reports less than min_free_bytes
  // free on the store's filesystem, the batch's requests that would write are refused with
  // RESOURCE_EXHAUSTED (nothing was changed, and the process keeps running); requests that only
  // read (GuardViews) and the engine's own work (lease expiries, housekeeping, which deletes)
  // go on, within the reserve. It is asked at most once per batch with requests, and the
  // refusals stop by themselves once it reports enough again. A write that still fails after
  // BEGIN (the reserve was not enough) stops the process as any store failure does.
  // Optional: null or min_free_bytes <= 0 turns the check off. `free_bytes` answers the free
  // bytes, or an error (logged; the batch then goes ahead, as the check could not be made); it
  // is called on the writer thread and must be quick (statvfs, see server/store/free_space.h).
  int64_t min_free_bytes = 0;
  std::function<absl::StatusOr<int64_t>()> free_bytes;
  // Where free_bytes looks, for the refusal's message (e.g. the data directory).
  std::string free_bytes_where;
  // Told about decisions, leases and successes (the metrics) on the writer thread, and about
  // syncs on the syncer thread.
  // Optional; must outlive the Engine.
  EngineObserver* observer = nullptr;
  // Builds the engine's scheduler; null: a LocalScheduler.
  std::function<std::unique_ptr<Scheduler>(const SchedulerContext&)> make_scheduler;
};

struct LeaseArgs {
  std::string service;
  int max_messages = 1;
  absl::Duration visibility_timeout = absl::Seconds(30);
  // Park until this time when nothing is due; InfinitePast or <= now answers at once.
  absl::Time wait_until = absl::InfinitePast();
  // True once the caller has gone away (e.g. cancelled its long-poll). A parked lease whose
  // caller is gone is dropped instead of served, so nothing is leased to nobody. Optional.
  std::function<bool()> cancelled;
};

class Engine;

// What an operation defined outside the engine (DLQ purge and replay, retention, audit) may do
// on the writer thread, inside the batch transaction: write through store(), and tell the engine
// about the envelopes it moved so the schedule and the counts stay true.
class EngineTxn {
 public:
  Store& store() const;
  // The batch's time.
  absl::Time now() const { return now_; }
  // `e`, already updated in the store, left the dead-letter queue and is now scheduled.
  void Requeued(const Envelope& e);
  // `n` dead letters of `service` were deleted from the store.
  void DeadLettersRemoved(const std::string& service, int64_t n);

 private:
  friend class Engine;
  EngineTxn(Engine& engine, absl::Time now) : engine_(engine), now_(now) {}
  Engine& engine_;
  const absl::Time now_;
};

class Engine {
 public:
  using DecisionCallback = std::function<void(absl::StatusOr<Decision>)>;
  using LeaseCallback = std::function<void(absl::StatusOr<std::vector<LeasedItem>>)>;
  using DoneCallback = std::function<void(absl::Status)>;
  using TimeCallback = std::function<void(absl::StatusOr<absl::Time>)>;
  // Whether the caller may act for a service (auth: a WORKER token limited to services).
  using ServiceCheck = std::function<bool(const std::string& service)>;

  // Builds the scheduler (EngineOptions::make_scheduler) and restores it from `store`
  // (Scheduler::Restore), then starts the writer thread. The pointers must outlive the Engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Start(Store* store, const PolicySet* policies,
                                                       const Clock* clock, Random* rng,
                                                       EngineOptions options);
  ~Engine();

  // Records a failure: a first failure when `lease_token` is empty (idempotent on
  // (service, message_id)), the outcome of a leased retry otherwise. `envelope` must be
  // validated. FAILED_PRECONDITION for an unknown, expired or foreign lease token.
  void ReportFailure(Envelope envelope, Failure failure, std::string lease_token,
                     DecisionCallback done);
  // Leases up to args.max_messages due envelopes, oldest next_retry_at first; parks until one is
  // due or args.wait_until passes (then answers an empty list).
  void Lease(LeaseArgs args, LeaseCallback done);
  // A leased retry succeeded. FAILED_PRECONDITION for an unknown, expired or foreign token.
  void ReportSuccess(std::string service, std::string lease_token, DoneCallback done);
  // Moves a lease's expiry to now + visibility_timeout; answers the new expiry.
  // FAILED_PRECONDITION for an unknown or expired token; PERMISSION_DENIED (SERVICE_NOT_ALLOWED)
  // when `may_act_for` is set and refuses the service of the leased envelope.
  void ExtendLease(std::string lease_token, absl::Duration visibility_timeout,
                   ServiceCheck may_act_for, TimeCallback done);

  // Runs `apply` on the writer thread in the next batch, in its own savepoint like every op:
  // its writes are kept only if it returns OK, and `done` gets the commit's status (or apply's
  // error) once the batch is durable. `apply` must be quick (the batch waits for it). This is
  // the hook for operations that live outside the engine (server/dlq: purge, replay, retention,
  // audit events).
  using TxnFunction = std::function<absl::Status(EngineTxn&)>;
  void RunInTransaction(TxnFunction apply, DoneCallback done);

  // Counts per known service.
  absl::flat_hash_map<std::string, ServiceStats> Stats() const;

  // ---- Retry budget and circuit breaker (engine_guards.cc) ----

  using CircuitCallback = std::function<void(absl::StatusOr<CircuitView>)>;
  using GuardViewsCallback =
      std::function<void(absl::StatusOr<std::map<std::string, GuardView>>)>;

  // Batched first-attempt counts: first attempts for the budget, successes for the circuit's
  // window. Stored with the batch, like every guard change (see README "How backoff, budget and
  // circuit work together").
  void RecordOutcomes(std::string service, int64_t successes, int64_t failures,
                      DoneCallback done);
  // Sets a circuit override; stored with the caller's note and peer (from `audit`) and the
  // time, and recorded in the audit log in the same transaction (method, target, detail, time
  // and result are filled in here). Answers the circuit after the change, once committed.
  // Operator work: never refused for load (max_pending_requests); UNAVAILABLE once stopping.
  void SetCircuitOverride(std::string service, CircuitOverride mode, AuditRecord audit,
                          CircuitCallback done);
  // Every known service's circuit and budget left, computed on the writer thread and answered
  // with its batch. An operator read: never refused for load (max_pending_requests), as an
  // overview is most needed when the server is overloaded. UNAVAILABLE once the engine is
  // stopping, or when the batch's commit failed (the views may describe what was undone); the
  // caller then has no views, and must say so rather than show defaults.
  void GuardViews(GuardViewsCallback done);
  // Thread-safe, immediate: a service's circuit as of the last batch.
  CircuitView Circuit(const std::string& service) const;

  // Shutdown, step 1: answers every parked long-poll with an empty list, and from now on Lease
  // answers at once.
  void StopParking();
  // Shutdown, step 2: applies what is queued, commits, and stops the writer. Later calls are
  // answered UNAVAILABLE. Idempotent.
  void Stop();

 private:
  class Op;
  class ReportFailureOp;
  class LeaseOp;
  class ReportSuccessOp;
  class ExtendLeaseOp;
  class RecordOutcomesOp;
  class SetCircuitOverrideOp;
  class GuardViewsOp;
  class FunctionOp;
  friend class EngineTxn;

  Engine(Store* store, const PolicySet* policies, const Clock* clock, Random* rng,
         EngineOptions options);
  // The scheduler options_.make_scheduler builds (a LocalScheduler when it is null), told the
  // engine's store, policies, random source, limits and hooks.
  std::unique_ptr<Scheduler> NewScheduler(absl::Time started_at);

  // Queues `op` for the writer. A `limited` op is refused with RESOURCE_EXHAUSTED when
  // max_pending_requests are already unanswered.
  void Submit(std::unique_ptr<Op> op, bool limited = true);
  void WriterLoop();
  // Wakes the writer (the commit pipeline wants it to pause).
  void WakeWriter();
  // Applies one batch of queued ops (plus due lease expiries, servable long-polls, circuit
  // transitions and housekeeping) in one transaction and answers them: BeginBatch, ApplyBatch,
  // CommitBatch, AnswerBatch.
  void RunBatch(std::vector<std::unique_ptr<Op>> ops);
  // What a batch's requests came to: applied (answered OK once durable) or refused.
  struct Batch {
    int requests = 0;
    std::vector<std::unique_ptr<Op>> committed;
    std::vector<std::pair<std::unique_ptr<Op>, absl::Status>> failed;
  };
  // Opens the batch's transaction. When the store refuses, nothing was written and nothing in
  // memory changed: `ops` are answered UNAVAILABLE and false is returned.
  bool BeginBatch(std::vector<std::unique_ptr<Op>>* ops);
  // Before a batch begins: when the disk is below EngineOptions::min_free_bytes, answers the ops
  // that would write RESOURCE_EXHAUSTED (nothing was changed) and removes them from `ops`; logs
  // disk_low once when an episode starts and disk_ok when it ends.
  void RefuseWritesWhenDiskLow(std::vector<std::unique_ptr<Op>>* ops);
  // Inside the transaction: expires due leases, applies `ops` (parking long-polls that found
  // nothing), advances circuits, serves waiters, runs a due housekeeping pass, stores the guards.
  void ApplyBatch(absl::Time now, std::vector<std::unique_ptr<Op>> ops, bool stop_parking,
                  bool housekeeping_due, Batch* batch);
  // Commits (a failed commit stops the process) and tells the observer; `start` is when the
  // batch began by this process's clock (for the writer figures).
  void CommitBatch(absl::Time start, int requests);
  // Adds a batch to the writer figures, logged every 10 s.
  void CountBatch(absl::Time start, absl::Time applied, absl::Time committed, int requests);
  // Publishes counts and circuits, then hands the batch's answers, and those of long-polls whose
  // wait is over (all when `stop_parking`), to the syncer.
  void AnswerBatch(absl::Time now, bool stop_parking, Batch batch);
  absl::Time NextWake(absl::Time now) const;
  // Restores the scheduler from the store (start-up recovery) and publishes what it holds.
  absl::Status Reload();
  // Applies one op in its own savepoint: its writes are kept if it succeeds and undone if it
  // fails for a reason of its own (the answer); a store failure stops the process.
  absl::Status ApplyOp(Op& op, absl::Time now);
  void PublishStats();

  // An answer to give once the batch it belongs to is durable.
  struct Answer {
    std::unique_ptr<Op> op;
    absl::Status status;
    bool empty_lease = false;  // A long-poll whose wait is over: answered with no envelopes.
  };
  class BatchAnswers;
  // Hands a committed batch's answers to the commit pipeline, which gives them once durable.
  void AnswerWhenDurable(std::vector<Answer> answers);

  void ExpireLeases(absl::Time now, int* changed);
  // A housekeeping pass inside the open batch of `ops` requests: deletes the next slice of
  // succeeded envelopes whose dedupe window has passed, and sets when the next pass is due.
  // A store error is the batch's error (it is not committed).
  [[nodiscard]] absl::Status ForgetSucceeded(absl::Time now, int ops);

  // Guard hooks (engine_guards.cc). Guard requests change the guards inside an op's savepoint
  // (between guards_.BeginOp and guards_.EndOp, so that an op that is not kept leaves the guards
  // as they were); what the batch changed is stored by Scheduler::SaveGuards before the commit.
  // Applies every due time-driven circuit transition (OPEN → HALF_OPEN); a failure is a store
  // failure and stops the process.
  void AdvanceCircuits(absl::Time now);
  // Logs a change of `service`'s circuit state.
  void LogCircuit(const std::string& service);
  // Serves the parked long-polls that have due work (Scheduler::ServeWaiters); the served ones
  // join `done`, to be answered with the batch.
  void ServeWaiters(absl::Time now, std::vector<std::unique_ptr<Op>>* done);

  Store* const store_;
  const PolicySet* const policies_;
  const Clock* const clock_;
  Random* const rng_;
  const EngineOptions options_;

  // Writer-thread state (no lock: only the writer thread touches it after Start).
  // The schedule, leases, parked long-polls, counts and guards. Destroyed first (~Engine): a
  // scheduler's own threads (SharedScheduler's listener) wake the writer through mu_.
  std::unique_ptr<Scheduler> scheduler_;
  // When the next housekeeping pass is due (ForgetSucceeded).
  absl::Time next_housekeeping_ = absl::InfinitePast();
  // scheduler_'s budgets and circuits (writer thread, but for its thread-safe Snapshot()).
  ServiceGuards& guards_;
  // Writer figures since the last `writer_stats` log line (debug level, every 10 s).
  struct WriterFigures {
    int64_t batches = 0;
    int64_t ops = 0;
    absl::Duration apply = absl::ZeroDuration();
    absl::Duration commit = absl::ZeroDuration();
    int64_t forgotten = 0;  // Succeeded envelopes deleted by housekeeping.
    int64_t pauses = 0;  // For the checkpointer's last pass.
    absl::Duration paused = absl::ZeroDuration();
    absl::Time since = absl::InfinitePast();
  } figures_;
  // True while the disk is below EngineOptions::min_free_bytes (RefuseWritesWhenDiskLow).
  bool disk_low_ = false;

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Op>> queue_ ABSL_GUARDED_BY(mu_);
  // Limited requests accepted and not yet answered (see EngineOptions::max_pending_requests).
  std::atomic<int64_t> pending_requests_{0};
  bool stop_parking_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool kick_ ABSL_GUARDED_BY(mu_) = false;

  mutable absl::Mutex stats_mu_;
  absl::flat_hash_map<std::string, ServiceStats> stats_ ABSL_GUARDED_BY(stats_mu_);

  // The syncer and the checkpointer (started before the writer, stopped after it).
  std::unique_ptr<CommitPipeline> pipeline_;
  std::thread writer_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_ENGINE_ENGINE_H_

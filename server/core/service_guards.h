// ServiceGuards: the retry budget and the circuit breaker of every service, as the engine uses
// them. It creates each service's pair on first use from the service's policy, applies the budget
// to scheduling decisions, feeds outcomes to the breaker, and keeps a snapshot of every circuit
// for readers on other threads.
//
// Every change belongs to an op: the engine brackets each op (each savepoint of its batch) with
// BeginOp/EndOp, and the changes of an op that is not kept are undone, so the guards never hold
// what the store does not. The services changed by kept ops are taken (TakeChanged) at the end of
// the batch and their Record()s, windows included, are stored in its transaction.
//
// Fleet-wide guards (PostgreSQL, server/core/guard_sync.h): with EnableJournal, every change
// is also recorded per service as a GuardEvent, kept or dropped with its op like the undo, so
// that a GuardSync can apply this batch's changes again to the shared row as another replica
// left it (Replay on guards of its own), and LoadShared takes a shared row over in the middle of
// a batch. Off by default (one process): then no event is built or stored.
//
// Threading: everything but Snapshot() belongs to the engine's writer thread. Snapshot() is
// thread-safe and sees the state as of the last Publish().
#ifndef RETRYD_SERVER_CORE_SERVICE_GUARDS_H_
#define RETRYD_SERVER_CORE_SERVICE_GUARDS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/circuit_breaker.h"
#include "server/core/envelope.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"
#include "server/core/retry_budget.h"

namespace retryd {

// One service's guards as ListServices shows them.
struct GuardView {
  CircuitView circuit;
  // Retries the budget still allows now; -1 when the service has no budget.
  int64_t budget_remaining = -1;
};

// One change to a service's guards, as a journal records it (EnableJournal): enough to make it
// again on other guards (Replay). `at` is the change's time (a deferral's: the time it deferred
// to).
struct GuardEvent {
  enum class Kind {
    kFirstFailure,  // RecordFirstFailure.
    kOutcomes,      // RecordOutcomes(a = successes, b = failures).
    kFailure,       // OnFailure(error_class, a = envelope id).
    kSuccess,       // OnSuccess(a = envelope id).
    kAdvance,       // A time-driven transition (LeaseAllowance, AdvanceAll).
    kLeased,        // OnLeased(ids, drained).
    kOverride,      // SetOverride(mode, text = note, peer).
    kDeferral,      // ApplyBudget deferred a retry to `at` (the budget's pacing).
    kTrialHolder,   // SetTrialHolder(text = replica).
  };
  Kind kind = Kind::kAdvance;
  absl::Time at;
  int64_t a = 0;
  int64_t b = 0;
  ErrorClass error_class = ErrorClass::kUnspecified;
  std::vector<int64_t> ids;
  bool drained = false;
  CircuitOverride mode = CircuitOverride::kUnspecified;
  std::string text;
  std::string peer;
};

class ServiceGuards {
 public:
  // `policies` must outlive this. `started_at` is the `since` of circuits never seen.
  ServiceGuards(const PolicySet* policies, absl::Time started_at);

  // ---- Retry budget ----

  // Applies `service`'s budget to a SCHEDULED decision `d`, in place: unchanged when the budget
  // allows its time; later when deferred (DEAD_LETTERED with DEADLINE_EXCEEDED instead if that
  // would pass first_seen_at + max_retry_duration); DEAD_LETTERED with BUDGET_EXHAUSTED when the
  // budget refuses it. Other decisions are left alone.
  void ApplyBudget(const std::string& service, const Policy& policy, absl::Time first_seen_at,
                   absl::Time now, Decision* d);
  // A (non-duplicate) first failure: a first attempt for the budget.
  void RecordFirstFailure(const std::string& service, absl::Time now);
  // RecordOutcomes: first attempts for the budget and for the breaker's window. Returns true
  // when the circuit's stored record changed (the failures opened it).
  bool RecordOutcomes(const std::string& service, absl::Time now, int64_t successes,
                      int64_t failures);

  // ---- Circuit breaker (each bool: the circuit's stored record changed; store Record()) ----

  bool OnFailure(const std::string& service, absl::Time now, ErrorClass error_class,
                 int64_t envelope_id);
  bool OnSuccess(const std::string& service, absl::Time now, int64_t envelope_id);
  // How many envelopes of `service` Lease may hand out now (INT64_MAX: no limit). Applies a due
  // OPEN → HALF_OPEN first and sets *changed when it did.
  int64_t LeaseAllowance(const std::string& service, absl::Time now, bool* changed);
  // Without changing anything: whether LeaseAllowance would be above zero.
  bool MayLease(const std::string& service, absl::Time now) const;
  // Envelopes just leased (maybe none); `drained`: no more due ones were left. See
  // CircuitBreaker::OnLeased.
  bool OnLeased(const std::string& service, absl::Time now,
                const std::vector<int64_t>& envelope_ids, bool drained);
  bool SetOverride(const std::string& service, absl::Time now, CircuitOverride mode,
                   std::string note, std::string peer);
  // The record to store for `service`, its encoded windows (guard_state.h) included.
  CircuitRecord Record(const std::string& service);
  CircuitView Circuit(const std::string& service, absl::Time now);

  // The earliest time-driven circuit transition; InfiniteFuture if none.
  absl::Time NextTransition() const;
  // Applies every due time-driven transition; appends the services whose record changed.
  void AdvanceAll(absl::Time now, std::vector<std::string>* changed);

  // ---- Ops and storing ----

  // Starts an op: from here to EndOp, the first change to a service's guards saves them first.
  void BeginOp();
  // Ends the op: keep = its changes stand (and are taken by the next TakeChanged); otherwise
  // every service it changed is put back as it was (one it created is forgotten).
  void EndOp(bool keep);
  // Undoes the current op's changes so far; the op goes on. For an op that succeeds without
  // keeping what it decided (a first failure that turns out to be a duplicate gives back the
  // retry the budget booked for it, pacing included).
  void UndoOp();
  // The services whose guards kept ops changed since the last call (sorted): the engine stores
  // Record() of each in the batch's transaction.
  std::vector<std::string> TakeChanged();

  // ---- Journal (fleet-wide guards, server/core/guard_sync.h) ----

  // Records every change from now on, and names this replica (the holder of the HALF_OPEN
  // trials it claims). While on, a HALF_OPEN circuit's trials are leased only by its holder:
  // LeaseAllowance is 0 on another replica, and on a circuit nobody holds yet it sets *changed
  // (the caller claims it, GuardSync::Claim) and allows as if it held it. A claim lapses when
  // its holder leased no trial within the policy's open_duration of the HALF_OPEN's start (the
  // holder may have died): the circuit is then claimable again.
  void EnableJournal(std::string replica);
  bool journaling() const { return journaling_; }
  const std::string& replica() const { return replica_; }
  // The services with recorded changes (kept ops and the current one), sorted.
  std::vector<std::string> Journaled() const;
  // `service`'s recorded changes, oldest first (empty if none).
  const std::vector<GuardEvent>& Journal(const std::string& service) const;
  // Takes the shared row `record` over as `service`'s state in the middle of a batch: the guards
  // become `record` with this batch's recorded changes made again on it. Inside an op, the op's
  // undo then returns to `record` with the changes recorded before the op (never to the state
  // the row replaced). The budget's bookings stay (they are this replica's). DATA_LOSS as
  // RestoreCircuit.
  absl::Status LoadShared(const CircuitRecord& record);
  // The batch's changes of `service` are in the shared row `record` as written: takes it over
  // and forgets the service's journal. Outside an op.
  absl::Status LoadSaved(const CircuitRecord& record);
  // Makes `events` (another guards' journal) again on `service`, recording nothing.
  void Replay(const std::string& service, absl::Time now, const std::vector<GuardEvent>& events);
  // HALF_OPEN only: this replica holds `service`'s trials, or `replica` does.
  void SetTrialHolder(const std::string& service, absl::Time now, const std::string& replica);
  // The circuit's automatic state with the override applied (CLOSED for a service never seen),
  // and the holder of its HALF_OPEN trials (empty: none).
  CircuitState State(const std::string& service) const;
  std::string TrialHolder(const std::string& service) const;
  // Whether this replica may claim `service`'s HALF_OPEN trials at `now`: nobody holds them,
  // this replica does, or the holder's claim lapsed (see EnableJournal).
  bool MayClaimTrials(const std::string& service, absl::Time now) const;
  // Until EndBatch: this replica leases no trial of `service` (its claim could not be made).
  void BarTrials(const std::string& service);
  // The batch ended: forgets every bar. Journals stay until LoadSaved (a change GuardSync could
  // not save in this batch goes with the next one).
  void EndBatch();

  // ---- Rebuild (start-up, and after a failed commit) ----

  // Forgets every service.
  void Reset();
  void RestoreScheduled(const std::string& service, absl::Time now, absl::Time next_retry_at);
  // Restores a stored record and its windows. DATA_LOSS when the windows cannot be decoded: the
  // record is restored and the windows start empty.
  absl::Status RestoreCircuit(const CircuitRecord& record);

  // ---- Readers ----

  // Every known service's guards at `now` (writer thread).
  std::map<std::string, GuardView> Views(absl::Time now);
  // Copies the circuits changed since the last call into the snapshot.
  void Publish(absl::Time now);
  // Thread-safe: `service`'s circuit as of the last Publish, with a due OPEN → HALF_OPEN
  // already applied. A service never seen is CLOSED since start-up.
  CircuitView Snapshot(const std::string& service, absl::Time now) const;

 private:
  struct Entry {
    Entry(const Policy& policy, absl::Time now);
    const Policy* policy;
    std::optional<RetryBudget> budget;  // Absent when the policy has no budget.
    CircuitBreaker circuit;
    bool in_op = false;  // Changed by the current op (saved first, or created by it).
    // Journal (EnableJournal): the batch's changes, and where the current op's begin.
    std::vector<GuardEvent> journal;
    size_t op_mark = 0;
  };

  Entry& Get(const std::string& service, absl::Time now);
  const Entry* Find(const std::string& service) const;
  // Get, for a change: in an op, saves the entry before its first change (for an undo); outside
  // one, marks it changed.
  Entry& Change(const std::string& service, absl::Time now);
  // Marks a service's circuit for the next Publish and tracks pending transitions.
  void Touch(const std::string& service, const Entry& entry);
  // Takes `record` over into `entry` (shared: a row without budget windows empties the budget's).
  static absl::Status Load(Entry& entry, const CircuitRecord& record, bool shared);
  // Records `event` in `service`'s journal (EnableJournal).
  void Note(const std::string& service, Entry& entry, GuardEvent event);
  // Makes one recorded change on `entry`.
  static void Apply(Entry& entry, const GuardEvent& event);
  // Fleet-wide trials (EnableJournal): whether this replica may lease `entry`'s trials at `now`
  // (*claim: only after claiming them).
  bool MayTakeTrials(const std::string& service, const Entry& entry, absl::Time now,
                     bool* claim) const;

  const PolicySet* const policies_;
  const absl::Time started_at_;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> entries_;
  // Services whose circuit has a time-driven transition pending.
  absl::flat_hash_set<std::string> pending_;
  absl::flat_hash_set<std::string> dirty_;
  // Changed by kept ops (or outside ops), not yet taken for storing.
  absl::flat_hash_set<std::string> changed_;
  // The current op: whether one is open, the services it changed, and those it created.
  bool in_op_ = false;
  std::vector<std::string> op_changed_;
  absl::flat_hash_set<std::string> op_created_;
  // Journal (EnableJournal).
  bool journaling_ = false;
  std::string replica_;
  absl::flat_hash_set<std::string> journaled_;
  absl::flat_hash_set<std::string> barred_;

  mutable absl::Mutex snapshot_mu_;
  absl::flat_hash_map<std::string, CircuitView> snapshot_ ABSL_GUARDED_BY(snapshot_mu_);
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_SERVICE_GUARDS_H_

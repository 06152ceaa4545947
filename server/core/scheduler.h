// The scheduler's seam: the Scheduler interface (what a failure, a lease, a success, an extension
// and an expired lease do to the envelopes of every service), what one is built from
// (SchedulerContext), and the types its transitions speak (SchedulerStore, the rows they read and
// write; LeasedItem, ServiceStats, LeaseWaiter, FailureOutcome, LeaseGrant). The engine
// (server/engine/engine.h) drives a Scheduler from its writer thread and never asks which one it
// has. LocalScheduler (server/core/local_scheduler.h) is the one-process implementation.
//
// Every implementation follows the same rules: it is called from the engine's writer thread only
// (no locks for the caller to take), every transition takes the batch's time `now` (no clock of
// its own decides), and a transition changes memory only after its store writes succeeded, but
// for the guards, which the caller's guards().EndOp(false) puts back. A store error is returned
// as is: the engine treats one after a batch began writing as fatal (crash-only), so memory and
// rows never have to be reconciled.
#ifndef RETRYD_SERVER_CORE_SCHEDULER_H_
#define RETRYD_SERVER_CORE_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/circuit_breaker.h"
#include "server/core/envelope.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"
#include "server/util/random.h"

namespace retryd {

// The rows the scheduler reads and writes: the write side of the Store (server/store/store.h,
// which extends it), inside the caller's transaction.
class SchedulerStore {
 public:
  virtual ~SchedulerStore() = default;
  // Looks an envelope up by its idempotency key or row id; nullopt when absent.
  virtual absl::StatusOr<std::optional<Envelope>> FindByKey(absl::string_view service,
                                                            absl::string_view message_id,
                                                            bool with_payload) = 0;
  virtual absl::StatusOr<std::optional<Envelope>> FindById(int64_t id, bool with_payload) = 0;
  // Stores a new envelope and sets e->id. ALREADY_EXISTS (and nothing written) if the key is
  // taken.
  [[nodiscard]] virtual absl::Status Insert(Envelope* e) = 0;
  // Rewrites every field of a stored envelope but its payload and created_at.
  [[nodiscard]] virtual absl::Status Update(const Envelope& e) = 0;
  // Update() that also drops the payload, in one row write: the envelope succeeded, and only its
  // key (for duplicate detection) and history are still needed.
  [[nodiscard]] virtual absl::Status UpdateDroppingPayload(const Envelope& e) = 0;
  // Stores a service's circuit (state, override, and the guards' windows as opaque bytes),
  // replacing the previous record.
  [[nodiscard]] virtual absl::Status SaveCircuit(const CircuitRecord& record) = 0;
};

struct LeasedItem {
  Envelope envelope;  // Payload and history included.
  std::string lease_token;
  absl::Time lease_expires_at;
};

// Live counts of one service.
struct ServiceStats {
  int64_t scheduled = 0;
  int64_t leased = 0;
  int64_t dead = 0;
};

// A parked long-poll, as the scheduler sees it (the engine's Lease request).
class LeaseWaiter {
 public:
  virtual ~LeaseWaiter() = default;
  virtual const std::string& service() const = 0;
  // Its wait is over at this time (then it is answered with nothing).
  virtual absl::Time wait_until() const = 0;
  // Its caller has gone away: it is dropped rather than served.
  virtual bool caller_gone() const = 0;
};

// A failure decided: the envelope after the decision (as stored), and the decision. `duplicate`:
// a first failure already recorded; `envelope` is then the stored one, and nothing changed.
struct FailureOutcome {
  Envelope envelope;
  Failure failure;
  Decision decision;
  bool duplicate = false;
};

// Envelopes just leased, and for each how long after its next_retry_at.
struct LeaseGrant {
  std::vector<LeasedItem> items;
  std::vector<absl::Duration> lateness;
};

// Scheduler: what a failure, a lease, a success, an extension and an expired lease do to the
// envelopes of every service, on the writer thread, inside the batch transaction and each op's
// savepoint. Two implementations, chosen once at start-up where the store is chosen
// (EngineOptions::make_scheduler; the engine never asks which one it has):
//  - LocalScheduler (SQLite, one process): the schedule, the lease table and the counts live in
//    memory and are the single-process truth; the store holds the rows.
//  - SharedScheduler (PostgreSQL, N replicas): every decision about who may hold what is taken in
//    the database at the database's time (docs/shared-replicas.md); memory holds only the parked
//    long-polls, counts as last read plus this replica's changes, and guards refreshed from the
//    fleet's rows.

class Store;  // server/store/store.h (extends SchedulerStore)

class Scheduler {
 public:
  using ServiceCheck = std::function<bool(const std::string& service)>;
  using CircuitChanged = std::function<void(const std::string& service)>;
  using ServeFunction = std::function<std::unique_ptr<LeaseWaiter>(std::unique_ptr<LeaseWaiter>)>;

  virtual ~Scheduler() = default;

  // ---- Start-up ----

  // Builds the state from `store` before the first batch (start-up recovery; outside any
  // transaction). Waiters stay parked. Local: schedules, leases, counts and guards from the rows;
  // shared: counts and guards as the database holds them.
  virtual absl::Status Restore(Store& store, absl::Time now) = 0;

  // ---- The batch ----

  // Called right after the batch's transaction began; answers the batch's time, which every
  // transition of the batch is given. Local: `local_now`. Shared: the database's transaction
  // time (so replicas' clocks never decide what is due or expired).
  virtual absl::StatusOr<absl::Time> BeginBatch(absl::Time local_now) = 0;
  // Called just before the batch commits: stores the guards the batch changed (one row each).
  virtual absl::Status SaveGuards(absl::Time now) = 0;
  // Called after the batch committed or failed (per-batch state is forgotten).
  virtual void EndBatch() = 0;

  // ---- Guards (retry budget and circuit breaker) ----

  // The guards the engine's own guard requests use (RecordOutcomes, SetCircuitOverride, views,
  // Snapshot, Publish; BeginOp/EndOp around every op). Before a request reads or changes a
  // service's guards it calls RefreshGuards(service); before Views, RefreshAllGuards.
  virtual ServiceGuards& guards() = 0;
  virtual const ServiceGuards& guards() const = 0;
  // Local: nothing to do. Shared: loads the fleet's row of `service` into guards() (at most once
  // per batch).
  virtual absl::Status RefreshGuards(const std::string& service, absl::Time now) = 0;
  virtual absl::Status RefreshAllGuards(absl::Time now) = 0;
  // Applies every due time-driven circuit transition (OPEN -> HALF_OPEN), outside any op; the
  // services whose circuit changed are appended to `changed`. Shared: a transition is won by one
  // replica (compare-and-set before it is acted on).
  virtual absl::Status AdvanceCircuits(absl::Time now, std::vector<std::string>* changed) = 0;

  // ---- Transitions (each inside the caller's op; same contracts as today) ----

  virtual absl::StatusOr<FailureOutcome> FirstFailure(Envelope e, Failure failure,
                                                      absl::Time now) = 0;
  virtual absl::StatusOr<FailureOutcome> LeasedFailure(const std::string& token,
                                                       const std::string& service,
                                                       const std::string& message_id,
                                                       Failure failure, absl::Time now) = 0;
  virtual absl::StatusOr<LeaseGrant> Lease(const std::string& service, int max_messages,
                                           absl::Duration visibility, absl::Time now) = 0;
  virtual absl::StatusOr<Envelope> Succeed(const std::string& service, const std::string& token,
                                           absl::Time now) = 0;
  virtual absl::StatusOr<absl::Time> Extend(const std::string& token, absl::Duration visibility,
                                            const ServiceCheck& may_act_for, absl::Time now) = 0;

  // ---- Lease expiry ----

  // The id of the next lease that expired at or before `now`, at most `max` per batch; nullopt
  // when none. Shared: the first call of a batch claims up to `max` expired leases
  // (pg::ClaimExpired) and the calls hand them out.
  virtual absl::StatusOr<std::optional<int64_t>> NextExpired(absl::Time now, int max) = 0;
  // Decides an expired lease again as a failed attempt (LEASE_EXPIRED, TRANSIENT) and ends it;
  // nullopt when its row is no longer leased.
  virtual absl::StatusOr<std::optional<FailureOutcome>> ExpireLease(int64_t id,
                                                                    absl::Time now) = 0;

  // ---- Long-poll waiters ----

  virtual void Park(std::unique_ptr<LeaseWaiter> waiter) = 0;
  // Hands waiters of services that may have due work to `serve` (see today's doc). Shared: a
  // service "may have due work" when this replica made work due, a DueListener signal arrived,
  // or a poll of its next due time (with backoff) says so; `serve` then tries to claim.
  virtual void ServeWaiters(absl::Time now, const ServeFunction& serve) = 0;
  virtual std::vector<std::unique_ptr<LeaseWaiter>> TakeEndedWaiters(absl::Time now,
                                                                     bool all) = 0;

  // ---- Work nobody asked for ----

  virtual bool WorkDue(absl::Time now) const = 0;
  virtual absl::Time NextWake(absl::Time now) const = 0;

  // ---- Changes made elsewhere (DLQ operations) ----

  virtual void Requeued(const Envelope& e) = 0;
  virtual void DeadLettersRemoved(const std::string& service, int64_t n) = 0;

  // ---- Counts ----

  // The counts of every service changed since the last call. Shared: counts as last read from
  // the database (re-read at most every counts_refresh, 1 s) plus this replica's changes since.
  virtual std::vector<std::pair<std::string, ServiceStats>> TakeChangedStats() = 0;
};

// What a Scheduler is built from (EngineOptions::make_scheduler gets it; the pointers outlive
// the scheduler).
struct SchedulerContext {
  SchedulerStore* store = nullptr;
  const PolicySet* policies = nullptr;
  Random* rng = nullptr;
  absl::Time started_at;
  int64_t max_lease_response_bytes = 0;
  Scheduler::CircuitChanged circuit_changed;
  // Wakes the engine's writer thread (thread-safe): a scheduler whose work can become due
  // without a request (SharedScheduler: a DueListener signal from another replica) calls it.
  std::function<void()> wake_writer;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_SCHEDULER_H_

// LocalScheduler: the Scheduler of one process (SQLite). It holds the state the engine keeps in
// memory between batches (each service's schedule by next_retry_at, the lease table with its
// expiry order, the parked long-polls, the live counts, and the guards: retry budget and circuit
// breaker), applies the transitions to it and to the rows of a SchedulerStore, and says when there
// is work that no request asked for (an expired lease, a servable long-poll, a circuit
// transition). Its memory is the single-process truth: nobody else writes the rows.
//
// Pure and single-threaded: no threads, no locks, no clock of its own (every transition takes the
// batch's time `now`, and BeginBatch answers the caller's), no SQL. The engine drives it from its
// writer thread, inside the batch transaction and each op's savepoint (it brackets ops with
// guards().BeginOp/EndOp); the unit tests drive it with a fake clock and an in-memory store
// (tests/testing/fake_scheduler_store.h).
#ifndef RETRYD_SERVER_CORE_LOCAL_SCHEDULER_H_
#define RETRYD_SERVER_CORE_LOCAL_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/envelope.h"
#include "server/core/policy_set.h"
#include "server/core/scheduler.h"
#include "server/core/service_guards.h"
#include "server/util/random.h"

namespace retryd {

class LocalScheduler final : public Scheduler {
 public:
  // Built from context.store, policies, rng, started_at (the `since` of circuits never seen),
  // max_lease_response_bytes (a Lease answer stops growing past it, but holds one envelope) and
  // circuit_changed; wake_writer is not needed (work becomes due only through its own calls or
  // the passing of time, which NextWake tells).
  explicit LocalScheduler(const SchedulerContext& context);

  // ---- Start-up ----

  // Forgets the schedules, leases, counts and guards, then restores them from the stored
  // circuits and every live and dead-lettered row of `store` (Reset, Restore*, FinishRestore).
  absl::Status Restore(Store& store, absl::Time now) override;

  // ---- The batch ----

  // Answers `local_now`: this process's clock is the only one.
  absl::StatusOr<absl::Time> BeginBatch(absl::Time local_now) override;
  // Stores the guards of every service the batch's kept ops changed (SchedulerStore::SaveCircuit,
  // one row each), in the batch's transaction, so that they are durable exactly when the batch is.
  absl::Status SaveGuards(absl::Time now) override;
  // Forgets how many expired leases the batch handed out (NextExpired).
  void EndBatch() override;

  // ---- Guards ----

  ServiceGuards& guards() override { return guards_; }
  const ServiceGuards& guards() const override { return guards_; }
  // Nothing to do: the guards in memory are the only ones.
  absl::Status RefreshGuards(const std::string& service, absl::Time now) override;
  absl::Status RefreshAllGuards(absl::Time now) override;
  // ServiceGuards::AdvanceAll.
  absl::Status AdvanceCircuits(absl::Time now, std::vector<std::string>* changed) override;

  // ---- Transitions (each inside the caller's op) ----

  // A first failure of `e` (validated): decided as attempt max(e.attempt, 1), stored and
  // scheduled or dead-lettered, and counted for the budget and the circuit. A key already stored
  // is a duplicate: nothing changes (the retry the budget booked goes back), and the outcome
  // describes the stored envelope.
  absl::StatusOr<FailureOutcome> FirstFailure(Envelope e, Failure failure,
                                              absl::Time now) override;
  // A leased retry of (service, message_id) failed: the lease `token` is completed and the
  // envelope decided again as one more attempt. An empty message_id matches any.
  // FAILED_PRECONDITION: LEASE_NOT_FOUND, LEASE_EXPIRED, LEASE_MISMATCH.
  absl::StatusOr<FailureOutcome> LeasedFailure(const std::string& token,
                                               const std::string& service,
                                               const std::string& message_id, Failure failure,
                                               absl::Time now) override;
  // Leases up to `max_messages` due envelopes of `service`, oldest next_retry_at first, as far as
  // the circuit allows (nothing while OPEN, the trials left while HALF_OPEN) and the response
  // byte cap; each for `visibility`. Empty when nothing is due.
  absl::StatusOr<LeaseGrant> Lease(const std::string& service, int max_messages,
                                   absl::Duration visibility, absl::Time now) override;
  // A leased retry of `service` succeeded: the envelope is done (its payload dropped).
  absl::StatusOr<Envelope> Succeed(const std::string& service, const std::string& token,
                                   absl::Time now) override;
  // Moves a lease's expiry to now + visibility; answers it. PERMISSION_DENIED
  // (SERVICE_NOT_ALLOWED) when `may_act_for` is set and refuses the leased envelope's service.
  absl::StatusOr<absl::Time> Extend(const std::string& token, absl::Duration visibility,
                                    const ServiceCheck& may_act_for, absl::Time now) override;

  // ---- Lease expiry ----

  // The id of the next lease that expired at or before `now` (stale entries of the expiry order
  // are dropped on the way); nullopt when none, or when `max` were handed out since the last
  // EndBatch. Never an error.
  absl::StatusOr<std::optional<int64_t>> NextExpired(absl::Time now, int max) override;
  // Decides an expired lease again as a failed attempt (LEASE_EXPIRED, TRANSIENT; the token is
  // kept, so a late report is told the lease expired) and ends it. nullopt when its row is no
  // longer leased: the lease just ends.
  absl::StatusOr<std::optional<FailureOutcome>> ExpireLease(int64_t id, absl::Time now) override;

  // ---- Long-poll waiters ----

  // Parks a Lease that found nothing, behind the service's earlier ones.
  void Park(std::unique_ptr<LeaseWaiter> waiter) override;
  // Hands the waiters of each service that has due work and an open circuit, oldest first, to
  // `serve`, which answers them (or drops them) and returns null, or returns the waiter when it is
  // still waiting (only stale entries were due): it goes back to the front, and that service's
  // turn ends.
  void ServeWaiters(absl::Time now, const ServeFunction& serve) override;
  // Takes the waiters whose wait is over or whose caller is gone (every one when `all`).
  std::vector<std::unique_ptr<LeaseWaiter>> TakeEndedWaiters(absl::Time now, bool all) override;

  // ---- Work nobody asked for ----

  // A lease expired, a waiter can be served, or a circuit transition is due.
  bool WorkDue(absl::Time now) const override;
  // The earliest time WorkDue (or a waiter's end) may become true without a request; InfiniteFuture
  // when nothing is pending.
  absl::Time NextWake(absl::Time now) const override;

  // ---- Changes made elsewhere (DLQ operations) ----

  // `e`, already updated in the store, left the dead-letter queue and is now scheduled.
  void Requeued(const Envelope& e) override;
  // `n` dead letters of `service` were deleted from the store.
  void DeadLettersRemoved(const std::string& service, int64_t n) override;

  // ---- Counts ----

  // The counts of every service changed since the last call.
  std::vector<std::pair<std::string, ServiceStats>> TakeChangedStats() override;

  // ---- Rebuild, step by step (Restore; public for the unit tests) ----

  // Forgets the schedules, leases, counts and guards (waiters stay parked).
  void Reset();
  void RestoreScheduled(const std::string& service, int64_t id, absl::Time next_retry_at,
                        absl::Time now);
  void RestoreLeased(const std::string& service, int64_t id, absl::Time lease_expires_at);
  void RestoreDead(const std::string& service, int64_t dead);
  // Builds the restored schedules (at once: O(n), not n pushes); every service's counts count as
  // changed.
  void FinishRestore();

 private:
  // (time in unix micros, envelope id), smallest first.
  using HeapEntry = std::pair<int64_t, int64_t>;
  using MinHeap = std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<HeapEntry>>;

  struct ServiceState {
    MinHeap schedule;  // Scheduled envelopes by next_retry_at.
    int64_t leased = 0;
    int64_t dead = 0;
    std::deque<std::unique_ptr<LeaseWaiter>> waiters;  // Parked long-polls, oldest first.
    // Made known by an envelope (Service()): its counts are published. An entry that only holds
    // long-polls of a service nobody reported is not, and goes once they are answered.
    bool known = false;
  };
  struct LeaseInfo {
    int64_t expires_us = 0;
    std::string service;
  };

  // The service's state (made known: an envelope, policy or operator made it), its counts marked
  // changed.
  ServiceState& Service(const std::string& name);
  // The state of a known service, or nullptr: a Lease that finds nothing changes nothing.
  ServiceState* FindKnownService(const std::string& name);
  // Puts `e` where its state says: in the schedule, or counted dead.
  void Schedule(const Envelope& e);
  void AddLease(const Envelope& e);
  void RemoveLease(int64_t id, const std::string& service);
  bool HasDueWork(const std::string& name, const ServiceState& svc, absl::Time now) const;
  // A new lease token for `e` (its secret part from the CSPRNG).
  static absl::StatusOr<std::string> NewLeaseToken(const Envelope& e);
  // Loads the envelope a lease token names; FAILED_PRECONDITION unless it is leased under exactly
  // this token (compared in constant time). For any other token the answer is LEASE_NOT_FOUND
  // for an envelope whose service `may_see` refuses (when set), as for an id that does not
  // exist; LEASE_EXPIRED is told only for services the caller may see.
  absl::StatusOr<Envelope> LoadLeased(const std::string& token, const ServiceCheck& may_see);
  // Applies a policy decision (budget included) to `e`: attempt, history, state.
  Decision DecideFailure(Envelope& e, int attempt, const Failure& failure, absl::Time now);

  // Guard hooks. A non-duplicate first failure: counts it for the budget and the circuit.
  void OnFirstFailure(const Envelope& e, const Decision& d, absl::Time now);
  // A leased envelope's outcome (`success`, or a failure of class `error_class`).
  void OnLeasedOutcome(const std::string& service, int64_t envelope_id, bool success,
                       ErrorClass error_class, absl::Time now);

  SchedulerStore* const store_;
  const PolicySet* const policies_;
  Random* const rng_;
  const int64_t max_lease_response_bytes_;
  const CircuitChanged circuit_changed_;

  absl::flat_hash_map<std::string, ServiceState> services_;
  absl::flat_hash_map<int64_t, LeaseInfo> leases_;
  MinHeap lease_expiry_;
  // Expired leases handed out by NextExpired since the last EndBatch.
  int expired_in_batch_ = 0;
  // Restored schedules, heapified by FinishRestore.
  absl::flat_hash_map<std::string, std::vector<HeapEntry>> restoring_;
  std::vector<HeapEntry> restoring_expiries_;
  absl::flat_hash_map<std::string, bool> changed_stats_;
  ServiceGuards guards_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_LOCAL_SCHEDULER_H_

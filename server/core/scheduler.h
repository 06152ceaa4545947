// Scheduler: what a failure, a lease, a success, an extension and an expired lease do to the
// envelopes of every service. It holds the state the engine keeps in memory between batches (each
// service's schedule by next_retry_at, the lease table with its expiry order, the parked
// long-polls, the live counts, and the guards: retry budget and circuit breaker), applies the
// transitions to it and to the rows of a SchedulerStore, and says when there is work that no
// request asked for (an expired lease, a servable long-poll, a circuit transition).
//
// Pure and single-threaded: no threads, no locks, no clock of its own (every transition takes the
// batch's time `now`), no SQL. The engine drives it from its writer thread, inside the batch
// transaction and each op's savepoint (it brackets ops with guards().BeginOp/EndOp); the unit
// tests drive it with a fake clock and an in-memory store (tests/testing/fake_scheduler_store.h).
//
// A transition changes memory only after its store writes succeeded, but for the guards, which
// the caller's guards().EndOp(false) puts back. A store error is returned as is: the engine treats
// one after a batch began writing as fatal (crash-only), so memory and rows never have to be
// reconciled here.
#ifndef RETRYD_SERVER_CORE_SCHEDULER_H_
#define RETRYD_SERVER_CORE_SCHEDULER_H_

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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
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

class Scheduler {
 public:
  // Whether the caller may act for (or see) a service.
  using ServiceCheck = std::function<bool(const std::string& service)>;
  // Told the name of a service whose circuit record changed (the engine logs it).
  using CircuitChanged = std::function<void(const std::string& service)>;

  // The pointers must outlive the Scheduler. `started_at` is the `since` of circuits never seen;
  // a Lease answer stops growing past `max_lease_response_bytes` (but holds one envelope).
  Scheduler(SchedulerStore* store, const PolicySet* policies, Random* rng, absl::Time started_at,
            int64_t max_lease_response_bytes, CircuitChanged circuit_changed);

  ServiceGuards& guards() { return guards_; }
  const ServiceGuards& guards() const { return guards_; }

  // ---- Transitions (each inside the caller's op) ----

  // A first failure of `e` (validated): decided as attempt max(e.attempt, 1), stored and
  // scheduled or dead-lettered, and counted for the budget and the circuit. A key already stored
  // is a duplicate: nothing changes (the retry the budget booked goes back), and the outcome
  // describes the stored envelope.
  absl::StatusOr<FailureOutcome> FirstFailure(Envelope e, Failure failure, absl::Time now);
  // A leased retry of (service, message_id) failed: the lease `token` is completed and the
  // envelope decided again as one more attempt. An empty message_id matches any.
  // FAILED_PRECONDITION: LEASE_NOT_FOUND, LEASE_EXPIRED, LEASE_MISMATCH.
  absl::StatusOr<FailureOutcome> LeasedFailure(const std::string& token,
                                               const std::string& service,
                                               const std::string& message_id, Failure failure,
                                               absl::Time now);
  // Leases up to `max_messages` due envelopes of `service`, oldest next_retry_at first, as far as
  // the circuit allows (nothing while OPEN, the trials left while HALF_OPEN) and the response
  // byte cap; each for `visibility`. Empty when nothing is due.
  absl::StatusOr<LeaseGrant> Lease(const std::string& service, int max_messages,
                                   absl::Duration visibility, absl::Time now);
  // A leased retry of `service` succeeded: the envelope is done (its payload dropped).
  absl::StatusOr<Envelope> Succeed(const std::string& service, const std::string& token,
                                   absl::Time now);
  // Moves a lease's expiry to now + visibility; answers it. PERMISSION_DENIED
  // (SERVICE_NOT_ALLOWED) when `may_act_for` is set and refuses the leased envelope's service.
  absl::StatusOr<absl::Time> Extend(const std::string& token, absl::Duration visibility,
                                    const ServiceCheck& may_act_for, absl::Time now);

  // ---- Lease expiry ----

  // The id of the next lease that expired at or before `now` (stale entries of the expiry order
  // are dropped on the way); nullopt when none.
  std::optional<int64_t> NextExpired(absl::Time now);
  // Decides an expired lease again as a failed attempt (LEASE_EXPIRED, TRANSIENT; the token is
  // kept, so a late report is told the lease expired) and ends it. nullopt when its row is no
  // longer leased: the lease just ends.
  absl::StatusOr<std::optional<FailureOutcome>> ExpireLease(int64_t id, absl::Time now);

  // ---- Long-poll waiters ----

  // Parks a Lease that found nothing, behind the service's earlier ones.
  void Park(std::unique_ptr<LeaseWaiter> waiter);
  // Hands the waiters of each service that has due work and an open circuit, oldest first, to
  // `serve`, which answers them (or drops them) and returns null, or returns the waiter when it is
  // still waiting (only stale entries were due): it goes back to the front, and that service's
  // turn ends.
  using ServeFunction = std::function<std::unique_ptr<LeaseWaiter>(std::unique_ptr<LeaseWaiter>)>;
  void ServeWaiters(absl::Time now, const ServeFunction& serve);
  // Takes the waiters whose wait is over or whose caller is gone (every one when `all`).
  std::vector<std::unique_ptr<LeaseWaiter>> TakeEndedWaiters(absl::Time now, bool all);

  // ---- Work nobody asked for ----

  // A lease expired, a waiter can be served, or a circuit transition is due.
  bool WorkDue(absl::Time now) const;
  // The earliest time WorkDue (or a waiter's end) may become true without a request; InfiniteFuture
  // when nothing is pending.
  absl::Time NextWake(absl::Time now) const;

  // ---- Changes made elsewhere (DLQ operations) ----

  // `e`, already updated in the store, left the dead-letter queue and is now scheduled.
  void Requeued(const Envelope& e);
  // `n` dead letters of `service` were deleted from the store.
  void DeadLettersRemoved(const std::string& service, int64_t n);

  // ---- Rebuild (start-up) ----

  // Forgets the schedules, leases, counts and guards (waiters stay parked).
  void Reset();
  void RestoreScheduled(const std::string& service, int64_t id, absl::Time next_retry_at,
                        absl::Time now);
  void RestoreLeased(const std::string& service, int64_t id, absl::Time lease_expires_at);
  void RestoreDead(const std::string& service, int64_t dead);
  // Builds the restored schedules (at once: O(n), not n pushes); every service's counts count as
  // changed.
  void FinishRestore();

  // ---- Counts ----

  // The counts of every service changed since the last call.
  std::vector<std::pair<std::string, ServiceStats>> TakeChangedStats();

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
  // Restored schedules, heapified by FinishRestore.
  absl::flat_hash_map<std::string, std::vector<HeapEntry>> restoring_;
  std::vector<HeapEntry> restoring_expiries_;
  absl::flat_hash_map<std::string, bool> changed_stats_;
  ServiceGuards guards_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_SCHEDULER_H_

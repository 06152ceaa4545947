// SharedScheduler: the Scheduler of N retryd replicas on one PostgreSQL (docs/shared-replicas.md).
// The same transitions as LocalScheduler, with the same contracts and error texts, but every
// decision about who may hold what is taken in the database, at the database's time, on the
// batch's connection inside the batch transaction and the op's savepoint (the engine brackets
// them):
//  - the batch's time is the database's (pg::DbNow), so replicas' clocks never decide what is
//    due or expired;
//  - Lease claims due rows with pg::ClaimDue (SKIP LOCKED: replicas take disjoint rows) and
//    hands out fenced L1 tokens; outcomes and extensions check the token against the row
//    (pg::LockLease / pg::ExtendLease), so a token works on any replica and a stale one on none;
//  - the expiry sweep (pg::ClaimExpired, every sweep_interval) takes expired leases of any
//    replica back, and they are decided again here as LocalScheduler does.
// What memory still holds is this replica's own: the parked long-polls (woken by this replica's
// own commits, by a DueListener notification from another replica, or by polling
// pg::NextDueAt with backoff), counts as last read from the database plus this replica's
// changes since (re-read every counts_refresh), and the guards, kept in step with the fleet's
// rows by a GuardSync (null: this replica's own guards, stored as LocalScheduler stores them).
//
// Threading: the writer thread, but for the DueListener's thread, which only records the
// services it heard of (under signal_mu_) and wakes the writer.
#ifndef RETRYD_SERVER_STORE_PG_SHARED_SCHEDULER_H_
#define RETRYD_SERVER_STORE_PG_SHARED_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/guard_sync.h"
#include "server/core/scheduler.h"
#include "server/store/pg/pg_due_signal.h"
#include "server/store/pg/pg_leases.h"
#include "server/store/pg/pg_store.h"

namespace retryd {

struct SharedSchedulerOptions {
  // This replica's name in the fleet's guard rows (the holder of HALF_OPEN trials it claims);
  // with a GuardSync, the guards journal their changes under it (ServiceGuards::EnableJournal).
  std::string replica;
  // Where the DueNotifier and DueListener connect (their own connections). Empty: no
  // notifications; parked long-polls are woken by this replica's commits and by polling only.
  std::string dsn;
  // Signals of one service are sent at most once per this (DueNotifier's min_interval).
  absl::Duration notify_interval = absl::Milliseconds(10);
  // A parked long-poll re-reads its service's next due time after poll_min, doubling up to
  // poll_max while it stays parked; a notification starts it over.
  absl::Duration poll_min = absl::Milliseconds(25);
  absl::Duration poll_max = absl::Milliseconds(250);
  // How often the expiry sweep runs (a batch runs for it when nothing else does).
  absl::Duration sweep_interval = absl::Milliseconds(250);
  // How often the counts are read again from the database (other replicas' changes).
  absl::Duration counts_refresh = absl::Seconds(1);
};

class SharedScheduler final : public Scheduler {
 public:
  // `store` (the batch's connection, the counts and the circuits) and `guard_sync` (may be null)
  // must outlive this. Nothing connects here: Restore starts the notifier and the listener.
  SharedScheduler(const SchedulerContext& ctx, PgStore* store, GuardSync* guard_sync,
                  SharedSchedulerOptions options);
  ~SharedScheduler() override;

  absl::Status Restore(Store& store, absl::Time now) override;

  absl::StatusOr<absl::Time> BeginBatch(absl::Time local_now) override;
  absl::Status SaveGuards(absl::Time now) override;
  void EndBatch() override;

  ServiceGuards& guards() override { return guards_; }
  const ServiceGuards& guards() const override { return guards_; }
  absl::Status RefreshGuards(const std::string& service, absl::Time now) override;
  absl::Status RefreshAllGuards(absl::Time now) override;
  absl::Status AdvanceCircuits(absl::Time now, std::vector<std::string>* changed) override;

  absl::StatusOr<FailureOutcome> FirstFailure(Envelope e, Failure failure,
                                              absl::Time now) override;
  absl::StatusOr<FailureOutcome> LeasedFailure(const std::string& token,
                                               const std::string& service,
                                               const std::string& message_id, Failure failure,
                                               absl::Time now) override;
  absl::StatusOr<LeaseGrant> Lease(const std::string& service, int max_messages,
                                   absl::Duration visibility, absl::Time now) override;
  absl::StatusOr<Envelope> Succeed(const std::string& service, const std::string& token,
                                   absl::Time now) override;
  absl::StatusOr<absl::Time> Extend(const std::string& token, absl::Duration visibility,
                                    const ServiceCheck& may_act_for, absl::Time now) override;

  absl::StatusOr<std::optional<int64_t>> NextExpired(absl::Time now, int max) override;
  absl::StatusOr<std::optional<FailureOutcome>> ExpireLease(int64_t id, absl::Time now) override;

  void Park(std::unique_ptr<LeaseWaiter> waiter) override;
  void ServeWaiters(absl::Time now, const ServeFunction& serve) override;
  std::vector<std::unique_ptr<LeaseWaiter>> TakeEndedWaiters(absl::Time now, bool all) override;

  bool WorkDue(absl::Time now) const override;
  absl::Time NextWake(absl::Time now) const override;

  void Requeued(const Envelope& e) override;
  void DeadLettersRemoved(const std::string& service, int64_t n) override;

  std::vector<std::pair<std::string, ServiceStats>> TakeChangedStats() override;

  // Notifications sent by this replica so far (tests).
  int64_t signals_sent() const { return notifier_ ? notifier_->sent() : 0; }

 private:
  // One service's parked long-polls and when to look for its due work again (this replica's
  // clock: WorkDue and NextWake are asked with it).
  struct Parked {
    std::deque<std::unique_ptr<LeaseWaiter>> waiters;  // Oldest first.
    absl::Time poll_at = absl::InfinitePast();
    absl::Duration backoff;
  };

  pg::Connection& conn() { return store_->writer(); }
  // The row of a lease LockLease just locked (it exists: it is locked).
  absl::StatusOr<Envelope> LoadLocked(int64_t id);
  // Decides a failure of `e` (guards refreshed first).
  absl::StatusOr<Decision> Decide(Envelope& e, int attempt, const Failure& failure,
                                  absl::Time now);
  // A circuit transition just happened in memory: claims it fleet-wide (true: this replica made
  // it; false: another did first, and the guards hold its row).
  absl::StatusOr<bool> ClaimTransition(const std::string& service, absl::Time now);
  // Gives back claims the byte cap left out: scheduled again at their due time.
  absl::Status GiveBack(const std::vector<pg::ClaimedLease>& claims, size_t from);
  // Whether nothing more of `service` is due (for the HALF_OPEN trials).
  absl::StatusOr<bool> Drained(const std::string& service, bool claim_filled, int64_t allowance,
                               absl::Time now);

  // Counts: `e`'s new state is counted (scheduled or dead), and work made due is noted.
  void Place(const Envelope& e, absl::Time now);
  ServiceStats& Counts(const std::string& service);
  // Re-reads the counts when counts_refresh has passed.
  void MaybeRefreshCounts();
  // `service` has work due at `due` (batch time): its parked polls look at once (or at `due`),
  // and other replicas are told after the commit when it is due soon.
  void NoteDue(const std::string& service, absl::Time due, absl::Time now);

  // Guard hooks, as LocalScheduler's.
  void OnLeasedOutcome(const std::string& service, int64_t envelope_id, bool success,
                       ErrorClass error_class, absl::Time now);

  // Waiters.
  void TakeSignals();
  void ServeService(const std::string& name, Parked& parked, absl::Time now,
                    const ServeFunction& serve);
  // The next poll of `parked`, knowing its next due time `next_due` (batch time).
  void SchedulePoll(Parked& parked, absl::Time next_due, absl::Time now);
  // The listener's callback (its thread).
  void OnDueSignal(const std::string& service);

  const SchedulerContext ctx_;
  PgStore* const store_;
  GuardSync* const guard_sync_;
  const SharedSchedulerOptions options_;
  ServiceGuards guards_;

  // The current batch.
  absl::Time batch_local_now_ = absl::InfinitePast();
  absl::Time batch_now_ = absl::InfinitePast();
  bool swept_ = false;                   // The sweep ran in this batch.
  std::deque<int64_t> expired_;          // Leases the sweep took back, not yet handed out.
  absl::flat_hash_set<std::string> made_due_;  // Signalled after the commit.
  absl::Time next_sweep_ = absl::InfinitePast();  // This replica's clock.

  absl::flat_hash_map<std::string, Parked> parked_;

  absl::flat_hash_map<std::string, ServiceStats> counts_;
  absl::flat_hash_set<std::string> changed_counts_;
  absl::Time next_counts_refresh_ = absl::InfinitePast();  // absl::Now()'s clock.

  // Services another replica said have due work ("" in signalled_all_: any).
  mutable absl::Mutex signal_mu_;
  absl::flat_hash_set<std::string> signalled_ ABSL_GUARDED_BY(signal_mu_);
  bool signalled_all_ ABSL_GUARDED_BY(signal_mu_) = false;

  std::unique_ptr<pg::DueNotifier> notifier_;
  // Last: its thread stops first.
  std::unique_ptr<pg::DueListener> listener_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_PG_SHARED_SCHEDULER_H_

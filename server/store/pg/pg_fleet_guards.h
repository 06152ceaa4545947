// FleetGuardSync: the GuardSync (server/core/guard_sync.h) of a replica on PostgreSQL. Each
// service's guards are its row of `circuits` (pg_guard_rows.h), which every replica shares; a
// replica's ServiceGuards (with its journal on, ServiceGuards::EnableJournal) holds the row as
// the current batch refreshed it, plus what the batch changed.
//
//   Refresh     loads the row (once per service per batch) into the guards, this batch's
//               journal made again on it (ServiceGuards::LoadShared), and remembers its version.
//   Claim       right after OPEN -> HALF_OPEN happened in memory: locks the row without waiting
//               (SKIP LOCKED) and writes the transition with this replica named as the holder of
//               the trials (CircuitBreaker::Windows::trial_holder, stored in `windows`). The row
//               stays locked until the batch ends. Lost (another replica holds the trials, or
//               its transaction holds the row, or the row moved on): the guards hold the row
//               again and this replica leases no trial of the service in this batch.
//   Save        for each service the batch changed, in name order: locks the row (waiting for
//               another replica's batch to end), loads it into scratch guards, makes this batch's
//               journal again on them and writes the result; the guards then hold the row as
//               written. A change another replica committed since Refresh is therefore kept, and
//               so is every change of this batch: none is lost, none counted twice.
//               Rows the batch locked before Save (its claims) break the name order: a row that
//               sorts before one of them is not waited for but tried for a bounded time (another
//               replica's Save may hold it and wait for the claimed row); when it stays locked,
//               its changes stay in the journal, and the next batch's Refresh and Save carry
//               them (Stats::carried).
//   EndBatch    forgets the batch's versions, locks and bars (ServiceGuards::EndBatch).
//
// Staleness: a replica decides with the row as of the first use in its batch; another replica's
// change is seen by the next batch that refreshes the service (so within one batch of each
// replica's writer). Counts (first attempts, outcomes, trial outcomes, the budget's pacing) merge
// at Save. The budget's bookings stay each replica's own (they are not in the row): the fleet's
// retries may exceed a service's allowance by what the other replicas book in the same window.
//
// Threading: one batch at a time, on the writer's thread and connection.
#ifndef RETRYD_SERVER_STORE_PG_PG_FLEET_GUARDS_H_
#define RETRYD_SERVER_STORE_PG_PG_FLEET_GUARDS_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/guard_sync.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

class FleetGuardSync final : public GuardSync {
 public:
  // What happened, for logs and tests.
  struct Stats {
    int64_t refreshes = 0;     // Rows loaded by Refresh/RefreshAll.
    int64_t saves = 0;         // Rows written by Save.
    int64_t save_races = 0;    // Of those, rows another replica wrote since this batch read them.
    int64_t claims_won = 0;
    int64_t claims_lost = 0;   // Another replica holds the trials, or the row moved on.
    int64_t claims_busy = 0;   // Another transaction held the row.
    int64_t carried = 0;       // Rows Save left to the next batch (see Save).
  };

  // `conn` answers the writer's connection (the batch's transaction), asked again for each
  // statement: the store may replace a lost connection between batches. `policies` (the
  // guards' own) must outlive this. `replica` names this replica in the rows it claims
  // (NewReplicaId).
  FleetGuardSync(std::function<Connection&()> conn, const PolicySet& policies,
                 std::string replica);

  // A name for this process: host:pid:random.
  static absl::StatusOr<std::string> NewReplicaId();

  absl::Status Refresh(ServiceGuards& guards, const std::string& service,
                       absl::Time now) override;
  absl::Status RefreshAll(ServiceGuards& guards, absl::Time now) override;
  absl::StatusOr<bool> Claim(ServiceGuards& guards, const std::string& service,
                             absl::Time now) override;
  absl::Status Save(ServiceGuards& guards, absl::Time now) override;
  void EndBatch() override;

  const Stats& stats() const { return stats_; }
  const std::string& replica() const { return replica_; }

 private:
  // Takes a loaded row over (version 0: no row, the guards keep what they have).
  void Take(ServiceGuards& guards, const CircuitRecord& record, int64_t version);
  absl::StatusOr<bool> ClaimLocked(ServiceGuards& guards, const std::string& service,
                                   absl::Time now);
  // Locks `service`'s row, trying for a bounded time without ever waiting in a lock; false:
  // another transaction kept it, or there is no committed row (an insert could wait).
  absl::StatusOr<bool> LockWithoutWaiting(const std::string& service);

  const std::function<Connection&()> conn_;
  const PolicySet& policies_;
  const std::string replica_;
  // This batch: the guards it uses and each refreshed service's row version.
  ServiceGuards* guards_ = nullptr;
  absl::flat_hash_map<std::string, int64_t> versions_;
  // Rows this batch locked before Save (by Claim), in name order.
  std::set<std::string> locked_;
  Stats stats_;
};

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_FLEET_GUARDS_H_

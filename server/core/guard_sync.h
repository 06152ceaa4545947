// Final home: server/core/guard_sync.h (the `fleetguards` helper adds it; `shared` codes
// against it). Types: ServiceGuards (server/core/service_guards.h).
//
// GuardSync: keeps one replica's ServiceGuards in step with the guards every replica shares
// (PostgreSQL: each service's row of `circuits`, written by compare-and-set on its version;
// server/store/pg/pg_guard_rows.h). SharedScheduler calls it on the writer thread, inside the
// batch transaction; LocalScheduler has none (its guards are the whole truth).
//
// Bounded staleness: a replica decides with the row as it refreshed it in the current batch;
// counted changes (first attempts, outcomes, budget bookings) are merged into the row at Save,
// so none is lost; transitions that must happen once (OPEN -> HALF_OPEN, whose trials only the
// winning replica then leases) are claimed before they are acted on.
#ifndef RETRYD_SERVER_CORE_GUARD_SYNC_H_
#define RETRYD_SERVER_CORE_GUARD_SYNC_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/service_guards.h"

namespace retryd {

class GuardSync {
 public:
  virtual ~GuardSync() = default;

  // Before the batch first reads or changes `service`'s guards: loads the shared row into
  // `guards` (once per service per batch; later calls in the same batch do nothing).
  virtual absl::Status Refresh(ServiceGuards& guards, const std::string& service,
                               absl::Time now) = 0;
  // Loads every service's shared row into `guards` (before the views of all services).
  virtual absl::Status RefreshAll(ServiceGuards& guards, absl::Time now) = 0;
  // A circuit transition that must happen once (OPEN -> HALF_OPEN) was just made to `service`
  // in `guards`: writes it to the shared row now, before the caller acts on it. true: this
  // replica won and holds the HALF_OPEN trials (the row stays locked until the batch ends).
  // false: another replica made it first; `guards` hold the shared row again, in which this
  // replica may lease no trial, and the caller decides again.
  virtual absl::StatusOr<bool> Claim(ServiceGuards& guards, const std::string& service,
                                     absl::Time now) = 0;
  // Just before the batch commits: writes every service whose guards the batch changed. When
  // another replica wrote a row since this batch refreshed it, this batch's changes are applied
  // again to the row as it now is (none is lost). Rows are written in service-name order, so
  // replicas never deadlock on them.
  virtual absl::Status Save(ServiceGuards& guards, absl::Time now) = 0;
  // The batch ended (committed, or not: a failed batch stops the process).
  virtual void EndBatch() = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_GUARD_SYNC_H_

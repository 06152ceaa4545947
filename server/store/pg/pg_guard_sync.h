// Applying one replica's guard changes to the fleet's row of a service (pg_guard_rows.h), with
// the real budget and breaker (server/core/service_guards.h): the row is loaded into guards of
// its own, the change is applied to them, and their record is written back by compare-and-set;
// when another replica wrote first, the row is loaded again and the change applied again, until
// the write wins. Every change therefore lands exactly once on the state every replica shares,
// and what the change decided (e.g. how many HALF_OPEN trials it may lease) is decided on the
// state as written.
#ifndef RETRYD_SERVER_STORE_PG_PG_GUARD_SYNC_H_
#define RETRYD_SERVER_STORE_PG_PG_GUARD_SYNC_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/circuit_breaker.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// A change to one service's guards. It may run several times (once per lost race), each time on
// freshly loaded guards, and must describe its outcome only through what it does to them and to
// variables it resets at its start.
using GuardChange = std::function<void(ServiceGuards& guards, const std::string& service)>;

struct GuardSyncResult {
  CircuitRecord record;  // As written.
  int attempts = 0;      // 1 + the races lost.
};

// Applies `change` to `service`'s row at `now` (the database time of the caller's batch), as
// described above. Runs its statements on `conn` as they come (autocommit, or inside the
// caller's transaction).
absl::StatusOr<GuardSyncResult> ApplyToGuardRow(Connection& conn, const PolicySet& policies,
                                                const std::string& service, absl::Time now,
                                                const GuardChange& change);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_GUARD_SYNC_H_

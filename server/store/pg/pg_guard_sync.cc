#include "server/store/pg/pg_guard_sync.h"

#include <optional>

#include "server/store/pg/pg_guard_rows.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

absl::StatusOr<GuardSyncResult> ApplyToGuardRow(Connection& conn, const PolicySet& policies,
                                                const std::string& service, absl::Time now,
                                                const GuardChange& change) {
  GuardSyncResult result;
  for (;;) {
    ++result.attempts;
    ASSIGN_OR_RETURN(GuardRow row, LoadGuardRow(conn, service));
    ServiceGuards guards(&policies, now);
    if (row.version != 0) {
      // Windows that cannot be decoded start empty (RestoreCircuit says DATA_LOSS); the record
      // itself is restored either way.
      (void)guards.RestoreCircuit(row.record);
    }
    change(guards, service);
    CircuitRecord record = guards.Record(service);
    record.service = service;
    ASSIGN_OR_RETURN(std::optional<int64_t> won, CasGuardRow(conn, record, row.version));
    if (won.has_value()) {
      result.record = std::move(record);
      return result;
    }
  }
}

}  // namespace retryd::pg

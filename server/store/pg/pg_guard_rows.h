// Fleet-wide guards: each service's retry budget and circuit breaker are one row of `circuits`
// (its CircuitRecord, the windows of server/core/guard_state.h included), shared by every
// replica, with a version. A replica reads the row, applies its change to what it read, and
// writes it back by compare-and-set on the version: when another replica wrote in between, the
// write is refused and the replica reloads and applies its change again (pg_guard_sync.h). So
// no change is lost, and a transition that must happen once (OPEN -> HALF_OPEN, with the
// HALF_OPEN trials handed to the replica that leases them) is made by exactly one replica: the
// others lose the CAS and find it made.
#ifndef RETRYD_SERVER_STORE_PG_PG_GUARD_ROWS_H_
#define RETRYD_SERVER_STORE_PG_PG_GUARD_ROWS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/circuit_breaker.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

struct GuardRow {
  CircuitRecord record;
  int64_t version = 0;  // 0: no row stored yet (record holds the service name only).
};

// The service's row as committed (or as the caller's transaction wrote it).
absl::StatusOr<GuardRow> LoadGuardRow(Connection& conn, absl::string_view service);

// The same, the row locked FOR UPDATE until the transaction ends (waits for another writer's
// transaction to end first). No row: version 0, nothing locked.
absl::StatusOr<GuardRow> LockGuardRow(Connection& conn, absl::string_view service);

// Locks the row FOR UPDATE SKIP LOCKED, never waiting: its version, or nullopt when another
// transaction holds it (or there is no row).
absl::StatusOr<std::optional<int64_t>> TryLockGuardRow(Connection& conn,
                                                      absl::string_view service);

// Every service's row, in service-name order (nothing locked).
absl::StatusOr<std::vector<GuardRow>> LoadGuardRows(Connection& conn);

// Writes `record` as its service's row if the row's version is still `expected_version` (0: no
// row yet); answers the new version, or nullopt when another write came first (nothing written;
// reload and apply the change again). A concurrent writer of the same row waits for the first
// one's transaction to end, then sees its version and loses.
absl::StatusOr<std::optional<int64_t>> CasGuardRow(Connection& conn, const CircuitRecord& record,
                                                   int64_t expected_version);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_GUARD_ROWS_H_

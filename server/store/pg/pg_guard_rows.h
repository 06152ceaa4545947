// Fleet-wide guards: each service's retry budget and circuit breaker live in one row of
// guard_rows (the opaque bytes of server/core/guard_state.h, plus a version), shared by every
// replica. A replica reads the row, applies its change to what it read, and writes it back by
// compare-and-set on the version: when another replica wrote in between, the write is refused and
// the replica reloads and applies its change again. So no change is lost, and a transition that
// must happen once (OPEN -> HALF_OPEN, with the HALF_OPEN trials given to the replica that made
// it) is made by exactly one replica: the others lose the CAS and find it made.
#ifndef RETRYD_SERVER_STORE_PG_PG_GUARD_ROWS_H_
#define RETRYD_SERVER_STORE_PG_PG_GUARD_ROWS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

struct GuardRow {
  std::string service;
  int64_t version = 0;  // 0: no row stored yet.
  std::string body;
  absl::Time updated_at;  // Database time of the last write.
};

// The service's row as committed (or as the caller's transaction wrote it); version 0 and an
// empty body when there is none.
absl::StatusOr<GuardRow> LoadGuardRow(Connection& conn, absl::string_view service);

// Writes `body` as the service's row if its version is still `expected_version` (0: no row yet);
// answers the new version, or nullopt when another write came first (nothing written; reload
// and apply the change again). A concurrent writer of the same row waits for the first one's
// transaction to end, then sees its version and loses.
absl::StatusOr<std::optional<int64_t>> CasGuardRow(Connection& conn, absl::string_view service,
                                                   int64_t expected_version,
                                                   absl::string_view body);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_GUARD_ROWS_H_

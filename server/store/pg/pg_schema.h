// The PostgreSQL schema and its migrations. The schema is versioned: `schema_version` holds one
// row per applied migration (version, applied_at). Migrate() applies what is missing at start-up,
// all of it in ONE transaction that first takes a transaction-scoped advisory lock
// (pg_advisory_xact_lock(kMigrationLockKey)), so replicas starting at once queue on the lock: the
// first applies the migrations, the others then find them applied and do nothing. A database
// written by a newer retryd (a version this build does not know) is refused.
//
// Tables of version 1 (times are unix microseconds in bigint, as SqliteStore stores them;
// InfinitePast is INT64_MIN; integers are the enum numbers of server/core):
//   services(name PK): every service that ever had an envelope (ListServices shows it).
//   envelopes(id bigserial PK, service, message_id, state, sort_at, attempt, max_attempts,
//     first_seen_at, created_at, updated_at, lease_token, dead_reason, last_decision, last_class,
//     error_code, schema_version, fingerprint, details bytea, payload bytea),
//     UNIQUE (service, message_id); `sort_at` is next_retry_at / lease_expires_at /
//     dead_lettered_at / completed_at by state, as in sqlite_rows.h.
//   circuits(service PK, state, since, next_probe_at, open_duration_us, override_mode,
//     override_note, override_peer, override_at, windows bytea)
//   audit_events(id bigserial PK, time, identity, peer, method, filter bytea, dry_run bool,
//     affected_count, note, request_id, target, result_code, detail)
//   replays(id bigserial PK, request_id UNIQUE (NULL: none), state, created_at, body bytea,
//     cursor_at, cursor_id, phase, canary_ids)
// Later versions are appended to the list in pg_schema.cc (never edit an applied one).
#ifndef RETRYD_SERVER_STORE_PG_PG_SCHEMA_H_
#define RETRYD_SERVER_STORE_PG_PG_SCHEMA_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// The advisory lock key migrations run under (an arbitrary constant: "retryd" in ASCII).
inline constexpr int64_t kMigrationLockKey = 0x726574727964;

// The schema version this build writes (the number of migrations it knows).
int SchemaVersion();

// Brings the database to SchemaVersion() as described above. FAILED_PRECONDITION when the
// database's version is newer than this build's.
[[nodiscard]] absl::Status Migrate(Connection& conn);

// The database's current version (0: never migrated).
absl::StatusOr<int> CurrentVersion(Connection& conn);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_SCHEMA_H_

// The schema shared mode adds (migration 1 -> 2, appended to pg_schema.cc's list): what lets N
// replicas on one database act as one retryd (docs/shared-replicas.md explains each choice).
//
//   envelopes.lease_generation  bigint: bumped by every claim of the row (a lease, or the expiry
//     sweep taking an expired lease back). A lease token names the generation it was issued
//     under; every outcome and extension is a write conditional on it (fencing).
//   envelopes.lease_secret_hash bytea: sha256 of the token's secret part, so that any replica
//     can check a token against the row; the secret itself is never stored.
//   envelopes_due: (service, sort_at, id) WHERE state = 1, the claim's index. A claim of
//     service S reads the range (S, -inf .. db now] of it: future retries sit past the range's
//     end and are never read by the hot claim.
//   envelopes_lease_expiry: (sort_at, id) WHERE state = 2, the expiry sweep's index.
//   circuits.version: each service's guards (its circuit record and, in `windows`, the
//     budget's and breaker's windows) are its circuits row; in shared mode every write of it is
//     a compare-and-set on this version (pg_guard_rows.h).
//   job_claims: who runs a replay or purge job: (kind, job_id) → owner, epoch, heartbeat_at. A
//     replica claims a job whose heartbeat is older than the takeover age; every progress write
//     of the job is conditional on the epoch it claimed.
#ifndef RETRYD_SERVER_STORE_PG_PG_SHARED_SCHEMA_H_
#define RETRYD_SERVER_STORE_PG_PG_SHARED_SCHEMA_H_

namespace retryd::pg {

// The SQL of the shared-mode migration (one script, applied inside Migrate's transaction).
extern const char* const kSharedModeMigration;

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_SHARED_SCHEMA_H_

#include "server/store/pg/pg_schema.h"

#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_shared_schema.h"
#include "server/store/pg/pg_store_owner.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

namespace {

// Migrations, in order; migration i takes the schema from version i to i + 1.
const char* const kMigrations[] = {
    // 0 -> 1: services, envelopes, circuits, the audit log and replay jobs (see pg_schema.h).
    // Indexes: scheduled rows by due time (claims of due work); every state by (state, service,
    // sort_at, id) for listings, expiry, counts; succeeded rows by completion time
    // (housekeeping); dead letters by time and by fingerprint for the DLQ operations.
    R"sql(
    CREATE TABLE services (
      name text PRIMARY KEY
    );
    CREATE TABLE envelopes (
      id             bigserial PRIMARY KEY,
      service        text NOT NULL,
      message_id     text NOT NULL,
      state          integer NOT NULL,
      sort_at        bigint NOT NULL,
      attempt        integer NOT NULL,
      max_attempts   integer NOT NULL,
      first_seen_at  bigint NOT NULL,
      created_at     bigint NOT NULL,
      updated_at     bigint NOT NULL,
      lease_token    text NOT NULL DEFAULT '',
      dead_reason    integer NOT NULL DEFAULT 0,
      last_decision  integer NOT NULL DEFAULT 0,
      last_class     integer NOT NULL DEFAULT 0,
      error_code     text NOT NULL DEFAULT '',
      schema_version text NOT NULL DEFAULT '',
      fingerprint    text NOT NULL DEFAULT '',
      details        bytea NOT NULL,
      payload        bytea NOT NULL,
      CONSTRAINT envelopes_key UNIQUE (service, message_id)
    );
    CREATE INDEX envelopes_scheduled ON envelopes (sort_at, id) WHERE state = 1;
    CREATE INDEX envelopes_by_state ON envelopes (state, service, sort_at, id);
    CREATE INDEX envelopes_succeeded ON envelopes (sort_at) WHERE state = 4;
    CREATE INDEX envelopes_dead_by_time ON envelopes (sort_at, id) WHERE state = 3;
    CREATE INDEX envelopes_dead_by_fingerprint ON envelopes (fingerprint, sort_at) WHERE state = 3;
    CREATE TABLE circuits (
      service          text PRIMARY KEY,
      state            integer NOT NULL,
      since            bigint NOT NULL,
      next_probe_at    bigint NOT NULL,
      open_duration_us bigint NOT NULL,
      override_mode    integer NOT NULL,
      override_note    text NOT NULL DEFAULT '',
      override_peer    text NOT NULL DEFAULT '',
      override_at      bigint NOT NULL,
      windows          bytea NOT NULL DEFAULT ''::bytea
    );
    CREATE TABLE audit_events (
      id             bigserial PRIMARY KEY,
      time           bigint NOT NULL,
      identity       text NOT NULL,
      peer           text NOT NULL,
      method         text NOT NULL,
      filter         bytea NOT NULL,
      dry_run        boolean NOT NULL,
      affected_count bigint NOT NULL,
      note           text NOT NULL,
      request_id     text NOT NULL,
      target         text NOT NULL,
      result_code    text NOT NULL,
      detail         text NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_events_by_request ON audit_events (method, request_id);
    CREATE TABLE replays (
      id          bigserial PRIMARY KEY,
      request_id  text UNIQUE,
      state       integer NOT NULL,
      created_at  bigint NOT NULL,
      body        bytea NOT NULL,
      cursor_at   bigint NOT NULL,
      cursor_id   bigint NOT NULL,
      phase       integer NOT NULL,
      canary_ids  text NOT NULL
    );
    CREATE INDEX replays_by_state ON replays (state);
    )sql",
    // 1 -> 2: shared mode (fenced leases, claims of due work, guard rows, job claims); see
    // pg_shared_schema.h.
    kSharedModeMigration,
    // 2 -> 3: the store_owner row (one active retryd per database; pg_store_owner.h).
    kStoreOwnerMigration,
    // 3 -> 4: dead letters by (time, service), which the dead-letter histogram across services
    // reads alone (pg_store_histogram.cc).
    R"sql(
    CREATE INDEX envelopes_dead_histogram ON envelopes (sort_at, service) WHERE state = 3;
    )sql",
    // 4 -> 5: a stored guard row's version is at least 1 (0 means "no row" to the
    // compare-and-set of pg_guard_rows.h); rows written without one (`retryd migrate`, a
    // single-process retryd) had 0, which no replica could ever update.
    R"sql(
    UPDATE circuits SET version = 1 WHERE version = 0;
    ALTER TABLE circuits ALTER COLUMN version SET DEFAULT 1;
    )sql",
};
constexpr int kNumMigrations = sizeof(kMigrations) / sizeof(kMigrations[0]);

// Applies the missing migrations; runs inside Migrate's transaction, under its lock.
absl::Status ApplyMissing(Connection& conn) {
  RETURN_IF_ERROR(conn.ExecScript(
      "CREATE TABLE IF NOT EXISTS schema_version ("
      "  version integer PRIMARY KEY,"
      "  applied_at timestamptz NOT NULL DEFAULT now())"));
  ASSIGN_OR_RETURN(int current, CurrentVersion(conn));
  if (current > kNumMigrations) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", current, " is newer than this retryd (",
                     kNumMigrations, "); upgrade retryd"));
  }
  for (int v = current; v < kNumMigrations; ++v) {
    absl::Status s = conn.ExecScript(kMigrations[v]);
    if (s.ok()) {
      s = conn.Exec("INSERT INTO schema_version (version) VALUES ($1)", Params().Int(v + 1))
              .status();
    }
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("migrating PostgreSQL schema to version ", v + 1,
                                                 ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int SchemaVersion() { return kNumMigrations; }

absl::StatusOr<int> CurrentVersion(Connection& conn) {
  ASSIGN_OR_RETURN(Result exists, conn.Exec("SELECT to_regclass('schema_version') IS NOT NULL"));
  if (!exists.Int(0, 0)) return 0;
  ASSIGN_OR_RETURN(Result r, conn.Exec("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
  return static_cast<int>(r.Int(0, 0));
}

absl::Status Migrate(Connection& conn) {
  RETURN_IF_ERROR(conn.Begin());
  absl::Status s =
      conn.Exec("SELECT pg_advisory_xact_lock($1)", Params().Int(kMigrationLockKey)).status();
  if (s.ok()) s = ApplyMissing(conn);
  if (s.ok()) s = conn.Commit();
  if (!s.ok()) conn.Rollback();
  return s;
}

}  // namespace retryd::pg

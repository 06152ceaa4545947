#include "server/store/sqlite_schema.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/fingerprint.h"
#include "server/store/sqlite_rows.h"
#include "server/store/sqlite_store.h"
#include "server/util/status_macros.h"

namespace retryd {

namespace {

// Migrations, in order; migration i takes the schema from version i to i + 1.
const char* const kMigrations[] = {
    // 0 -> 1: services and envelopes.
    R"sql(
    CREATE TABLE services (
      id   INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE envelopes (
      id             INTEGER PRIMARY KEY,
      service_id     INTEGER NOT NULL REFERENCES services(id),
      message_id     TEXT NOT NULL,
      state          INTEGER NOT NULL,
      sort_at        INTEGER NOT NULL,
      attempt        INTEGER NOT NULL,
      max_attempts   INTEGER NOT NULL,
      first_seen_at  INTEGER NOT NULL,
      created_at     INTEGER NOT NULL,
      updated_at     INTEGER NOT NULL,
      lease_token    TEXT NOT NULL DEFAULT '',
      dead_reason    INTEGER NOT NULL DEFAULT 0,
      last_decision  INTEGER NOT NULL DEFAULT 0,
      last_class     INTEGER NOT NULL DEFAULT 0,
      error_code     TEXT NOT NULL DEFAULT '',
      schema_version TEXT NOT NULL DEFAULT '',
      details        BLOB NOT NULL,
      payload        BLOB NOT NULL
    );
    CREATE UNIQUE INDEX envelopes_by_key ON envelopes(service_id, message_id);
    CREATE INDEX envelopes_by_state ON envelopes(state, service_id, sort_at);
    )sql",
    // 1 -> 2: circuit breakers (state and operator override per service). Times in unix micros.
    R"sql(
    CREATE TABLE circuits (
      service          TEXT PRIMARY KEY,
      state            INTEGER NOT NULL,
      since            INTEGER NOT NULL,
      next_probe_at    INTEGER NOT NULL,
      open_duration_us INTEGER NOT NULL,
      override_mode    INTEGER NOT NULL,
      override_note    TEXT NOT NULL DEFAULT '',
      override_peer    TEXT NOT NULL DEFAULT '',
      override_at      INTEGER NOT NULL
    );
    )sql",
    // 2 -> 3: failure fingerprints of dead letters, and indexes for DLQ operations. The partial
    // indexes (state = 3: dead letters only) cost nothing on the retry hot path: a scheduled or
    // leased row is not in them. by_time serves listings across services in (dead_lettered_at,
    // id) order and the oldest/last-hour stats, and carries the filterable columns so that a
    // selective filter is evaluated on the index without reading rows it rejects; by_fingerprint serves grouping and the
    // fingerprint filter; by_code covers the per service/reason counts and top error codes.
    R"sql(
    ALTER TABLE envelopes ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    CREATE INDEX envelopes_dead_by_time
      ON envelopes(sort_at, service_id, dead_reason, last_class, error_code, schema_version)
      WHERE state = 3;
    CREATE INDEX envelopes_dead_by_fingerprint ON envelopes(fingerprint, sort_at) WHERE state = 3;
    CREATE INDEX envelopes_dead_by_code ON envelopes(service_id, dead_reason, error_code)
      WHERE state = 3;
    )sql",
    // 3 -> 4: the audit log of operator mutations, and persisted replay jobs with their
    // progress (cursor, phase, canaries).
    R"sql(
    CREATE TABLE audit_events (
      id             INTEGER PRIMARY KEY,
      time           INTEGER NOT NULL,
      identity       TEXT NOT NULL,
      peer           TEXT NOT NULL,
      method         TEXT NOT NULL,
      filter         BLOB NOT NULL,
      dry_run        INTEGER NOT NULL,
      affected_count INTEGER NOT NULL,
      note           TEXT NOT NULL,
      request_id     TEXT NOT NULL,
      target         TEXT NOT NULL,
      result_code    TEXT NOT NULL,
      detail         TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_events_by_request ON audit_events(method, request_id);
    CREATE TABLE replays (
      id          INTEGER PRIMARY KEY,
      request_id  TEXT UNIQUE,
      state       INTEGER NOT NULL,
      created_at  INTEGER NOT NULL,
      body        BLOB NOT NULL,
      cursor_at   INTEGER NOT NULL,
      cursor_id   INTEGER NOT NULL,
      phase       INTEGER NOT NULL,
      canary_ids  TEXT NOT NULL
    );
    CREATE INDEX replays_by_state ON replays(state);
    )sql",
    // 4 -> 5: scheduled envelopes leave the (state, service_id, sort_at) index. Their sort_at is
    // a jittered next_retry_at, so each new one landed on a page of its own in it (a quarter of
    // the pages a first failure wrote); they get an index in (service_id, id) order instead,
    // where a new one is appended at its service's end. The partial conditions are spelled as
    // the queries spell their state (SQLite uses a partial index only for a WHERE term that
    // matches one of its OR'ed conditions), and `state` is a column of the scheduled index too,
    // or SQLite would read each row to check it.
    R"sql(
    DROP INDEX envelopes_by_state;
    CREATE INDEX envelopes_by_state ON envelopes(state, service_id, sort_at)
      WHERE state = 2 OR state = 3 OR state = 4;
    CREATE INDEX envelopes_scheduled ON envelopes(service_id, id, sort_at, state)
      WHERE state = 1;
    )sql",
    // 5 -> 6: the key index is written lazily (see key_index.h). The keys move from the unique
    // index on envelopes, where each new random message id wrote a leaf of its own, to a table
    // that merges them in key order, many per leaf; the keys of envelopes newer than the
    // watermark are kept in memory and read back from their rows at open.
    R"sql(
    CREATE TABLE envelope_keys (
      service_id INTEGER NOT NULL,
      message_id TEXT NOT NULL,
      id         INTEGER NOT NULL,
      PRIMARY KEY (service_id, message_id)
    ) WITHOUT ROWID;
    INSERT INTO envelope_keys (service_id, message_id, id)
      SELECT service_id, message_id, id FROM envelopes ORDER BY service_id, message_id;
    CREATE TABLE key_merge (
      id             INTEGER PRIMARY KEY CHECK (id = 1),
      merged_through INTEGER NOT NULL
    );
    INSERT INTO key_merge (id, merged_through) SELECT 1, IFNULL(MAX(id), 0) FROM envelopes;
    DROP INDEX envelopes_by_key;
    CREATE TRIGGER envelopes_drop_key AFTER DELETE ON envelopes BEGIN
      DELETE FROM envelope_keys
        WHERE service_id = OLD.service_id AND message_id = OLD.message_id AND id = OLD.id;
    END;
    )sql",
    // 6 -> 7: the guards' windows (the circuit's failure-rate window and HALF_OPEN trials, the
    // retry budget's first-attempt window), encoded as server/core/guard_state.h says, in the
    // circuit's row, rewritten with every batch that changes them. Empty: none stored yet.
    R"sql(
    ALTER TABLE circuits ADD COLUMN windows BLOB NOT NULL DEFAULT x'';
    )sql",
    // 7 -> 8: every id and number in a failure message now becomes one placeholder (issue 18):
    // the fingerprints of all dead letters are recomputed (RecomputeFingerprints, in C++, in the
    // same transaction). Failure groups are computed from the column, so they follow.
    R"sql(
    SELECT 1;
    )sql",
    // 8 -> 9: the dead-letter histogram across services (GROUP BY service and time bucket) reads
    // the dead letters of a time range from this index alone. by_time has the same order but not
    // `state`, so SQLite (3.40) would read every row to check the partial condition; one service
    // is served by envelopes_by_state, which has it. Dead letters only: the retry path never
    // writes it.
    R"sql(
    CREATE INDEX envelopes_dead_histogram ON envelopes(sort_at, service_id, state)
      WHERE state = 3;
    )sql",
};
// The migration that recomputes every stored fingerprint with the current normaliser (also the
// one that fills them for databases from before fingerprints existed).
constexpr int kFingerprintsRecomputedAt = 8;
constexpr int kNumMigrations = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kNumMigrations == SqliteStore::kSchemaVersion);

}  // namespace

namespace {

// Sets the fingerprint of every dead letter to what FailureFingerprint says now, in batches of
// rows in id order. Runs inside the caller's transaction.
absl::Status RecomputeFingerprints(sqlite::Database& db) {
  constexpr int kBatch = 1000;
  ASSIGN_OR_RETURN(sqlite::Statement select,
                   db.Prepare(absl::StrCat(SelectSql(false, "WHERE e.state = 3 AND e.id > ? "),
                                           "ORDER BY e.id LIMIT ", kBatch)));
  ASSIGN_OR_RETURN(sqlite::Statement update,
                   db.Prepare("UPDATE envelopes SET fingerprint = ? WHERE id = ?"));
  int64_t after = 0;
  while (true) {
    std::vector<std::pair<int64_t, std::string>> rows;
    int64_t last = after;
    select.BindInt(1, after);
    while (true) {
      ASSIGN_OR_RETURN(bool has, select.Step());
      if (!has) break;
      last = select.ColumnInt(0);
      // A row whose details do not parse keeps its fingerprint; reading it reports the loss.
      absl::StatusOr<Envelope> e = RowToEnvelope(select, false);
      if (e.ok()) rows.emplace_back(e->id, FailureFingerprint(*e));
    }
    select.Reset();
    if (last == after) return absl::OkStatus();
    for (const auto& [id, fp] : rows) {
      update.BindText(1, fp);
      update.BindInt(2, id);
      RETURN_IF_ERROR(update.Run());
    }
    after = last;
  }
}

}  // namespace

absl::Status Migrate(sqlite::Database& db) {
  ASSIGN_OR_RETURN(sqlite::Statement version, db.Prepare("PRAGMA user_version"));
  ASSIGN_OR_RETURN(bool has_row, version.Step());
  const int current = has_row ? static_cast<int>(version.ColumnInt(0)) : 0;
  version.Reset();
  if (current > SqliteStore::kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", current, " is newer than this retryd (",
                     SqliteStore::kSchemaVersion, "); upgrade retryd"));
  }
  for (int v = current; v < kNumMigrations; ++v) {
    RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status s = db.Exec(kMigrations[v]);
    if (s.ok() && v + 1 == kFingerprintsRecomputedAt) s = RecomputeFingerprints(db);
    if (s.ok()) s = db.Exec(absl::StrCat("PRAGMA user_version = ", v + 1));
    if (s.ok()) s = db.Exec("COMMIT");
    if (!s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();  // The migration's own error is the one to report.
      return absl::Status(s.code(), absl::StrCat("migrating schema to version ", v + 1, ": ",
                                                 s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace retryd

#!/usr/bin/env bash
# bench/pgbench_envelopes.sh: what one PostgreSQL on this machine can do with retryd's envelope
# row, measured with plain pgbench (no retryd in the way). Prints JSON lines on stdout, progress on
# stderr.
#
#   bash bench/pgbench_envelopes.sh            starts its own PostgreSQL (bench/pg_local.sh)
#   PG_DSN=postgresql://... bash bench/pgbench_envelopes.sh   uses that database instead
#
# The table mirrors the envelopes row (the SQLite schema's columns in PostgreSQL types: ids,
# state, times as bigint microseconds, lease token, error code, a DETAILS_BYTES blob of details and
# a PAYLOAD_BYTES payload of random, incompressible bytes; a unique (service_id, message_id) key
# and a partial index of the scheduled rows by due time). Each pgbench transaction is one
# autocommit statement, so every row is its own durable commit (fsync on, synchronous_commit on).
#
# Figures (one JSON object per line, "bench":"pgbench"):
#   insert   a first failure's INSERT, for each client count in CLIENTS: tps, mean latency, WAL
#            bytes per row (pg_current_wal_lsn before/after), and which count was the ceiling
#   cycle    an envelope's whole life as four commits at CYCLE_CLIENTS: INSERT (first failure),
#            UPDATE to leased (token, attempt + 1), UPDATE to succeeded, DELETE (housekeeping):
#            lifecycles/s, WAL bytes per envelope, HOT updates, dead rows left for autovacuum
#   horizon  the same cycle for HORIZON_SECONDS while another session holds a REPEATABLE READ
#            snapshot open (a long report, a replication slot that lags): what VACUUM cannot
#            remove while it is held, the table's size, and the same after it is released
#   bloat    the cycle for BLOAT_SECONDS after a CHECKPOINT, the table's size, dead rows and
#            autovacuum runs sampled every BLOAT_SECONDS/6, and the WAL per envelope with its
#            full-page images (pg_stat_wal); twice: with PostgreSQL's default autovacuum settings,
#            then with the ones docs/internet-scale.md recommends for this table
#            (autovacuum_naptime 5s; on the table scale factor 0, threshold 10000, cost delay 0)
#
# Knobs: CLIENTS="1 4 16 64 128 256" DURATION=10 CYCLE_CLIENTS=16 HORIZON_SECONDS=20 PAYLOAD_BYTES=1024
# DETAILS_BYTES=160 SERVICES=16 BLOAT_SECONDS=0 (0: no bloat figure) KEEP_TMP=0
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="${CLIENTS:-1 4 16 64 128 256}"
DURATION="${DURATION:-10}"
CYCLE_CLIENTS="${CYCLE_CLIENTS:-16}"
HORIZON_SECONDS="${HORIZON_SECONDS:-20}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"
DETAILS_BYTES="${DETAILS_BYTES:-160}"
SERVICES="${SERVICES:-16}"
BLOAT_SECONDS="${BLOAT_SECONDS:-0}"
for v in DURATION CYCLE_CLIENTS HORIZON_SECONDS PAYLOAD_BYTES DETAILS_BYTES SERVICES BLOAT_SECONDS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v: not a whole number: ${!v}" >&2; exit 2; }
done
# shellcheck source=bench/pg_local.sh
source "$ROOT/bench/pg_local.sh"
for t in psql pgbench python3; do
  type -P "$t" >/dev/null || { echo "$t missing: bash scripts/install-deps.sh bench" >&2; exit 1; }
done

log() { printf '[pgbench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/retryd-pgbench.XXXXXX")"
OWN_PG=0
HOLDER_PID=""
cleanup() {
  [ -n "$HOLDER_PID" ] && { kill "$HOLDER_PID" 2>/dev/null || true; wait "$HOLDER_PID" 2>/dev/null || true; }
  [ "$OWN_PG" = 1 ] && pg_stop "$TMP/pg"
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

if [ -z "${PG_DSN:-}" ]; then
  log "starting PostgreSQL"
  pg_start "$TMP/pg"
  OWN_PG=1
  DSN="$(pg_createdb retryd_pgbench)"
else
  DSN="$PG_DSN"
fi
q() { psql "$DSN" -qAtX -v ON_ERROR_STOP=1 "$@"; }

setup() {
  q <<SQL
DROP TABLE IF EXISTS bench_envelopes, bench_blobs;
CREATE TABLE bench_envelopes (
  id             bigserial PRIMARY KEY,
  service_id     integer  NOT NULL,
  message_id     text     NOT NULL,
  state          smallint NOT NULL,
  sort_at        bigint   NOT NULL,
  attempt        integer  NOT NULL,
  max_attempts   integer  NOT NULL,
  first_seen_at  bigint   NOT NULL,
  created_at     bigint   NOT NULL,
  updated_at     bigint   NOT NULL,
  lease_token    text     NOT NULL DEFAULT '',
  dead_reason    smallint NOT NULL DEFAULT 0,
  last_decision  smallint NOT NULL DEFAULT 0,
  last_class     smallint NOT NULL DEFAULT 0,
  error_code     text     NOT NULL DEFAULT '',
  schema_version text     NOT NULL DEFAULT '',
  details        bytea    NOT NULL,
  payload        bytea    NOT NULL
);
CREATE UNIQUE INDEX bench_envelopes_by_key ON bench_envelopes (service_id, message_id);
CREATE INDEX bench_envelopes_due ON bench_envelopes (service_id, sort_at) WHERE state = 1;
-- 1000 random payloads and details blobs to pick from (random bytes: nothing compresses).
CREATE TABLE bench_blobs (id integer PRIMARY KEY, payload bytea NOT NULL, details bytea NOT NULL);
INSERT INTO bench_blobs
SELECT i,
       (SELECT decode(string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''), 'hex')
          FROM generate_series(1, $PAYLOAD_BYTES) WHERE i > 0),
       (SELECT decode(string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''), 'hex')
          FROM generate_series(1, $DETAILS_BYTES) WHERE i > 0)
  FROM generate_series(1, 1000) i;
ALTER TABLE bench_envelopes SET (autovacuum_enabled = on);
VACUUM ANALYZE bench_blobs;
SQL
}

# The first failure: one row, as retryd writes it (scheduled, due in 2 s).
cat >"$TMP/insert.sql" <<SQL
\set sid random(1, $SERVICES)
\set bid random(1, 1000)
INSERT INTO bench_envelopes (service_id, message_id, state, sort_at, attempt, max_attempts,
    first_seen_at, created_at, updated_at, error_code, details, payload)
  SELECT :sid, md5(random()::text || clock_timestamp()::text), 1, n.t + 2000000, 1, 5, n.t, n.t, n.t,
         'UPSTREAM_TIMEOUT', b.details, b.payload
    FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint AS t) n, bench_blobs b
   WHERE b.id = :bid;
SQL
# An envelope's life: first failure, lease, success, forgotten; four commits.
cat >"$TMP/cycle.sql" <<SQL
\set sid random(1, $SERVICES)
\set bid random(1, 1000)
INSERT INTO bench_envelopes (service_id, message_id, state, sort_at, attempt, max_attempts,
    first_seen_at, created_at, updated_at, error_code, details, payload)
  SELECT :sid, md5(random()::text || clock_timestamp()::text), 1, n.t, 1, 5, n.t, n.t, n.t,
         'UPSTREAM_TIMEOUT', b.details, b.payload
    FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint AS t) n, bench_blobs b
   WHERE b.id = :bid
  RETURNING id AS eid \gset
UPDATE bench_envelopes SET state = 2, attempt = attempt + 1, lease_token = md5(random()::text),
       sort_at = sort_at + 30000000, updated_at = sort_at
 WHERE id = :eid;
UPDATE bench_envelopes SET state = 4, lease_token = '', updated_at = sort_at WHERE id = :eid;
DELETE FROM bench_envelopes WHERE id = :eid;
SQL

wal_lsn() { q -c "SELECT pg_current_wal_lsn()"; }
wal_diff() { q -c "SELECT pg_wal_lsn_diff('$2', '$1')::bigint"; }

# run_pgbench SCRIPT CLIENTS SECONDS: sets TPS, LAT_MS, TXNS, WAL_BYTES.
run_pgbench() {
  local script="$1" c="$2" secs="$3" j before after out
  j=$((c < 2 ? c : 2))
  before="$(wal_lsn)"
  out="$(pgbench -n -M prepared -f "$script" -c "$c" -j "$j" -T "$secs" "$DSN" 2>&1)" \
    || { echo "$out" >&2; exit 1; }
  after="$(wal_lsn)"
  TPS="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)"
  LAT_MS="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out" | head -1)"
  TXNS="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out" | head -1)"
  WAL_BYTES="$(wal_diff "$before" "$after")"
  [ -n "$TPS" ] && [ -n "$TXNS" ] || { echo "$out" >&2; echo "could not read pgbench's output" >&2; exit 1; }
}

meta="$(q -c "SELECT json_build_object('server_version', current_setting('server_version'),
  'fsync', current_setting('fsync'), 'synchronous_commit', current_setting('synchronous_commit'),
  'full_page_writes', current_setting('full_page_writes'), 'shared_buffers', current_setting('shared_buffers'),
  'wal_level', current_setting('wal_level'), 'max_connections', current_setting('max_connections'))")"
echo "{\"bench\":\"pgbench\",\"what\":\"setup\",\"server\":$meta,\"nproc\":$(nproc),\"payload_bytes\":$PAYLOAD_BYTES,\"details_bytes\":$DETAILS_BYTES,\"duration_s\":$DURATION}"

# 1. INSERT of the first failure, by client count.
best_tps=0 best_c=0
for c in $CLIENTS; do
  log "INSERT, $c clients, ${DURATION}s"
  setup
  run_pgbench "$TMP/insert.sql" "$c" "$DURATION"
  echo "{\"bench\":\"pgbench\",\"what\":\"insert\",\"clients\":$c,\"tps\":$TPS,\"latency_ms\":${LAT_MS:-null},\"rows\":$TXNS,\"wal_bytes_per_row\":$((WAL_BYTES / (TXNS > 0 ? TXNS : 1)))}"
  if python3 -c "import sys; sys.exit(0 if $TPS > $best_tps else 1)"; then best_tps=$TPS best_c=$c; fi
done
echo "{\"bench\":\"pgbench\",\"what\":\"insert_ceiling\",\"clients\":$best_c,\"tps\":$best_tps}"

# 2. The whole life of an envelope.
stats() {
  q -c "SELECT json_build_object('n_live_tup', n_live_tup, 'n_dead_tup', n_dead_tup,
    'n_tup_upd', n_tup_upd, 'n_tup_hot_upd', n_tup_hot_upd, 'autovacuum_count', autovacuum_count,
    'table_bytes', pg_table_size('bench_envelopes'), 'index_bytes', pg_indexes_size('bench_envelopes'))
    FROM pg_stat_user_tables WHERE relname = 'bench_envelopes'"
}
log "cycle (insert, lease, success, delete), $CYCLE_CLIENTS clients, ${DURATION}s"
setup
run_pgbench "$TMP/cycle.sql" "$CYCLE_CLIENTS" "$DURATION"
sleep 1  # the statistics collector's last flush
echo "{\"bench\":\"pgbench\",\"what\":\"cycle\",\"clients\":$CYCLE_CLIENTS,\"lifecycles_s\":$TPS,\"latency_ms\":${LAT_MS:-null},\"envelopes\":$TXNS,\"commits_per_envelope\":4,\"wal_bytes_per_envelope\":$((WAL_BYTES / (TXNS > 0 ? TXNS : 1))),\"table\":$(stats)}"

# 3. The xmin horizon: a snapshot held open while the cycle runs.
log "horizon: cycle for ${HORIZON_SECONDS}s while a REPEATABLE READ snapshot is held"
setup
mkfifo "$TMP/holder.in"
psql "$DSN" -qAtX <"$TMP/holder.in" >"$TMP/holder.out" 2>&1 &
HOLDER_PID=$!
exec 7>"$TMP/holder.in"
printf '%s\n' "BEGIN ISOLATION LEVEL REPEATABLE READ;" "SELECT count(*) FROM bench_blobs;" >&7
sleep 1
run_pgbench "$TMP/cycle.sql" "$CYCLE_CLIENTS" "$HORIZON_SECONDS"
held_tps=$TPS held_n=$TXNS
vac_held="$(q -c "VACUUM (VERBOSE) bench_envelopes" 2>&1 | grep -o '[0-9]* are dead but not yet removable' | head -1 | cut -d' ' -f1)"
size_held="$(q -c "SELECT pg_total_relation_size('bench_envelopes')")"
printf '%s\n' "COMMIT;" >&7
exec 7>&-
wait "$HOLDER_PID" 2>/dev/null || true
HOLDER_PID=""
vac_after="$(q -c "VACUUM (VERBOSE) bench_envelopes" 2>&1 | grep -o '[0-9]* are dead but not yet removable' | head -1 | cut -d' ' -f1)"
run_pgbench "$TMP/cycle.sql" "$CYCLE_CLIENTS" "$HORIZON_SECONDS"
size_after="$(q -c "SELECT pg_total_relation_size('bench_envelopes')")"
echo "{\"bench\":\"pgbench\",\"what\":\"horizon\",\"seconds\":$HORIZON_SECONDS,\"clients\":$CYCLE_CLIENTS,\"held\":{\"lifecycles_s\":$held_tps,\"envelopes\":$held_n,\"dead_not_removable\":${vac_held:-null},\"total_bytes\":$size_held},\"released\":{\"dead_not_removable\":${vac_after:-null},\"lifecycles_s\":$TPS,\"total_bytes_after_another_run\":$size_after}}"

# 4. Bloat and autovacuum under a sustained cycle (optional: BLOAT_SECONDS > 0).
# bloat_run LABEL: one sustained run with samples; prints its JSON line.
bloat_run() {
  local label="$1" every=$((BLOAT_SECONDS / 6 > 0 ? BLOAT_SECONDS / 6 : 1)) pid wal0 samples="" t0 t b0 f0 r0
  q -c "CHECKPOINT" >/dev/null
  wal0="$(q -c "SELECT wal_bytes || ' ' || wal_fpi || ' ' || wal_records FROM pg_stat_wal")"
  pgbench -n -M prepared -f "$TMP/cycle.sql" -c "$CYCLE_CLIENTS" -j 2 -T "$BLOAT_SECONDS" "$DSN" \
    >"$TMP/bloat.$label.out" 2>&1 &
  pid=$!
  t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep "$every"
    t=$((SECONDS - t0))
    samples+="${samples:+,}{\"t_s\":$t,\"table\":$(stats)}"
  done
  wait "$pid" || { cat "$TMP/bloat.$label.out" >&2; exit 1; }
  TPS="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$TMP/bloat.$label.out" | head -1)"
  TXNS="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TMP/bloat.$label.out" | head -1)"
  local wal
  read -r b0 f0 r0 <<<"$wal0"
  wal="$(q -c "SELECT json_build_object(
    'wal_bytes_per_envelope', round((wal_bytes - $b0) / greatest($TXNS, 1)),
    'full_page_images_per_envelope', round((wal_fpi - $f0)::numeric / greatest($TXNS, 1), 3),
    'wal_records_per_envelope', round((wal_records - $r0)::numeric / greatest($TXNS, 1), 2))
    FROM pg_stat_wal")"
  echo "{\"bench\":\"pgbench\",\"what\":\"bloat\",\"autovacuum\":\"$label\",\"seconds\":$BLOAT_SECONDS,\"clients\":$CYCLE_CLIENTS,\"lifecycles_s\":$TPS,\"envelopes\":$TXNS,\"wal\":$wal,\"samples\":[$samples]}"
}
if [ "$BLOAT_SECONDS" -gt 0 ]; then
  log "bloat: cycle for ${BLOAT_SECONDS}s with the default autovacuum settings"
  setup
  q -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
  bloat_run default
  log "bloat: cycle for ${BLOAT_SECONDS}s with autovacuum tuned for the table"
  setup
  q -c "ALTER SYSTEM SET autovacuum_naptime = '5s'" -c "SELECT pg_reload_conf()" >/dev/null
  q -c "ALTER TABLE bench_envelopes SET (autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_cost_delay = 0)" >/dev/null
  bloat_run tuned
  q -c "ALTER SYSTEM RESET autovacuum_naptime" -c "SELECT pg_reload_conf()" >/dev/null
fi

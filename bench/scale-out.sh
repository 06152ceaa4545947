#!/usr/bin/env bash
# bench/scale-out.sh: does retryd scale out on PostgreSQL (issue #19, item 4)? One run measures,
# back to back on this machine:
#   sqlite       one retryd on its embedded SQLite (the default)
#   postgres/N   N = 1, 2, 3 retryd replicas (--store postgres) on ONE PostgreSQL on loopback,
#                each on a fresh database; the load is spread evenly over the replicas
#   pgbench      plain pgbench INSERTs of the same envelope row into the same PostgreSQL
#                (bench/pgbench_envelopes.sh): by client count, its ceiling, and at CONCURRENCY
# and for retryd two figures, with `retryd_loadgen` (the suite's load generator):
#   submit  ReportFailure of distinct first failures (PAYLOAD_BYTES payloads), CONCURRENCY in flight
#   cycle   first failure -> Lease -> ReportSuccess (`cycle --refill`: each slot reports a new
#           failure, due 1 ms later, leases one due envelope and reports its success)
# With N replicas there are N load generators, one per replica, each with CONCURRENCY/N slots
# (SPLIT=total, the default: the same offered load whatever N) or CONCURRENCY slots each
# (SPLIT=per-replica); their throughputs are added up over the same measured window.
#
# Output: one JSON object per line on stdout and in OUT (default bench/results/scale-out.jsonl):
# {"case": "sqlite"|"postgres"|"pgbench", "replicas": N, "figure": "submit"|"cycle"|..., ...},
# then one {"summary": ...} line with the table and the ratios within this run (postgres/N over
# postgres/1, over sqlite, over the pgbench ceiling). Progress goes to stderr.
#
# PostgreSQL comes from bench/pg_local.sh: a throw-away cluster with PostgreSQL's durable defaults
# (fsync on), as the postgres user when root; PG_FROM=pg-cluster takes the tests'
# scripts/pg-cluster.sh instead (fsync off: faster, not durable). A retryd without --store (the
# PostgreSQL store not merged yet) gets "skipped" lines for postgres/N; sqlite and pgbench still
# run.
#
# Knobs: DURATION=10 WARMUP=2 CONCURRENCY=64 PAYLOAD_BYTES=1024 REPLICAS="1 2 3" SPLIT=total
# CONNECTIONS=2 (gRPC connections per load generator) PGBENCH_CLIENTS="1 4 16 64 128 256" PG_FROM=local
# BUILD_DIR=build SKIP_BUILD=0 SKIP_INSTALL=0 OUT=bench/results/scale-out.jsonl KEEP_TMP=0
# RETRYD_BIN, LOADGEN_BIN (other builds)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONCURRENCY="${CONCURRENCY:-64}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"
REPLICAS="${REPLICAS:-1 2 3}"
SPLIT="${SPLIT:-total}"
CONNECTIONS="${CONNECTIONS:-2}"
PGBENCH_CLIENTS="${PGBENCH_CLIENTS:-1 4 16 64 128 256}"
OUT="${OUT:-$ROOT/bench/results/scale-out.jsonl}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SKIP_INSTALL="${SKIP_INSTALL:-0}"
RETRYD="${RETRYD_BIN:-$BUILD_DIR/server/retryd}"
LOADGEN="${LOADGEN_BIN:-$BUILD_DIR/bench/retryd_loadgen}"
for v in DURATION WARMUP CONCURRENCY PAYLOAD_BYTES CONNECTIONS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || { echo "$v: not a positive whole number: ${!v}" >&2; exit 2; }
done
for n in $REPLICAS $PGBENCH_CLIENTS; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "REPLICAS/PGBENCH_CLIENTS: not a positive number: $n" >&2; exit 2; }
done
case "$SPLIT" in total|per-replica) ;; *) echo "SPLIT: total or per-replica, not $SPLIT" >&2; exit 2 ;; esac

log() { printf '[scale-out %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- prerequisites ------------------------------------------------------------------------------
# shellcheck source=bench/pg_local.sh
source "$ROOT/bench/pg_local.sh"
if [ "$SKIP_INSTALL" != 1 ] && ! { type -P psql && type -P pgbench && type -P python3 &&
                                   pg_bindir; } >/dev/null 2>&1; then
  log "installing the bench packages (scripts/install-deps.sh bench)"
  bash "$ROOT/scripts/install-deps.sh" bench >&2
fi
for t in psql pgbench python3 runuser; do
  type -P "$t" >/dev/null || die "$t missing: bash scripts/install-deps.sh bench"
done
if [ "$SKIP_BUILD" != 1 ]; then
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || die "no build in $BUILD_DIR: run scripts/build.sh first"
  log "cmake --build $BUILD_DIR (retryd retryd_loadgen)"
  cmake --build "$BUILD_DIR" --target retryd retryd_loadgen -j2 >&2 || die "build failed"
fi
for b in "$RETRYD" "$LOADGEN"; do [ -x "$b" ] || die "missing $b"; done

# ---- processes ----------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/retryd-scale-out.XXXXXX")"
mkdir -p "$TMP/bin"
cp "$RETRYD" "$TMP/bin/retryd"  # A rebuild during the run cannot change it.
cp "$LOADGEN" "$TMP/bin/retryd_loadgen"
RETRYD="$TMP/bin/retryd"
LOADGEN="$TMP/bin/retryd_loadgen"
PIDS=()
PG_UP=0
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "$PG_UP" = 1 ] && pg_stop "$TMP/pg"
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
emit() { echo "$1" | tee -a "$OUT"; }

# The `cycle` service's retries are due 1 ms after a failure (as in bench/run.sh); no budget, so
# these runs measure the engine and the store, not the pacing.
CONFIG="$TMP/retryd.json"
cat >"$CONFIG" <<'JSON'
{"metricsAddr": "off",
 "policies": [{"name": "default", "budget": {"enabled": false}},
              {"name": "cycle", "maxAttempts": 10, "budget": {"enabled": false},
               "backoff": {"initial": "0.001s", "multiplier": 1, "max": "0.001s", "jitter": "NONE"}}]}
JSON

REPLICA_PORTS=()
REPLICA_PIDS=()
# start_replicas N DIR [DSN]: N retryd processes (on SQLite in DIR when no DSN; else on the
# PostgreSQL of DSN, passed as RETRYD_POSTGRES_DSN), each ready on its own port.
start_replicas() {
  local n="$1" dir="$2" dsn="${3:-}" i logf t0 ready
  REPLICA_PORTS=() REPLICA_PIDS=()
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$dir/r$i"
    logf="$dir/r$i/retryd.log"
    t0=$EPOCHREALTIME
    if [ -n "$dsn" ]; then
      RETRYD_POSTGRES_DSN="$dsn" "$RETRYD" --config "$CONFIG" --store postgres \
        --data-dir "$dir/r$i/data" --grpc-addr 127.0.0.1:0 --metrics-addr off \
        --shutdown-grace 2s 2>"$logf" &
    else
      "$RETRYD" --config "$CONFIG" --data-dir "$dir/r$i/data" --grpc-addr 127.0.0.1:0 \
        --metrics-addr off --shutdown-grace 2s 2>"$logf" &
    fi
    REPLICA_PIDS+=($!)
    PIDS+=($!)
    ready="$("$LOADGEN" ready --log "$logf" --t0 "$t0" --pid "${REPLICA_PIDS[-1]}" --timeout 120s)" \
      || die "retryd replica $i did not start: $(tail -3 "$logf")"
    REPLICA_PORTS+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["port"])' "$ready")")
  done
}
stop_replicas() {
  local p
  for p in "${REPLICA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${REPLICA_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  REPLICA_PIDS=()
}

# load FIGURE CASE DIR: one load generator per replica at once; prints the combined JSON line.
load() {
  local figure="$1" case_="$2" dir="$3" n=${#REPLICA_PORTS[@]} i slots pids=() args
  if [ "$SPLIT" = total ]; then
    slots=$(((CONCURRENCY + n - 1) / n))
  else
    slots=$CONCURRENCY
  fi
  for ((i = 0; i < n; i++)); do
    args=(--target "127.0.0.1:${REPLICA_PORTS[$i]}" --concurrency "$slots" --connections "$CONNECTIONS"
          --payload-bytes "$PAYLOAD_BYTES" --warmup "${WARMUP}s" --duration "${DURATION}s")
    if [ "$figure" = submit ]; then
      "$LOADGEN" submit "${args[@]}" --service bench >"$dir/$figure.$i.json" 2>"$dir/$figure.$i.err" &
    else
      "$LOADGEN" cycle "${args[@]}" --service cycle --refill --preload-time 1s \
        >"$dir/$figure.$i.json" 2>"$dir/$figure.$i.err" &
    fi
    pids+=($!)
    PIDS+=($!)
  done
  for ((i = 0; i < n; i++)); do
    wait "${pids[$i]}" || die "load generator $i ($figure, $case_) failed: $(tail -3 "$dir/$figure.$i.err")"
  done
  python3 "$ROOT/bench/scale_out.py" combine --case "$case_" --figure "$figure" --replicas "$n" \
    --split "$SPLIT" "$dir/$figure".*.json
}

emit "$(python3 - "$DURATION" "$WARMUP" "$CONCURRENCY" "$PAYLOAD_BYTES" "$SPLIT" "$CONNECTIONS" "$ROOT" <<'PY'
import json, os, subprocess, sys
d, w, c, p, split, conns, root = sys.argv[1:]
sh = lambda cmd: subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
print(json.dumps({"case": "meta", "duration_s": int(d), "warmup_s": int(w), "concurrency": int(c),
                  "payload_bytes": int(p), "split": split, "connections_per_loadgen": int(conns),
                  "cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                  "git_commit": sh(f"git -C '{root}' rev-parse --short HEAD")}))
PY
)"

# The disk's flush latency decides every durable commit (SQLite's and PostgreSQL's alike) and, on a
# shared virtual disk, changes by an order of magnitude over minutes: pg_test_fsync's fdatasync of
# one 8 kB write, before and after the run.
fsync_line() {
  local bin us
  bin="$(pg_bindir)" || return 0
  us="$(cd "$TMP" && "$bin/pg_test_fsync" -s 1 -f "$TMP/fsync.test" 2>/dev/null |
        awk '/^Compare file sync methods using one/ {one=1} one && $1 == "fdatasync" {print $(NF-1); exit}')"
  rm -f "$TMP/fsync.test"
  echo "{\"case\":\"fsync\",\"when\":\"$1\",\"fdatasync_us\":${us:-null}}"
}
emit "$(fsync_line before)"

# ---- SQLite, one node ---------------------------------------------------------------------------
for figure in submit cycle; do
  log "sqlite: $figure, $CONCURRENCY in flight, ${DURATION}s"
  dir="$TMP/sqlite-$figure"
  start_replicas 1 "$dir"
  emit "$(load "$figure" sqlite "$dir")"
  stop_replicas
done

# ---- PostgreSQL ---------------------------------------------------------------------------------
log "starting PostgreSQL"
pg_start "$TMP/pg"
PG_UP=1
log "PostgreSQL from $PG_HOW"
if "$RETRYD" --help 2>&1 | grep -q -- '--store'; then
  for n in $REPLICAS; do
    for figure in submit cycle; do
      log "postgres/$n: $figure, $CONCURRENCY in flight ($SPLIT), ${DURATION}s"
      dir="$TMP/pg$n-$figure"
      dsn="$(pg_createdb "retryd_${n}_$figure")"
      start_replicas "$n" "$dir" "$dsn"
      emit "$(load "$figure" postgres "$dir")"
      stop_replicas
    done
  done
else
  for n in $REPLICAS; do
    emit "{\"case\":\"postgres\",\"replicas\":$n,\"skipped\":\"this retryd has no --store flag (the PostgreSQL store is not in this build)\"}"
  done
fi

# ---- pgbench: the same row, straight into the same PostgreSQL ----------------------------------
clients="$(printf '%s\n' $PGBENCH_CLIENTS "$CONCURRENCY" | sort -n -u | tr '\n' ' ')"
log "pgbench INSERT of the envelope row, clients: $clients"
PG_DSN="$(pg_createdb retryd_pgbench)" CLIENTS="$clients" DURATION="$DURATION" \
  CYCLE_CLIENTS="$CONCURRENCY" HORIZON_SECONDS="$DURATION" PAYLOAD_BYTES="$PAYLOAD_BYTES" \
  bash "$ROOT/bench/pgbench_envelopes.sh" | python3 "$ROOT/bench/scale_out.py" tag-pgbench | tee -a "$OUT"

emit "$(fsync_line after)"
emit "$(python3 "$ROOT/bench/scale_out.py" summary "$OUT")"
python3 "$ROOT/bench/scale_out.py" table "$OUT" >&2

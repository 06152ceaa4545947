#!/usr/bin/env bash
# bench/run.sh: the retryd benchmark suite of issue #3 (see BENCHMARKS.md).
#
#   bash bench/run.sh                 full suite: 3 rounds + one 1 000 000-envelope round
#   SCALE=100000 RUNS=3 bash bench/run.sh   a quicker run (smaller scheduled set)
#
# The scale round preloads SCALE envelopes due over the next minutes into a fresh retryd, samples
# RSS, and kill -9s and restarts it STARTUP_RUNS times (time to serving). While those envelopes are
# not yet due, rounds 1..RUNS each start a fresh retryd, a no-op gRPC server and a Redis
# (appendfsync always), measure the three submit figures back to back (the order rotates per
# round), then the Lease+ReportSuccess cycle. Then a fresh retryd replays dead letters at
# REPLAY_RATE (replay pacing). Last, long-polling workers drain what falls due (dispatch
# lateness). Everything listens on 127.0.0.1 only and everything started here is stopped on exit.
# Results: bench/results/latest.json + a table.
#
# Knobs (environment): RUNS=3 SCALE=1000000 DURATION=10 WARMUP=1 CONCURRENCY=64 PAYLOAD_BYTES=1024
# SPREAD=600 DRAIN_SECONDS=60 WORKERS=8 DRAIN_BATCH=32 STARTUP_RUNS=3 CYCLE_PRELOAD_SECONDS=10
# REPLAY_RATE=500 (StartReplay max_per_second of the replay-pacing figure; measured over DURATION)
# BUILD_DIR=build OUT=bench/results/latest.json KEEP_TMP=0 SKIP_BUILD=0 SKIP_INSTALL=0
# RETRYD_BIN (default BUILD_DIR/server/retryd: benchmark another build, e.g. a baseline commit's)
# LATENESS_OFFSET (seconds from the main preload's start to the first due time; default:
# estimated from the rate of a first 5 % calibration preload, the restarts, the rounds and the
# replay figure).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RUNS="${RUNS:-3}"
SCALE="${SCALE:-1000000}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-1}"
CONCURRENCY="${CONCURRENCY:-64}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"
SPREAD="${SPREAD:-600}"
DRAIN_SECONDS="${DRAIN_SECONDS:-60}"
WORKERS="${WORKERS:-8}"
DRAIN_BATCH="${DRAIN_BATCH:-32}"
STARTUP_RUNS="${STARTUP_RUNS:-3}"
CYCLE_PRELOAD_SECONDS="${CYCLE_PRELOAD_SECONDS:-10}"
REPLAY_RATE="${REPLAY_RATE:-500}"
[[ "$REPLAY_RATE" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "REPLAY_RATE: not a number: $REPLAY_RATE" >&2; exit 2; }
OUT="${OUT:-$ROOT/bench/results/latest.json}"
KEEP_TMP="${KEEP_TMP:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SKIP_INSTALL="${SKIP_INSTALL:-0}"
LATENESS_OFFSET="${LATENESS_OFFSET:-}"

RETRYD="${RETRYD_BIN:-$BUILD_DIR/server/retryd}"
LOADGEN="${LOADGEN_BIN:-$BUILD_DIR/bench/retryd_loadgen}"
NOOP="${NOOP_BIN:-$BUILD_DIR/bench/noop_server}"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUITE_START=$EPOCHREALTIME
export ROOT

# ---- prerequisites ------------------------------------------------------------------------------
if [ "$SKIP_INSTALL" != 1 ] && ! { type -P redis-server && type -P redis-benchmark &&
                                   type -P python3; } >/dev/null 2>&1; then
  log "installing the bench packages (scripts/install-deps.sh bench)"
  bash "$ROOT/scripts/install-deps.sh" bench >&2
fi
type -P redis-server >/dev/null || die "redis-server missing: bash scripts/install-deps.sh bench"
type -P redis-benchmark >/dev/null || die "redis-benchmark missing: bash scripts/install-deps.sh bench"
type -P python3 >/dev/null || die "python3 missing: bash scripts/install-deps.sh bench"

if [ "$SKIP_BUILD" != 1 ]; then
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || die "no build in $BUILD_DIR: run scripts/build.sh (or cmake) first"
  log "cmake --build $BUILD_DIR (retryd retryd_loadgen noop_server)"
  cmake --build "$BUILD_DIR" --target retryd retryd_loadgen noop_server -j2 >&2 ||
    die "build failed (is RETRYD_BUILD_BENCH=ON in $BUILD_DIR?)"
fi
for b in "$RETRYD" "$LOADGEN" "$NOOP"; do [ -x "$b" ] || die "missing $b"; done

# ---- process bookkeeping ------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/retryd-bench.XXXXXX")"
# Run copies of the binaries, so that a rebuild during the suite cannot change them mid-run.
mkdir -p "$TMP/bin"
cp "$RETRYD" "$TMP/bin/retryd"
cp "$LOADGEN" "$TMP/bin/retryd_loadgen"
cp "$NOOP" "$TMP/bin/noop_server"
RETRYD_SOURCE="$RETRYD"
RETRYD="$TMP/bin/retryd"
LOADGEN="$TMP/bin/retryd_loadgen"
NOOP="$TMP/bin/noop_server"
export RETRYD_SOURCE RETRYD
RECORDS="$TMP/records.jsonl"
: >"$RECORDS"
declare -A STARTED=()  # pid -> name, for everything this script started

stop_pid() {  # stop_pid PID [signal]: TERM (or the given signal), then KILL after 10 s
  local pid="$1" sig="${2:-TERM}" i
  [ -n "${STARTED[$pid]:-}" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  unset "STARTED[$pid]"
}

track() {  # track PID NAME: remember a background child (disowned: no job-status noise)
  STARTED[$1]="$2"
  disown "$1" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${!STARTED[@]}"; do stop_pid "$pid"; done
  if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record() {  # record KIND ROUND JSON: one line of raw results
  python3 - "$1" "$2" "$3" >>"$RECORDS" <<'PY'
import json, sys
kind, rnd, data = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
print(json.dumps({"kind": kind, "round": rnd, "data": data}))
PY
}

jget() {  # jget JSON KEY: a top-level field
  python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# The bench config: Retry-After honored up to a day (the lateness preload spreads due times over
# minutes), a `cycle` service whose retries are due 1 ms after the failure, and a `replay` service
# whose replay cap is the highest allowed (the built-in 100/s would cap REPLAY_RATE). The retry
# budget is off: these runs measure the engine, and would otherwise pace the retries they count.
CONFIG="$TMP/retryd.json"
cat >"$CONFIG" <<'EOF'
{
  "metricsAddr": "off",
  "policies": [
    {"name": "default", "maxRetryAfter": "86400s", "budget": {"enabled": false}},
    {"name": "cycle", "maxAttempts": 10, "budget": {"enabled": false},
     "backoff": {"initial": "0.001s", "multiplier": 1, "max": "0.001s", "jitter": "NONE"}},
    {"name": "replay", "budget": {"enabled": false}, "replay": {"maxPerSecond": 100000}}
  ]
}
EOF

# start_retryd DIR [PORT]: starts retryd on DIR/data; sets RETRYD_PID, RETRYD_PORT, READY_JSON.
RETRYD_STARTS=0
start_retryd() {
  local dir="$1" port="${2:-0}" t0 logf
  mkdir -p "$dir"
  RETRYD_STARTS=$((RETRYD_STARTS + 1))
  logf="$dir/retryd.$RETRYD_STARTS.log"
  t0=$EPOCHREALTIME
  "$RETRYD" --config "$CONFIG" --data-dir "$dir/data" --grpc-addr "127.0.0.1:$port" \
    --metrics-addr 127.0.0.1:0 \
    --shutdown-grace 2s 2>"$logf" &
  RETRYD_PID=$!
  track "$RETRYD_PID" retryd
  local args=(ready --log "$logf" --t0 "$t0" --pid "$RETRYD_PID" --timeout 180s)
  [ "$port" != 0 ] && args+=(--port "$port")
  READY_JSON="$("$LOADGEN" "${args[@]}")" || die "retryd did not start: $READY_JSON; log: $(tail -3 "$logf")"
  RETRYD_PORT="$(jget "$READY_JSON" port)"
}

start_noop() {  # sets NOOP_PID NOOP_PORT
  local logf="$1/noop.log" t0
  t0=$EPOCHREALTIME
  "$NOOP" --grpc-addr 127.0.0.1:0 2>"$logf" &
  NOOP_PID=$!
  track "$NOOP_PID" noop_server
  local ready
  ready="$("$LOADGEN" ready --log "$logf" --t0 "$t0" --pid "$NOOP_PID" --timeout 30s)" ||
    die "noop_server did not start: $ready"
  NOOP_PORT="$(jget "$ready" port)"
}

start_redis() {  # sets REDIS_PID REDIS_PORT
  local dir="$1/redis" i
  mkdir -p "$dir"
  REDIS_PORT="$(free_port)"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --appendonly yes \
    --appendfsync always --save '' --daemonize no --logfile "$dir/redis.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  track "$REDIS_PID" redis-server
  for ((i = 0; i < 100; i++)); do
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  die "redis-server did not start (see $dir/redis.log)"
}

# A 1 KB sorted-set member: a random 12-digit number (redis-benchmark's __rand_int__, replaced in
# every argument of the command) padded to PAYLOAD_BYTES.
REDIS_MEMBER="$(python3 -c 'import sys; n=int(sys.argv[1]); h="m:__rand_int__:"; print(h + "x"*max(0, n-len(h)))' "$PAYLOAD_BYTES")"
REDIS_N=""

# redis_bench N: ZADD of distinct 1 KB members, CONCURRENCY connections; prints JSON.
redis_bench() {
  local n="$1" csv
  csv="$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONCURRENCY" -n "$n" -r 100000000 --csv \
         ZADD bench:z __rand_int__ "$REDIS_MEMBER" 2>/dev/null)" || die "redis-benchmark failed"
  python3 - "$csv" "$n" <<'PY'
import csv, io, json, sys
rows = list(csv.reader(io.StringIO(sys.argv[1])))
head = rows[0]
vals = dict(zip(head, rows[-1]))
f = lambda k: float(vals[k]) if k in vals else None
print(json.dumps({"mode": "redis-zadd", "requests": int(sys.argv[2]), "throughput_ops_s": f("rps"),
                  "p50_ms": f("p50_latency_ms"), "p99_ms": f("p99_latency_ms"),
                  "max_ms": f("max_latency_ms"), "mean_ms": f("avg_latency_ms")}))
PY
}

measure_retryd_submit() {
  local j
  j="$("$LOADGEN" submit --target "127.0.0.1:$RETRYD_PORT" --concurrency "$CONCURRENCY" \
        --duration "${DURATION}s" --warmup "${WARMUP}s" --payload-bytes "$PAYLOAD_BYTES" \
        --service bench)"
  record submit_retryd "$1" "$j"
  log "  retryd submit: $(jget "$j" throughput_ops_s) ops/s, p99 $(jget "$j" p99_ms) ms, errors $(jget "$j" errors)"
}
measure_noop_submit() {
  local j
  j="$("$LOADGEN" submit --target "127.0.0.1:$NOOP_PORT" --concurrency "$CONCURRENCY" \
        --duration "${DURATION}s" --warmup "${WARMUP}s" --payload-bytes "$PAYLOAD_BYTES" \
        --service bench)"
  record submit_noop "$1" "$j"
  log "  noop   submit: $(jget "$j" throughput_ops_s) ops/s, p99 $(jget "$j" p99_ms) ms"
}
measure_redis_submit() {
  local j rps
  if [ -z "$REDIS_N" ]; then
    # Calibrate once so a measured run lasts about DURATION seconds.
    j="$(redis_bench 20000)"
    rps="$(jget "$j" throughput_ops_s)"
    REDIS_N="$(python3 -c 'import sys; print(max(20000, int(float(sys.argv[1]) * float(sys.argv[2]))))' "$rps" "$DURATION")"
    log "  redis calibration: $rps ops/s -> $REDIS_N requests per run"
  else
    redis_bench "$((REDIS_N / 10 > 2000 ? REDIS_N / 10 : 2000))" >/dev/null  # warm-up
  fi
  j="$(redis_bench "$REDIS_N")"
  record submit_redis "$1" "$j"
  log "  redis  ZADD  : $(jget "$j" throughput_ops_s) ops/s, p99 $(jget "$j" p99_ms) ms"
}

# ---- the suite ----------------------------------------------------------------------------------
# Order: (A) the scale round's preload, with due times placed after everything else; (B) memory and
# kill -9 restarts; (C) the rounds, then replay pacing, while the loaded retryd sits idle; (D) the
# lateness drain when the preloaded envelopes start falling due. C fills the time the due window
# has to be pushed out by anyway, so the suite stays under 10 minutes at SCALE=1000000.
log "suite: RUNS=$RUNS SCALE=$SCALE DURATION=${DURATION}s CONCURRENCY=$CONCURRENCY PAYLOAD_BYTES=$PAYLOAD_BYTES; retryd $RETRYD_SOURCE; tmp $TMP"
record meta 0 "$(python3 - "$RUNS" "$SCALE" "$DURATION" "$WARMUP" "$CONCURRENCY" "$PAYLOAD_BYTES" "$SPREAD" "$DRAIN_SECONDS" "$WORKERS" "$DRAIN_BATCH" "$STARTUP_RUNS" "$REPLAY_RATE" <<'PY'
import json, os, platform, subprocess, sys
keys = ["runs", "scale", "duration_s", "warmup_s", "concurrency", "payload_bytes", "spread_s",
        "drain_seconds", "workers", "drain_batch", "startup_runs", "replay_rate"]
meta = dict(zip(keys, [float(x) if "." in x else int(x) for x in sys.argv[1:]]))
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
root = os.environ.get("ROOT", ".")
meta.update({"retryd_bin": os.environ.get("RETRYD_SOURCE", ""),
             "retryd_sha256": sh("sha256sum '%s' | cut -c1-16" % os.environ.get("RETRYD", "")),
             "loadavg_start": open("/proc/loadavg").read().split()[:3],
             "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
             "cpu_model": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
             "redis_version": sh("redis-server --version"),
             "git_commit": sh("git -C '%s' rev-parse --short HEAD" % root),
             "git_dirty": bool(sh("git -C '%s' status --porcelain --untracked-files=no" % root))})
print(json.dumps(meta))
PY
)"

# ---- (A) scale round: preload -------------------------------------------------------------------
sdir="$TMP/scale"
mkdir -p "$sdir"
log "scale round: $SCALE envelopes, most of them due over ${SPREAD}s after the rounds"
start_retryd "$sdir"
SCALE_PID=$RETRYD_PID
SCALE_PORT=$RETRYD_PORT
sleep 1
RSS_EMPTY="$(rss_kb "$SCALE_PID")"

# A first 5 % (due in two hours, after the drain) measures the preload rate; the rest falls due
# from LATENESS_OFFSET after its own start: the estimated preload time (x1.85: the rate drops as
# the database grows, and the first 5 % ran on a small one), the restarts, the rounds and the
# replay figure, plus a margin. Envelopes that still fall due
# before the drain starts are left out of the lateness figures (reported as `backlog`).
CAL_COUNT=$((SCALE / 20 > 1000 ? SCALE / 20 : 1000))
[ "$CAL_COUNT" -lt "$SCALE" ] || CAL_COUNT=$((SCALE / 2))
MAIN_COUNT=$((SCALE - CAL_COUNT))
log "  preload 1/2: $CAL_COUNT envelopes due in 2 h (rate calibration; RSS empty ${RSS_EMPTY} kB)"
CAL_JSON="$("$LOADGEN" preload --target "127.0.0.1:$SCALE_PORT" --concurrency "$CONCURRENCY" \
  --count "$CAL_COUNT" --offset 7200s --spread 600s --payload-bytes "$PAYLOAD_BYTES" \
  --service bench)" || die "preload failed: $CAL_JSON"
record preload_calibration 0 "$CAL_JSON"
ROUND_SECONDS=$((4 * (DURATION + WARMUP) + CYCLE_PRELOAD_SECONDS + 16))  # measured: 60-70 s
REPLAY_SECONDS=$((DURATION + WARMUP + 5))  # dead-lettering, start and stop: 2-3 s at 500/s
if [ -z "$LATENESS_OFFSET" ]; then
  LATENESS_OFFSET="$(python3 - "$(jget "$CAL_JSON" throughput_ops_s)" "$MAIN_COUNT" "$STARTUP_RUNS" "$RUNS" "$ROUND_SECONDS" "$REPLAY_SECONDS" <<'PY'
import sys
rate, count, restarts, runs, round_s, replay_s = float(sys.argv[1]), int(sys.argv[2]), *map(int, sys.argv[3:])
print(int(count / max(rate, 1.0) * 1.85 + 4 * restarts + runs * round_s + replay_s + 10))
PY
)"
fi
log "  preload 2/2: $MAIN_COUNT envelopes due from ${LATENESS_OFFSET}s to $((LATENESS_OFFSET + SPREAD))s after its start"
PRELOAD_JSON="$("$LOADGEN" preload --target "127.0.0.1:$SCALE_PORT" --concurrency "$CONCURRENCY" \
  --count "$MAIN_COUNT" --offset "${LATENESS_OFFSET}s" --spread "${SPREAD}s" \
  --payload-bytes "$PAYLOAD_BYTES" --service bench)" || die "preload failed: $PRELOAD_JSON"
record preload 0 "$PRELOAD_JSON"
log "  preload: $(jget "$PRELOAD_JSON" submitted_ok) in $(jget "$PRELOAD_JSON" elapsed_s) s ($(jget "$PRELOAD_JSON" throughput_ops_s)/s)"

# ---- (B) memory and start-up --------------------------------------------------------------------
sleep 2
RSS_LOADED="$(rss_kb "$SCALE_PID")"
DATA_BYTES="$(du -sb "$sdir/data" | cut -f1)"
record memory_loaded 0 "{\"rss_empty_kb\": $RSS_EMPTY, \"rss_kb\": $RSS_LOADED, \"scheduled\": $SCALE, \"data_dir_bytes\": $DATA_BYTES}"
log "  RSS after preload: $RSS_LOADED kB (data dir $DATA_BYTES bytes)"
for ((i = 1; i <= STARTUP_RUNS; i++)); do
  stop_pid "$SCALE_PID" KILL
  start_retryd "$sdir" "$SCALE_PORT"
  SCALE_PID=$RETRYD_PID
  record startup "$i" "$READY_JSON"
  sleep 1
  rss="$(rss_kb "$SCALE_PID")"
  record memory_restart "$i" "{\"rss_empty_kb\": $RSS_EMPTY, \"rss_kb\": $rss, \"scheduled\": $SCALE}"
  log "  restart $i: serving after $(jget "$READY_JSON" to_rpc_ms) ms (log line $(jget "$READY_JSON" to_log_line_ms) ms, scheduled $(jget "$READY_JSON" scheduled_logged)), RSS $rss kB"
done

# ---- (C) rounds: submit x3 (rotating order) + cycle ---------------------------------------------
orders=("retryd noop redis" "noop redis retryd" "redis retryd noop")
for ((r = 1; r <= RUNS; r++)); do
  rdir="$TMP/round$r"
  mkdir -p "$rdir"
  log "round $r/$RUNS"
  start_retryd "$rdir"
  start_noop "$rdir"
  start_redis "$rdir"
  for what in ${orders[$(((r - 1) % 3))]}; do
    "measure_${what}_submit" "$r"
  done
  # Exits 1 when the pool ran dry before the warm-up ended (no window): recorded, not fatal.
  j="$("$LOADGEN" cycle --target "127.0.0.1:$RETRYD_PORT" --concurrency "$CONCURRENCY" \
        --duration "${DURATION}s" --warmup "${WARMUP}s" --payload-bytes "$PAYLOAD_BYTES" \
        --preload-time "${CYCLE_PRELOAD_SECONDS}s" --service cycle 2>/dev/null)" || true
  [ -n "$j" ] || j='{"mode": "cycle", "error": "no output"}'
  record cycle "$r" "$j"
  log "  cycle        : $(jget "$j" throughput_cycles_s) cycles/s (pool exhausted: $(jget "$j" pool_exhausted))"
  stop_pid "$RETRYD_PID"
  stop_pid "$NOOP_PID"
  stop_pid "$REDIS_PID"
  rm -rf "$rdir"
done

# ---- replay pacing ------------------------------------------------------------------------------
# A fresh retryd: dead-letter REPLAY_RATE x (WARMUP + DURATION + 5) envelopes of service `replay`
# (PERMANENT failures), StartReplay them at REPLAY_RATE, measure Δreplayed/Δt by GetReplay polls
# over DURATION after WARMUP, then CancelReplay. The loadgen exits 1 when no window was measured:
# recorded (with its `error`), not fatal.
pdir="$TMP/replay"
log "replay pacing: ${REPLAY_RATE}/s over ${DURATION}s"
start_retryd "$pdir"
j="$("$LOADGEN" replay-pacing --target "127.0.0.1:$RETRYD_PORT" --concurrency "$CONCURRENCY" \
      --service replay --rate "$REPLAY_RATE" --duration "${DURATION}s" --warmup "${WARMUP}s" \
      --payload-bytes "$PAYLOAD_BYTES")" || true
[ -n "$j" ] || j='{"mode": "replay-pacing", "error": "no output"}'
record replay 0 "$j"
log "  replay: $(python3 -c 'import json, sys; d = json.loads(sys.argv[1])
print("%.1f/s achieved vs %g/s applied (%+.2f %%, within 5 %%: %s)" % (d["achieved_rate"],
      d["applied_rate"], d["error_pct"], d["within_5pct"]) if "achieved_rate" in d
      else "not measured: %s" % d.get("error"))' "$j")"
stop_pid "$RETRYD_PID"
rm -rf "$pdir"

# ---- (D) lateness -------------------------------------------------------------------------------
DUE_FROM_US="$(jget "$PRELOAD_JSON" due_from_unix_us)"
now_us="$(python3 -c 'import time; print(int(time.time()*1e6))')"
wait_s="$(python3 -c 'import sys; print(max(0.0, (int(sys.argv[1]) - int(sys.argv[2])) / 1e6 - 2))' "$DUE_FROM_US" "$now_us")"
log "scale round: waiting ${wait_s}s for the first envelopes to fall due"
sleep "$wait_s"
now_us="$(python3 -c 'import time; print(int(time.time()*1e6))')"
drain_for="$(python3 -c 'import sys; print(max(5, int((int(sys.argv[1]) - int(sys.argv[2])) / 1e6) + int(sys.argv[3])))' "$DUE_FROM_US" "$now_us" "$DRAIN_SECONDS")"
log "  draining for ${drain_for}s with $WORKERS workers"
DRAIN_JSON="$("$LOADGEN" drain-lateness --target "127.0.0.1:$SCALE_PORT" --service bench \
  --workers "$WORKERS" --batch "$DRAIN_BATCH" --duration "${drain_for}s" --expect "$MAIN_COUNT" \
  --settle 1s)"
record lateness 0 "$DRAIN_JSON"
log "  lateness: p50 $(jget "$DRAIN_JSON" p50_ms) ms, p99 $(jget "$DRAIN_JSON" p99_ms) ms over $(jget "$DRAIN_JSON" count) envelopes (backlog $(jget "$DRAIN_JSON" backlog))"
stop_pid "$SCALE_PID"

SUITE_SECONDS="$(python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))' "$SUITE_START" "$EPOCHREALTIME")"
record suite 0 "{\"elapsed_s\": $SUITE_SECONDS, \"loadavg_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
mkdir -p "$(dirname "$OUT")"
python3 "$ROOT/bench/summarize.py" "$RECORDS" "$OUT"
log "wrote $OUT (suite took ${SUITE_SECONDS}s)"

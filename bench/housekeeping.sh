#!/usr/bin/env bash
# bench/housekeeping.sh: does forgetting succeeded envelopes keep up with the success rate
# (issue #16)? Starts retryd on a fresh data dir with a short dedupe window (WINDOW seconds) and
# runs sustained retries through it for DURATION seconds: `retryd_loadgen cycle --refill`, where
# each of CONCURRENCY slots loops ReportFailure (a new envelope, due 1 ms later) + Lease +
# ReportSuccess, so envelopes succeed at the highest rate the server takes, for as long as the
# run lasts. Every SAMPLE seconds it prints one JSON line: the database file and its WAL in bytes,
# the SUCCEEDED rows, all rows, and the file's free pages. At the end one line with the load
# generator's figures and one summary line (sizes at a quarter, half and the end of the run, the
# growth over the second half, the SUCCEEDED rows against rate x window).
#
# With BASE_BIN set (another build, e.g. of main before the change), the same run follows against
# it on a fresh data dir, labelled "base"; ROUNDS alternates the two that many times (labels
# new1, base1, new2, ...). Loopback only; stops what it started.
#
#   bash bench/housekeeping.sh                         WINDOW=5 DURATION=180 SAMPLE=5 ROUNDS=1
#   BASE_BIN=/tmp/retryd-base/build/server/retryd bash bench/housekeeping.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RETRYD="${RETRYD_BIN:-$BUILD_DIR/server/retryd}"
BASE="${BASE_BIN:-}"
LOADGEN="${LOADGEN_BIN:-$BUILD_DIR/bench/retryd_loadgen}"
WINDOW="${WINDOW:-5}"
DURATION="${DURATION:-180}"
SAMPLE="${SAMPLE:-5}"
ROUNDS="${ROUNDS:-1}"
CONCURRENCY="${CONCURRENCY:-64}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"
for b in "$RETRYD" "$LOADGEN" ${BASE:+"$BASE"}; do
  [ -x "$b" ] || { echo "missing $b (cmake --build build --target retryd retryd_loadgen)" >&2; exit 1; }
done

TMP="$(mktemp -d /tmp/retryd-housekeeping.XXXXXX)"
PID=""
LOADGEN_PID=""
cleanup() {
  for p in $LOADGEN_PID $PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# The `cycle` service's retries are due 1 ms after a failure (as in bench/run.sh); no budget.
cat >"$TMP/retryd.json" <<JSON
{"metricsAddr": "off",
 "limits": {"dedupeWindow": "${WINDOW}s"},
 "policies": [{"name": "default", "budget": {"enabled": false}},
              {"name": "cycle", "maxAttempts": 10, "budget": {"enabled": false},
               "backoff": {"initial": "0.001s", "multiplier": 1, "max": "0.001s",
                           "jitter": "NONE"}}]}
JSON

# run LABEL BINARY: one measured run; prints the sample lines, the load line and the summary.
run() {
  local label="$1" bin="$2" dir="$TMP/$1"
  mkdir -p "$dir"
  cp "$bin" "$dir/retryd"  # A rebuild during the run cannot change it.
  "$dir/retryd" --config "$TMP/retryd.json" --data-dir "$dir/data" --grpc-addr 127.0.0.1:0 \
    --metrics-addr off 2>"$dir/retryd.log" &
  PID=$!
  for _ in $(seq 100); do grep -q server_started "$dir/retryd.log" && break; sleep 0.1; done
  local port
  port="$(grep -o '"grpc_port":[0-9]*' "$dir/retryd.log" | head -1 | cut -d: -f2)"
  [ -n "$port" ] || { echo "retryd did not start:" >&2; cat "$dir/retryd.log" >&2; exit 1; }

  echo "[$label] $DURATION s of Lease + ReportSuccess (with refills), dedupe window $WINDOW s" >&2
  "$LOADGEN" cycle --target "127.0.0.1:$port" --service cycle --refill \
    --concurrency "$CONCURRENCY" --payload-bytes "$PAYLOAD_BYTES" --preload-time 2s \
    --warmup 1s --duration "${DURATION}s" >"$dir/load.json" &
  LOADGEN_PID=$!
  python3 - "$label" "$dir/data/retryd.db" "$LOADGEN_PID" "$SAMPLE" "$WINDOW" <<'PY' |
import json, os, sqlite3, sys, time
label, db, pid, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
window = float(sys.argv[5])
start = time.time()
def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
def alive():
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
while True:
    time.sleep(every)
    running = alive()
    t = time.time() - start
    # A short read transaction per sample (it holds the WAL back from restarting meanwhile).
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    succeeded = con.execute(
        "SELECT count(*) FROM envelopes INDEXED BY envelopes_by_state WHERE state = 4").fetchone()[0]
    # Succeeded rows whose window has passed (by this machine's clock, which the server uses
    # too): what housekeeping has yet to delete.
    cutoff_us = int((time.time() - window) * 1e6)
    expired = con.execute(
        "SELECT count(*) FROM envelopes INDEXED BY envelopes_by_state WHERE state = 4 "
        "AND sort_at < ?", (cutoff_us,)).fetchone()[0]
    rows = con.execute("SELECT count(*) FROM envelopes").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    free = con.execute("PRAGMA freelist_count").fetchone()[0]
    con.close()
    print(json.dumps({"binary": label, "t_s": round(t, 1), "loaded": running,
                      "db_bytes": size(db),
                      "wal_bytes": size(db + "-wal"), "succeeded_rows": succeeded,
                      "expired_rows": expired, "rows": rows,
                      "pages": pages, "free_pages": free}), flush=True)
    if not running:
        break
PY
    tee "$dir/samples.jsonl"
  wait "$LOADGEN_PID" || true
  LOADGEN_PID=""
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
  python3 - "$label" "$dir/load.json" "$dir/samples.jsonl" "$WINDOW" "$DURATION" <<'PY'
import json, statistics, sys
label, load_path, samples_path, window, duration = sys.argv[1:6]
window, duration = float(window), float(duration)
load = json.load(open(load_path))
# Only the samples taken while the load ran (the last one may come after it ended).
samples = [s for s in (json.loads(l) for l in open(samples_path) if l.strip()) if s["loaded"]]
rate = load["throughput_cycles_s"]
print(json.dumps({"binary": label, "load": {k: load.get(k) for k in (
    "cycles", "throughput_cycles_s", "refills", "errors", "duration_s")},
    "cycle_p50_ms": load["cycle_latency_ms"]["p50"], "cycle_p99_ms": load["cycle_latency_ms"]["p99"]}))
def at(frac):  # the sample nearest to a fraction of the run
    t = frac * samples[-1]["t_s"]
    return min(samples, key=lambda s: abs(s["t_s"] - t))
half = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] / 2]
q, h, end = at(0.25), at(0.5), samples[-1]
print(json.dumps({
    "binary": label, "summary": True, "window_s": window, "duration_s": duration,
    "windows_covered": round(duration / window, 1),
    "successes": load["cycles"], "successes_per_s": round(rate),
    "expected_succeeded_rows_in_window": round(rate * window),
    "succeeded_rows_median_second_half": statistics.median(s["succeeded_rows"] for s in half),
    "succeeded_rows_end": end["succeeded_rows"],
    "expired_rows_median": statistics.median(s["expired_rows"] for s in samples),
    "expired_rows_max": max(s["expired_rows"] for s in samples),
    "pages_max_second_half_vs_first_half": round(
        max(s["pages"] for s in half) / max(s["pages"] for s in samples if s not in half), 3),
    "db_bytes_quarter": q["db_bytes"], "db_bytes_half": h["db_bytes"], "db_bytes_end": end["db_bytes"],
    "db_growth_second_half_bytes": end["db_bytes"] - h["db_bytes"],
    "wal_bytes_max": max(s["wal_bytes"] for s in samples),
    "free_pages_end": end["free_pages"]}))
PY
}

for ((r = 1; r <= ROUNDS; r++)); do
  run "new$r" "$RETRYD"
  if [ -n "$BASE" ]; then run "base$r" "$BASE"; fi
done

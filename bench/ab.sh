#!/usr/bin/env bash
# bench/ab.sh: two retryd builds under the same submit load, in alternating pairs, for a
# before/after figure on a noisy machine (quote the paired ratios and medians, never one run).
#
#   RETRYD_A=/path/to/baseline/retryd RETRYD_B=build/server/retryd bash bench/ab.sh
#
# Each pair starts A and B fresh (own data dir, metrics off), in an order that alternates per
# pair, and runs `retryd_loadgen submit` (ReportFailure of distinct 1 KB envelopes, CONCURRENCY in
# flight) against each for DURATION seconds after WARMUP. One JSON line per run (throughput,
# p50/p99, the server's CPU per request), then the medians, B/A of the medians, and the median of
# the per-pair B/A ratios (the two runs of a pair ran back to back, so the pair's ratio is the
# figure least exposed to the machine's drift). Everything listens on 127.0.0.1 only.
# Knobs: PAIRS=5 DURATION=8 WARMUP=1 CONCURRENCY=64 PAYLOAD_BYTES=1024 LOADGEN_BIN BUILD_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
PAIRS="${PAIRS:-5}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-1}"
CONCURRENCY="${CONCURRENCY:-64}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"
LOADGEN="${LOADGEN_BIN:-$BUILD_DIR/bench/retryd_loadgen}"
A="${RETRYD_A:?RETRYD_A: the baseline retryd binary}"
B="${RETRYD_B:-$BUILD_DIR/server/retryd}"
for b in "$A" "$B" "$LOADGEN"; do [ -x "$b" ] || { echo "missing $b (build first)" >&2; exit 1; }; done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/retryd-ab.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

run_one() {  # run_one LABEL BINARY PAIR
  local label="$1" bin="$2" pair="$3" dir="$TMP/$1-$3" t0 ready port j cpu_ticks
  mkdir -p "$dir"
  t0=$EPOCHREALTIME
  "$bin" --data-dir "$dir/data" --grpc-addr 127.0.0.1:0 --metrics-addr off \
    --shutdown-grace 2s 2>"$dir/retryd.log" &
  local pid=$!
  PIDS+=("$pid")
  ready="$("$LOADGEN" ready --log "$dir/retryd.log" --t0 "$t0" --pid "$pid" --timeout 30s)"
  port="$(jget "$ready" port)"
  j="$("$LOADGEN" submit --target "127.0.0.1:$port" --concurrency "$CONCURRENCY" \
        --duration "${DURATION}s" --warmup "${WARMUP}s" --payload-bytes "$PAYLOAD_BYTES" --service bench)"
  cpu_ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c 'import json,os,sys; d=json.loads(sys.argv[3]); cpu=float(sys.argv[4])/os.sysconf("SC_CLK_TCK"); print(json.dumps({"build": sys.argv[1], "pair": int(sys.argv[2]), "throughput_ops_s": d["throughput_ops_s"], "p50_ms": d["p50_ms"], "p99_ms": d["p99_ms"], "cpu_us_per_op": round(cpu * 1e6 / max(1, d["total_completed"]), 2), "errors": d.get("errors", 0)}))' \
    "$label" "$pair" "$j" "$cpu_ticks" | tee -a "$RESULTS"
  rm -rf "$dir"
}

for ((p = 1; p <= PAIRS; p++)); do
  if ((p % 2)); then run_one A "$A" "$p"; run_one B "$B" "$p"; else run_one B "$B" "$p"; run_one A "$A" "$p"; fi
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {"pairs": len(rows) // 2}
for key in ("throughput_ops_s", "p50_ms", "p99_ms", "cpu_us_per_op"):
    a = statistics.median(r[key] for r in rows if r["build"] == "A")
    b = statistics.median(r[key] for r in rows if r["build"] == "B")
    out[key] = {"a_median": a, "b_median": b, "b_over_a": round(b / a, 4) if a else None}
ratios = []
for p in sorted({r["pair"] for r in rows}):
    by = {r["build"]: r for r in rows if r["pair"] == p}
    if "A" in by and "B" in by and by["A"]["throughput_ops_s"]:
        ratios.append(by["B"]["throughput_ops_s"] / by["A"]["throughput_ops_s"])
out["throughput_paired_b_over_a"] = {"per_pair": [round(x, 4) for x in ratios],
                                     "median": round(statistics.median(ratios), 4)}
print(json.dumps(out))
PY

#!/usr/bin/env bash
# bench/metrics_overhead.sh: what the Prometheus metrics cost on the submit path.
#
# RUNS rounds; each round starts a fresh retryd twice — metrics off (`--metrics-addr off`: no
# listener, no engine observer, no RPC interceptor) and on (`127.0.0.1:0`, scraped every
# SCRAPE_INTERVAL seconds with curl for the whole run; 1 s is harsher than any real scrape
# interval; 0 = never scraped) — in an order that alternates
# per round, and runs the same closed-loop ReportFailure load (retryd_loadgen submit) against each.
# Prints one JSON line per measurement, then the medians, the on/off ratio of the medians, and the
# median of the per-round on/off throughput ratios. Also the server's CPU time per request
# (utime+stime of retryd over the requests it completed, start-up included): on a machine shared
# with other work, throughput swings by +-15 % between runs, CPU per request much less.
#
#   bash bench/metrics_overhead.sh            # RUNS=3 DURATION=8 CONCURRENCY=64 PAYLOAD_BYTES=1024
# Knobs: RUNS DURATION WARMUP CONCURRENCY PAYLOAD_BYTES SCRAPE_INTERVAL=1 BUILD_DIR RETRYD_BIN
# LOADGEN_BIN
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-1}"
CONCURRENCY="${CONCURRENCY:-64}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"
SCRAPE_INTERVAL="${SCRAPE_INTERVAL:-1}"
RETRYD="${RETRYD_BIN:-$BUILD_DIR/server/retryd}"
LOADGEN="${LOADGEN_BIN:-$BUILD_DIR/bench/retryd_loadgen}"
for b in "$RETRYD" "$LOADGEN"; do [ -x "$b" ] || { echo "missing $b (build first)" >&2; exit 1; }; done
type -P curl >/dev/null || { echo "curl missing: bash scripts/install-deps.sh test" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/retryd-metrics-bench.XXXXXX")"
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

run_one() {  # run_one MODE ROUND
  local mode="$1" round="$2" dir="$TMP/$1-$2" addr t0 ready port mport scraper="" j
  mkdir -p "$dir"
  if [ "$mode" = on ]; then addr=127.0.0.1:0; else addr=off; fi
  t0=$EPOCHREALTIME
  "$RETRYD" --data-dir "$dir/data" --grpc-addr 127.0.0.1:0 --metrics-addr "$addr" \
    --shutdown-grace 2s 2>"$dir/retryd.log" &
  local pid=$!
  PIDS+=("$pid")
  ready="$("$LOADGEN" ready --log "$dir/retryd.log" --t0 "$t0" --pid "$pid" --timeout 30s)"
  port="$(jget "$ready" port)"
  if [ "$mode" = on ] && [ "$SCRAPE_INTERVAL" != 0 ]; then
    mport="$(grep -o '"metrics_port":[0-9]*' "$dir/retryd.log" | head -1 | cut -d: -f2)"
    (while kill -0 "$pid" 2>/dev/null; do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; sleep "$SCRAPE_INTERVAL"; done) &
    scraper=$!
    PIDS+=("$scraper")
  fi
  j="$("$LOADGEN" submit --target "127.0.0.1:$port" --concurrency "$CONCURRENCY" \
        --duration "${DURATION}s" --warmup "${WARMUP}s" --payload-bytes "$PAYLOAD_BYTES" --service bench)"
  local cpu_ticks
  cpu_ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi
  python3 -c 'import json,os,sys; d=json.loads(sys.argv[3]); cpu=float(sys.argv[4])/os.sysconf("SC_CLK_TCK"); print(json.dumps({"metrics": sys.argv[1], "round": int(sys.argv[2]), "throughput_ops_s": d["throughput_ops_s"], "p50_ms": d["p50_ms"], "p99_ms": d["p99_ms"], "cpu_us_per_op": round(cpu * 1e6 / max(1, d["total_completed"]), 2), "errors": d.get("errors", 0)}))' \
    "$mode" "$round" "$j" "$cpu_ticks" | tee -a "$RESULTS"
  rm -rf "$dir"
}

for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then order=(off on); else order=(on off); fi
  for m in "${order[@]}"; do run_one "$m" "$r"; done
done

python3 - "$RESULTS" "$SCRAPE_INTERVAL" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, key):
    return statistics.median(r[key] for r in rows if r["metrics"] == mode)
out = {"runs": len(rows) // 2, "scrape_interval_s": float(sys.argv[2])}
for key in ("throughput_ops_s", "p50_ms", "p99_ms", "cpu_us_per_op"):
    off, on = med("off", key), med("on", key)
    out[key] = {"off_median": off, "on_median": on, "on_over_off": round(on / off, 4) if off else None}
# The two runs of a round ran back to back, so their ratio is less exposed to the machine's load
# drifting between rounds than the ratio of the medians.
pairs = []
for rnd in sorted({r["round"] for r in rows}):
    by = {r["metrics"]: r for r in rows if r["round"] == rnd}
    if "on" in by and "off" in by and by["off"]["throughput_ops_s"]:
        pairs.append(by["on"]["throughput_ops_s"] / by["off"]["throughput_ops_s"])
out["throughput_paired_on_over_off"] = {"per_round": [round(x, 4) for x in pairs],
                                        "median": round(statistics.median(pairs), 4)}
print(json.dumps(out))
PY

#!/usr/bin/env bash
# bench/submit_at_scale.sh: the submit figure against a server that already holds COUNT envelopes
# (the suite's submit rounds start from an empty database). Starts retryd on a fresh data dir,
# preloads COUNT envelopes due in two hours, then runs WINDOWS submit windows of DURATION seconds
# (64 in flight, 1 KB) and prints one JSON line per window. Loopback only; stops what it started.
#
#   bash bench/submit_at_scale.sh                  COUNT=1000000 WINDOWS=2 DURATION=10
#   RETRYD_BIN=/path/to/other/retryd bash bench/submit_at_scale.sh    (A/B against another build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RETRYD="${RETRYD_BIN:-$BUILD_DIR/server/retryd}"
LOADGEN="${LOADGEN_BIN:-$BUILD_DIR/bench/retryd_loadgen}"
COUNT="${COUNT:-1000000}"
WINDOWS="${WINDOWS:-2}"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-64}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-1024}"

TMP="$(mktemp -d /tmp/retryd-scale.XXXXXX)"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/retryd.json" <<'JSON'
{"metricsAddr": "off",
 "policies": [{"name": "default", "maxRetryAfter": "86400s", "budget": {"enabled": false}}]}
JSON
"$RETRYD" --config "$TMP/retryd.json" --data-dir "$TMP/data" --grpc-addr 127.0.0.1:0 \
  --metrics-addr off 2>"$TMP/retryd.log" &
PID=$!
for _ in $(seq 100); do grep -q server_started "$TMP/retryd.log" && break; sleep 0.1; done
PORT="$(grep -o '"grpc_port":[0-9]*' "$TMP/retryd.log" | head -1 | cut -d: -f2)"
[ -n "$PORT" ] || { echo "retryd did not start:" >&2; cat "$TMP/retryd.log" >&2; exit 1; }

echo "preloading $COUNT envelopes" >&2
"$LOADGEN" preload --target "127.0.0.1:$PORT" --concurrency "$CONCURRENCY" --count "$COUNT" \
  --offset 7200s --spread 600s --payload-bytes "$PAYLOAD_BYTES" --service bench >/dev/null
for ((w = 1; w <= WINDOWS; w++)); do
  "$LOADGEN" submit --target "127.0.0.1:$PORT" --concurrency "$CONCURRENCY" \
    --duration "${DURATION}s" --payload-bytes "$PAYLOAD_BYTES" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(json.dumps({
        "count": int(sys.argv[1]), "window": int(sys.argv[2]),
        "ops_per_s": round(d["throughput_ops_s"]), "p50_ms": d["p50_ms"], "p99_ms": d["p99_ms"],
        "p999_ms": d["latency_ms"]["p999"]}))' "$COUNT" "$w"
done

#!/usr/bin/env bash
# bench/dlq.sh: dead-letter operations at scale (issue #5). Preloads COUNT dead letters into a
# fresh data dir (directly through the store code), starts retryd on it (127.0.0.1, free port),
# and measures GetDeadLetterStats, ListFailureGroups and page-by-page ListDeadLetters of
# LIST_COUNT rows, RUNS times each (medians). Result: one JSON object in OUT and on stdout.
#
#   bash bench/dlq.sh                        1 000 000 dead letters, 100 000 listed, 3 runs
#   COUNT=100000 bash bench/dlq.sh           quicker
# Knobs: COUNT=1000000 LIST_COUNT=100000 RUNS=3 BUILD_DIR=build OUT=bench/results/dlq.json
#        SKIP_BUILD=0 KEEP_TMP=0
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
COUNT="${COUNT:-1000000}"
LIST_COUNT="${LIST_COUNT:-100000}"
RUNS="${RUNS:-3}"
OUT="${OUT:-$ROOT/bench/results/dlq.json}"
log() { printf '[dlq-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake --build "$BUILD_DIR" --target retryd retryd_dlqbench -j2 >&2
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/retryd-dlqbench.XXXXXX")"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

log "preloading $COUNT dead letters"
PRELOAD="$("$BUILD_DIR/bench/retryd_dlqbench" preload --data-dir "$TMP/data" --count "$COUNT")"
log "preload: $PRELOAD"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
echo '{"metricsAddr": "off"}' >"$TMP/retryd.json"
"$BUILD_DIR/server/retryd" --config "$TMP/retryd.json" --data-dir "$TMP/data" \
  --grpc-addr "127.0.0.1:$PORT" --log-level warn 2>"$TMP/retryd.log" &
PID=$!
for _ in $(seq 1 600); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
log "measuring (runs=$RUNS, list=$LIST_COUNT)"
RESULT="$("$BUILD_DIR/bench/retryd_dlqbench" measure --addr "127.0.0.1:$PORT" --runs "$RUNS" \
  --list-count "$LIST_COUNT")"
mkdir -p "$(dirname "$OUT")"
python3 - "$PRELOAD" "$RESULT" "$OUT" <<'PY'
import json, sys
out = {"preload": json.loads(sys.argv[1]), "measure": json.loads(sys.argv[2])}
open(sys.argv[3], "w").write(json.dumps(out, indent=2) + "\n")
print(json.dumps(out))
PY

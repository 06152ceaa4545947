#!/usr/bin/env bash
# The Kafka integration tests: retryd.kafka (Python, confluent-kafka) and client/go/kafka (Go,
# franz-go) against a real Apache Kafka broker in KRaft mode and the real retryd binary. Each
# suite starts its own broker with scripts/kafka-broker.sh (jars from Maven Central, cached in
# $BUILD_DIR/kafka-<version>; free loopback ports; stopped by PID) and kills a consumer with -9
# mid-stream.
#
#   bash scripts/test-kafka.sh      # expects the server built (bash scripts/build.sh)
#
# Installs what it needs: `scripts/install-deps.sh kafka` (Java 17 and Maven for the broker), the
# virtualenv of scripts/test-clients.sh (build/pyenv) with retryd[kafka,test].
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
export BUILD_DIR
export RETRYD_BIN="${RETRYD_BIN:-$repo/$BUILD_DIR/server/retryd}"
if [[ ! -x "$RETRYD_BIN" ]]; then
  echo "test-kafka: retryd binary not found at $RETRYD_BIN (build it first: bash scripts/build.sh)" >&2
  exit 1
fi
bash scripts/install-deps.sh kafka
if ! type -P go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
for tool in java mvn go python3; do
  type -P "$tool" >/dev/null || { echo "test-kafka: $tool is missing after install-deps.sh kafka" >&2; exit 1; }
done
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export RETRYD_KAFKA_TESTS=1

t=$SECONDS
bash scripts/kafka-broker.sh fetch
echo "== test-kafka: broker jars ready in $((SECONDS - t)) s"

# --- Python -------------------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
venv="$repo/$BUILD_DIR/pyenv"
if [[ ! -x "$venv/bin/python" ]]; then
  if ! "$PYTHON" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
  fi
fi
vpy="$venv/bin/python"
"$vpy" -m pip install -q --upgrade pip
"$vpy" -m pip install -q --force-reinstall --no-deps "$repo/client/python"
"$vpy" -m pip install -q "$repo/client/python[test,kafka]"

echo "== pytest (client/python: Kafka)"
(cd "$repo/client/python" && "$vpy" -m pytest -q -s -p no:cacheprovider tests/test_kafka_e2e.py tests/test_kafka_records.py tests/test_offsets.py)

# --- Go -----------------------------------------------------------------------------------------
echo "== go vet + go test (client/go/kafka)"
(cd "$repo/client/go/kafka" && go vet ./... && go test -count=1 -v -timeout 15m ./...)
if [[ -f "$repo/examples/go-kafka/go.mod" ]]; then
  echo "== go vet (examples/go-kafka)"
  (cd "$repo/examples/go-kafka" && go vet ./...)
fi
echo "test-kafka: all Kafka tests passed"

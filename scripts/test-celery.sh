#!/usr/bin/env bash
# The integrations' end-to-end tests (issue 20, items 1 and 4), against the real retryd binary:
#
#   * Celery on SQS: ElasticMQ (fetched from Maven Central by scripts/fetch-elasticmq.sh, run
#     with Java 17 on a free loopback port), a real Celery worker and the retryd bridge, through
#     a downstream outage (client/python/tests/test_celery_sqs.py; its counts are printed);
#   * the fleet-wide breakers: pybreaker (client/python/tests/test_pybreaker_storage.py) and
#     gobreaker (client/go/fleetbreaker, a Go module of its own), two processes sharing one
#     breaker through retryd.
#
#   bash scripts/test-celery.sh            # expects the server built (bash scripts/build.sh)
#
# Installs what it needs: `scripts/install-deps.sh celery` (the clients' packages, Java 17,
# Maven), then the virtualenv build/pyenv (scripts/client-pyenv.sh, shared with test-clients.sh)
# with the retryd package and its extras, celery[sqs] (boto3, pycurl) and pybreaker.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$repo/$BUILD_DIR" ;; esac
export RETRYD_BIN="${RETRYD_BIN:-$build/server/retryd}"
if [[ ! -x "$RETRYD_BIN" ]]; then
  echo "test-celery: retryd binary not found at $RETRYD_BIN (build it first: bash scripts/build.sh)" >&2
  exit 1
fi

bash scripts/install-deps.sh celery
if ! type -P go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
for tool in go java mvn; do
  type -P "$tool" >/dev/null || { echo "test-celery: $tool is missing after install-deps.sh celery" >&2; exit 1; }
done

# --- Python: the virtualenv of scripts/test-clients.sh, plus the integrations' packages --------
vpy="$(BUILD_DIR="$build" bash scripts/client-pyenv.sh "$repo/client/python[test,celery,pybreaker]" "celery[sqs]>=5.3")"

echo "== ElasticMQ (Maven Central)"
t=$(date +%s)
RETRYD_ELASTICMQ_LIB="$(BUILD_DIR="$build" bash scripts/fetch-elasticmq.sh)"
export RETRYD_ELASTICMQ_LIB
echo "elasticmq: jars in $RETRYD_ELASTICMQ_LIB ($(($(date +%s) - t)) s to fetch or find)"

echo "== pytest: Celery on SQS, pybreaker fleet breaker"
report="$build/celery-report.json"
rm -f "$report"
(cd "$repo/client/python" && RETRYD_REQUIRE_CELERY=1 RETRYD_CELERY_REPORT="$report" \
  "$vpy" -m pytest -q -p no:cacheprovider tests/test_celery_unit.py tests/test_celery_sqs.py \
    tests/test_pybreaker_storage.py)
echo "celery incident counts: $(tr -d '\n' < "$report")"
echo "== examples compile (examples/celery, examples/pybreaker_fleet.py)"
"$vpy" -m py_compile "$repo/examples/celery/tasks.py" "$repo/examples/celery/send.py" \
  "$repo/examples/pybreaker_fleet.py"

# --- Go: the gobreaker wrapper, a module of its own ------------------------------------------
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
echo "== go vet + go test (client/go/fleetbreaker)"
(cd "$repo/client/go/fleetbreaker" && go vet ./... && go test -count=1 ./...)
if [[ -f "$repo/examples/gobreaker/go.mod" ]]; then
  echo "== go vet (examples/gobreaker)"
  (cd "$repo/examples/gobreaker" && go vet ./...)
fi
echo "test-celery: all integration tests passed"

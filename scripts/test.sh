#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds everything, and runs every test suite: the C++ unit
# and integration tests (ctest; integration tests start the real retryd on free loopback ports),
# then the Python (pytest) and Go (go test) client libraries against the same binary, then the
# Kafka integrations against a real broker, the Celery and fleet-breaker integrations (ElasticMQ
# from Maven Central), then the packaging checks and the image. Each stage prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
stage() {  # stage NAME COMMAND...: runs it and says how long it took
  local name="$1" ts rc=0
  shift
  ts=$(date +%s)
  "$@" || rc=$?
  echo "== test.sh: $name $([ "$rc" = 0 ] && echo took || echo FAILED after) $(($(date +%s) - ts)) s (total $(($(date +%s) - t0)) s)"
  return "$rc"
}
stage "install-deps" bash scripts/install-deps.sh test
stage "build" bash scripts/build.sh -DRETRYD_BUILD_TESTS=ON
stage "ctest" ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 --timeout 300
# The Python and Go client libraries against the real retryd binary just built.
stage "client tests" bash scripts/test-clients.sh
# Kafka: the Python and Go consumer helpers against a real Kafka broker (KRaft, jars from Maven
# Central run on Java 17) and the real retryd, with a consumer killed with -9 mid-stream.
stage "kafka tests" bash scripts/test-kafka.sh
# Celery on SQS (ElasticMQ from Maven Central, a real worker, the retryd bridge) through a
# downstream outage, and the fleet-wide pybreaker/gobreaker breakers shared through retryd.
stage "celery tests" bash scripts/test-celery.sh
# The web console in a real browser: Debian's headless Chromium driven by Selenium against the real
# retryd with seeded data; screenshots of every page in build/artifacts/console/.
stage "console tests" bash scripts/test-console.sh
# Packaging: every program the scripts call is installed by install-deps.sh, the Dockerfile
# matches CI's build, the runtime stage installs every library the binaries load, the Helm chart
# lints, renders and asserts (helm from the Go module proxy), and the image is built for real
# with buildah and smoke-tested (RETRYD_SKIP_IMAGE=1 skips that locally; .ci/run always runs it).
stage "packaging" bash scripts/test-packaging.sh

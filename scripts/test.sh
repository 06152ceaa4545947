#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds everything, and runs every test suite: the C++ unit
# and integration tests (ctest; integration tests start the real retryd on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test
bash scripts/build.sh -DRETRYD_BUILD_TESTS=ON
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 --timeout 300

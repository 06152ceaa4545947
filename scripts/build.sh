#!/usr/bin/env bash
# Configures and builds retryd, retryctl and the tests into ./build (or $BUILD_DIR). The arguments
# are CMake options. BUILD_TARGETS="a b" builds only those targets (and what they need) with the
# same options: the Dockerfile's builder builds `retryd retryctl retryd_unit_tests`, not the
# integration tests and benchmarks that CI runs on the host.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@"
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}"

#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds everything, and runs every test suite: the C++ unit
# and integration tests (ctest; integration tests start the real retryd on free loopback ports),
# then the Python (pytest) and Go (go test) client libraries against the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test
bash scripts/build.sh -DRETRYD_BUILD_TESTS=ON
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 --timeout 300
# The Python and Go client libraries against the real retryd binary just built.
bash scripts/test-clients.sh
# Packaging: the Dockerfile matches CI's build, the runtime stage installs every library the
# binaries load, the Helm chart lints, renders and asserts (helm from the Go module proxy), and
# the image is built for real with buildah and smoke-tested (RETRYD_SKIP_IMAGE=1 skips that
# locally; .ci/run always runs it).
bash scripts/test-packaging.sh

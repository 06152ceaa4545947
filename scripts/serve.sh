#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds retryd, and runs it in the foreground on its
# embedded SQLite default (gRPC 127.0.0.1:50051, Prometheus metrics on 127.0.0.1:9464/metrics,
# data in ./retryd-data). Extra arguments go to
# retryd, e.g. `scripts/serve.sh --config retryd.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh build
bash scripts/build.sh -DRETRYD_BUILD_TESTS=OFF >/dev/null
exec ./build/server/retryd --log-format text "$@"

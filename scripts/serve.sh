#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds retryd, and runs it in the foreground on its
# embedded SQLite default (gRPC 127.0.0.1:50051, Prometheus metrics on 127.0.0.1:9464/metrics,
# the operator web console on http://127.0.0.1:8081/ (its URL is in the first log lines), data in
# ./retryd-data). Extra arguments go to retryd, e.g. `scripts/serve.sh --config retryd.json`;
# `--console-addr off` (or another HOST:PORT) overrides the console's address.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh build
bash scripts/build.sh -DRETRYD_BUILD_TESTS=OFF >/dev/null
console=(--console-addr 127.0.0.1:8081)
for arg in "$@"; do
  case "$arg" in --console-addr|--console-addr=*) console=() ;; esac
done
exec ./build/server/retryd --log-format text "${console[@]}" "$@"

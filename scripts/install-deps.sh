#!/usr/bin/env bash
# Installs what retryd needs from Debian 12's packages. The single source of package names,
# shared by the README, CI (.ci/run) and the Dockerfile.
#
#   scripts/install-deps.sh build     compilers, headers and tools to build retryd and retryctl
#                                     and run the unit tests (the Dockerfile's builder stage)
#   scripts/install-deps.sh test      build + what the test suite runs (default): sqlite3, curl,
#                                     prometheus (the real-scrape test and promtool for the rules)
#   scripts/install-deps.sh runtime   only the shared libraries the binaries load
#   scripts/install-deps.sh bench     build + the Redis baseline of bench/run.sh (redis-server,
#                                     redis-benchmark), procps and python3
#   scripts/install-deps.sh list MODE  prints MODE's package names, one a line, installs nothing
#                                     (list-runtime = list runtime)
set -euo pipefail

mode="${1:-test}"

build_pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev prometheus-cpp-dev libsqlite3-dev libssl-dev
  libgtest-dev libgmock-dev googletest
  libcli11-dev nlohmann-json3-dev
)
test_pkgs=(
  sqlite3 procps python3 curl prometheus
)
bench_pkgs=(
  redis-server redis-tools procps python3
)
runtime_pkgs=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
  libsqlite3-0 libssl3 ca-certificates
)

if [ "$mode" = list ]; then
  mode="${2:-}"
  list=1
elif [ "$mode" = list-runtime ]; then
  mode=runtime
  list=1
else
  list=0
fi

case "$mode" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  bench) pkgs=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|bench|runtime | list MODE | list-runtime" >&2; exit 2 ;;
esac
if [ "$list" = 1 ]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages for '$mode' already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ "$mode" = runtime ]; then
  $SUDO rm -rf /var/lib/apt/lists/*
fi

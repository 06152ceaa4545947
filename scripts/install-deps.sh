#!/usr/bin/env bash
# Installs what retryd needs from Debian 12's packages. The single list of package names: every
# script, test and CI step that needs a Debian package installs it through this script (never
# with apt-get of its own), so a brand-new machine gets everything the README's commands use.
# tests/packaging/check_fresh_machine.py fails when a script calls a program that neither a new
# machine of this project's kind nor a mode below provides.
#
#   scripts/install-deps.sh build     compilers, headers and tools to build retryd and retryctl
#                                     and run the unit tests (the Dockerfile's builder stage)
#   scripts/install-deps.sh test      everything scripts/test.sh runs (default): build + clients
#                                     + packaging + image + kafka + celery, and sqlite3, procps
#                                     (integration tests)
#   scripts/install-deps.sh clients   the client tests (scripts/test-clients.sh): python3-venv and
#                                     pip for the virtualenv, protoc for the Go stubs check, and
#                                     Debian's golang-go when the machine has no Go of its own
#   scripts/install-deps.sh packaging the chart and rule checks (scripts/test-packaging.sh):
#                                     python3-yaml, binutils (readelf), openssl, prometheus
#                                     (promtool), git
#   scripts/install-deps.sh image     the daemonless image build (scripts/build-image.sh):
#                                     buildah, debootstrap, curl, python3
#   scripts/install-deps.sh kafka     the Kafka tests (scripts/test-kafka.sh): Java 17 and Maven for
#                                     the broker (scripts/kafka-broker.sh fetches its jars from
#                                     Maven Central), python3-venv and pip, Go as for clients
#   scripts/install-deps.sh runtime   only the shared libraries the binaries load
#   scripts/install-deps.sh postgres  the PostgreSQL store's tests (scripts/pg-cluster.sh): the
#                                     server (postgresql: initdb, pg_ctl, postgres under
#                                     /usr/lib/postgresql/VERSION/bin), psql, libpq-dev
#   scripts/install-deps.sh celery    the Celery and fleet-breaker tests (scripts/test-celery.sh):
#                                     the clients' packages, Java 17 and Maven to fetch and run
#                                     ElasticMQ (the SQS-compatible broker) from Maven Central
#   scripts/install-deps.sh console   the web console's browser tests (scripts/test-console.sh):
#                                     Debian's chromium and chromium-driver (Selenium drives them;
#                                     nothing downloads a browser), python3-venv and pip, openssl
#   scripts/install-deps.sh bench     build + the Redis baseline of bench/run.sh (redis-server,
#                                     redis-benchmark), procps and python3, and PostgreSQL with
#                                     pgbench and psql for bench/scale-out.sh and
#                                     bench/pgbench_envelopes.sh
#   scripts/install-deps.sh list MODE  prints MODE's package names, one a line, installs nothing
#                                     (list-runtime = list runtime)
set -euo pipefail

mode="${1:-test}"

build_pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev prometheus-cpp-dev libsqlite3-dev libssl-dev
  libgtest-dev libgmock-dev googletest
  libcli11-dev nlohmann-json3-dev libpq-dev
)
test_pkgs=(
  sqlite3 procps python3 curl
)
client_pkgs=(
  python3 python3-venv python3-pip protobuf-compiler
)
packaging_pkgs=(
  python3 python3-yaml binutils openssl prometheus git curl
)
image_pkgs=(
  buildah debootstrap curl python3
)
kafka_pkgs=(
  openjdk-17-jre-headless maven python3 python3-venv python3-pip
)
celery_pkgs=(
  openjdk-17-jre-headless maven
)
console_pkgs=(
  chromium chromium-driver python3 python3-venv python3-pip openssl fonts-dejavu-core
  xdg-utils  # chromium-common (chromium's) depends on it; named so check_fresh_machine.py knows where `open` comes from
)
postgres_pkgs=(
  postgresql postgresql-client libpq-dev python3
)
bench_pkgs=(
  redis-server redis-tools procps python3 postgresql postgresql-client
)
runtime_pkgs=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
  libsqlite3-0 libssl3 libpq5 ca-certificates
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
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${client_pkgs[@]}" "${packaging_pkgs[@]}"
              "${image_pkgs[@]}" "${kafka_pkgs[@]}" "${celery_pkgs[@]}"
              "${console_pkgs[@]}" "${postgres_pkgs[@]}") ;;
  clients) pkgs=("${client_pkgs[@]}") ;;
  packaging) pkgs=("${packaging_pkgs[@]}") ;;
  image) pkgs=("${image_pkgs[@]}") ;;
  kafka) pkgs=("${kafka_pkgs[@]}") ;;
  celery) pkgs=("${client_pkgs[@]}" "${celery_pkgs[@]}") ;;
  console) pkgs=("${console_pkgs[@]}") ;;
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  postgres) pkgs=("${postgres_pkgs[@]}") ;;
  bench) pkgs=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|clients|packaging|image|kafka|celery|console|bench|runtime|postgres | list MODE | list-runtime" >&2
     exit 2 ;;
esac
# The client tests need a Go toolchain. A machine of this project's kind has one in
# /usr/local/go (the Go module proxy brings the version go.mod asks for); elsewhere Debian's
# golang-go is the fallback.
if [[ "$mode" = test || "$mode" = clients || "$mode" = kafka || "$mode" = celery ]] && ! type -P go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  pkgs+=(golang-go)
fi
# Each name once, in first-seen order.
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | awk '!seen[$0]++')
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

#!/usr/bin/env bash
# Fetches ElasticMQ (an SQS-compatible server, org.elasticmq:elasticmq-server_2.13 from Maven
# Central, version in scripts/elasticmq/pom.xml) and its runtime jars into
# $BUILD_DIR/elasticmq/lib (default build/), once: a second run with the jars present does
# nothing. Prints the lib directory. Needs mvn and java (scripts/install-deps.sh celery).
#
#   bash scripts/fetch-elasticmq.sh        # → build/elasticmq/lib
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) out="$BUILD_DIR/elasticmq" ;; *) out="$repo/$BUILD_DIR/elasticmq" ;; esac
pom="$repo/scripts/elasticmq/pom.xml"
stamp="$out/lib/.fetched-$(sha256sum "$pom" | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  type -P mvn >/dev/null || { echo "fetch-elasticmq: mvn missing (bash scripts/install-deps.sh celery)" >&2; exit 1; }
  rm -rf "$out/lib"
  mkdir -p "$out"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$out/lib" -Dmaven.repo.local="$out/m2" >&2
  touch "$stamp"
fi
echo "$out/lib"

#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft mode, broker and controller in one JVM) on loopback, for
# tests. Debian 12 has no Kafka package: the broker's jars come from Maven Central
# (org.apache.kafka:kafka_2.13 and kafka-tools with their dependencies, fetched once with
# `mvn dependency:copy-dependencies` into $BUILD_DIR/kafka-VERSION/lib) and run on the machine's Java 17
# (scripts/install-deps.sh kafka installs openjdk-17-jre-headless and maven).
#
#   scripts/kafka-broker.sh fetch          download the jars (no-op when present)
#   scripts/kafka-broker.sh start DIR      format a fresh log dir under DIR and start the broker on
#                                          free loopback ports; waits (bounded) until it accepts
#                                          connections, then prints its bootstrap address and
#                                          writes it to DIR/bootstrap (PID in DIR/pid)
#   scripts/kafka-broker.sh stop DIR       stop the broker of DIR by its PID (SIGTERM, then SIGKILL)
#
# Environment: KAFKA_VERSION (default 4.1.1), KAFKA_START_TIMEOUT seconds (default 120),
# BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$repo/$BUILD_DIR" ;; esac
home="$BUILD_DIR/kafka-$KAFKA_VERSION"
lib="$home/lib"

die() { echo "kafka-broker: $*" >&2; exit 1; }

fetch() {
  if [[ -f "$lib/.complete" ]]; then return 0; fi
  type -P mvn >/dev/null || die "mvn is missing (bash scripts/install-deps.sh kafka)"
  mkdir -p "$home"
  cat >"$home/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>retryd.test</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$lib"
  local t=$SECONDS
  (cd "$home" && timeout 900 mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory=lib \
     >"$home/mvn.log" 2>&1) \
    || die "mvn could not fetch Kafka $KAFKA_VERSION from Maven Central: $(tail -n 20 "$home/mvn.log")"
  touch "$lib/.complete"
  echo "kafka-broker: fetched $(ls "$lib" | wc -l) jars in $((SECONDS - t)) s"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
listening() {
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

start() {
  local dir="$1"
  type -P java >/dev/null || die "java is missing (bash scripts/install-deps.sh kafka)"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local port cport
  port="$(free_port)"
  cport="$(free_port)"
  while [[ "$cport" = "$port" ]]; do cport="$(free_port)"; done
  rm -rf "$dir/logs"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  local java_opts=(-Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
  local t0=$SECONDS
  local uuid
  uuid="$(timeout 60 java "${java_opts[@]}" -cp "$lib/*" kafka.tools.StorageTool random-uuid)" \
    || die "StorageTool random-uuid failed"
  timeout 60 java "${java_opts[@]}" -cp "$lib/*" kafka.tools.StorageTool format --standalone \
    -t "$uuid" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
    || die "StorageTool format failed: $(cat "$dir/format.log")"
  nohup java "${java_opts[@]}" -cp "$lib/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/stdout.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/pid"
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-120}))
  until listening "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "the broker exited during start-up: $(tail -n 30 "$dir/stdout.log" "$dir/broker.log" 2>/dev/null)"
    fi
    if (( SECONDS >= deadline )); then
      stop "$dir"
      die "the broker did not accept connections within ${KAFKA_START_TIMEOUT:-120} s"
    fi
    sleep 0.2
  done
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  echo "kafka-broker: Kafka $KAFKA_VERSION on 127.0.0.1:$port (pid $pid) started in $((SECONDS - t0)) s" >&2
  echo "127.0.0.1:$port"
}

stop() {
  local dir="$1" pid
  [[ -f "$dir/pid" ]] || return 0
  pid="$(cat "$dir/pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pid"
}

case "${1:-}" in
  fetch) fetch ;;
  start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) echo "usage: $0 fetch | start DIR | stop DIR" >&2; exit 2 ;;
esac

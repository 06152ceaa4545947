#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks (Debian's postgresql package, installed
# by `scripts/install-deps.sh postgres`), on a free 127.0.0.1 port, trust authentication for the
# superuser `postgres`, no Unix socket.
#
#   scripts/pg-cluster.sh start DIR   starts a cluster; prints its DSN (also in DIR/dsn); DIR/pid
#                                     holds the postmaster's pid, DIR/log its log
#   scripts/pg-cluster.sh restart DIR starts the cluster of DIR again on its data and port (after
#                                     its postmaster was killed, say); prints its DSN
#   scripts/pg-cluster.sh stop DIR    stops it (immediate shutdown) and deletes its data
#
# initdb runs once per machine and PostgreSQL version into a template directory
# ($RETRYD_PG_TEMPLATE, default ${TMPDIR:-/tmp}/retryd-pg-template-VERSION); each cluster is a copy
# of it (a fraction of a second instead of seconds). The data lives in a directory of its own
# under ${TMPDIR:-/tmp} (named in DIR/datadir), so DIR may be anywhere. PostgreSQL refuses to run
# as root: as root, the clusters run as the `postgres` user the Debian package creates.
# The clusters are for tests: fsync is off (a killed server loses nothing, the machine must not
# crash), synchronous_commit stays on.
set -euo pipefail

usage() { echo "usage: $0 start DIR | restart DIR | stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action="$1"
dir="$2"

bindir=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ]; then
  echo "pg-cluster: PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin;" \
       "run: bash scripts/install-deps.sh postgres" >&2
  exit 1
fi
version="$(basename "$(dirname "$bindir")")"

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(runuser -u postgres --)
fi

template() {
  local t="${RETRYD_PG_TEMPLATE:-${TMPDIR:-/tmp}/retryd-pg-template-$version}"
  if [ ! -f "$t/PG_VERSION" ]; then
    local tmp
    tmp="$(mktemp -d "${t}.XXXXXX")"
    chmod 755 "$tmp"
    [ ${#as_pg[@]} -eq 0 ] || chown postgres "$tmp"
    "${as_pg[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 \
        --no-locale -N >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
    # Another start may have made the template meanwhile: keep the first one.
    mv -T "$tmp/data" "$t" 2>/dev/null || true
    rm -rf "$tmp"
  fi
  echo "$t"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the cluster in $1 (a data directory's parent) on port $2; 0 when it accepts connections.
run_postgres() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$1/data" -l "$1/log" -w -t 60 -o \
      "-p $2 -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB" \
      start >/dev/null
}

started() {
  head -1 "$1/data/postmaster.pid" >"$dir/pid"
  ln -sf "$1/log" "$dir/log"
  echo "$2" >"$dir/port"
  echo "host=127.0.0.1 port=$2 user=postgres dbname=postgres" >"$dir/dsn"
  cat "$dir/dsn"
}

restart() {
  local data port
  data="$(cat "$dir/datadir")"
  port="$(cat "$dir/port")"
  # The killed postmaster's children exit once they notice it is gone; until then the server
  # refuses to start on their shared memory.
  for _ in $(seq 20); do
    if run_postgres "$data" "$port" 2>/dev/null; then
      started "$data" "$port"
      return 0
    fi
    sleep 0.5
  done
  cat "$data/log" >&2
  exit 1
}

start() {
  # A cluster left in DIR by a run that was killed goes first.
  stop
  mkdir -p "$dir"
  local t data port
  t="$(template)"
  data="$(mktemp -d "${TMPDIR:-/tmp}/retryd-pg.XXXXXX")"
  chmod 755 "$data"
  cp -a "$t" "$data/data"
  chmod 700 "$data/data"
  [ ${#as_pg[@]} -eq 0 ] || chown -R postgres "$data"
  echo "$data" >"$dir/datadir"
  # A port taken between the probe and the server's bind makes pg_ctl fail: try another.
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    if run_postgres "$data" "$port"; then
      started "$data" "$port"
      return 0
    fi
  done
  echo "pg-cluster: PostgreSQL did not start; its log:" >&2
  cat "$data/log" >&2 || true
  exit 1
}

stop() {
  [ -f "$dir/datadir" ] || return 0
  local data
  data="$(cat "$dir/datadir")"
  if [ -f "$data/data/postmaster.pid" ]; then
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$data/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
  rm -f "$dir/datadir" "$dir/dsn" "$dir/pid" "$dir/log" "$dir/port"
}

case "$action" in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) usage ;;
esac

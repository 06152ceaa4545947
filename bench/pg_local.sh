# bench/pg_local.sh: sourced by the PostgreSQL benchmarks (bench/scale-out.sh,
# bench/pgbench_envelopes.sh). Starts and stops a throw-away PostgreSQL 15 on a free 127.0.0.1
# port in a directory of its own.
#
#   pg_start DIR   sets PG_DSN (a libpq URI of the "postgres" database, user postgres, no password)
#   pg_stop DIR    stops it (fast shutdown) and leaves DIR to the caller
#   pg_createdb NAME   creates a database on it, prints its DSN
#
# By default the cluster is made here with Debian's initdb/pg_ctl (not on PATH:
# /usr/lib/postgresql/VERSION/bin), as the "postgres" system user when running as root (PostgreSQL
# refuses to run as root), and keeps PostgreSQL's durable defaults (fsync on, synchronous_commit
# on, full_page_writes on): the figures are those of a database that keeps what it acknowledged.
# PG_FROM=pg-cluster uses scripts/pg-cluster.sh instead, the tests' cluster, which runs with fsync
# and full_page_writes off on its command line (nothing can turn them back on): faster, and not
# what a production database does, so not the default for measurements.

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  echo "pg_local: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (bash scripts/install-deps.sh bench)" >&2
  return 1
}

# as_pg CMD...: runs CMD as the postgres system user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_start() {
  local dir="$1" root bin port
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  mkdir -p "$dir"
  if [ "${PG_FROM:-local}" = pg-cluster ]; then
    PG_DSN="$(bash "$root/scripts/pg-cluster.sh" start "$dir" | tail -1)"
    PG_HOW="scripts/pg-cluster.sh (fsync off)"
    [ -n "$PG_DSN" ] || { echo "pg_local: scripts/pg-cluster.sh start printed no DSN" >&2; return 1; }
    return 0
  fi
  bin="$(pg_bindir)" || return 1
  if [ "$(id -u)" -eq 0 ]; then
    # The postgres user must reach DIR: a mktemp -d parent is 0700.
    chmod o+x "$(dirname "$dir")"
    chown postgres: "$dir"
  fi
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  port="$(pg_free_port)"
  # Enough connections for 3 replicas' pools and pgbench at 256 clients.
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=400" start >/dev/null \
    || { cat "$dir/postgres.log" >&2; return 1; }
  PG_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
  PG_HOW="bench/pg_local.sh (initdb + pg_ctl)"
}

pg_stop() {
  local dir="$1" root bin
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ "${PG_FROM:-local}" = pg-cluster ]; then
    bash "$root/scripts/pg-cluster.sh" stop "$dir" >/dev/null 2>&1 || true
    return 0
  fi
  [ -d "$dir/data" ] || return 0
  bin="$(pg_bindir)" || return 0
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_createdb NAME: a fresh database on the running cluster; prints its DSN.
pg_createdb() {
  psql "$PG_DSN" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$1\"" -c "CREATE DATABASE \"$1\"" >/dev/null
  python3 - "$PG_DSN" "$1" <<'PY'
import re, sys, urllib.parse
dsn, db = sys.argv[1], sys.argv[2]
if dsn.startswith(("postgres://", "postgresql://")):
    u = urllib.parse.urlsplit(dsn)
    print(urllib.parse.urlunsplit(u._replace(path="/" + db)))
elif re.search(r"(^|\s)dbname=\S+", dsn):
    print(re.sub(r"(^|\s)dbname=\S+", lambda m: m.group(1) + "dbname=" + db, dsn))
else:
    print(dsn + " dbname=" + db)
PY
}

#!/usr/bin/env bash
# PostgreSQL for tests and cluster-mode demos, from Debian's postgresql
# package (the tests run it from a temporary initdb, as the postgres user
# when they run as root: PostgreSQL refuses to run as root).
#
#   postgres.sh install   install Debian's postgresql package if no
#                         /usr/lib/postgresql/*/bin/initdb exists (needs root
#                         or sudo; several minutes the first time)
#   postgres.sh start     install if needed, initdb a fresh server into a
#                         temporary directory, start it on a free loopback
#                         port and print the DSN of its database "tierd"
#                         (state in .cache/pg-run/; a second start prints the
#                         running one's)
#   postgres.sh stop      stop the one `start` started and remove its data
#
# For benchmarks and demos only: trust authentication on 127.0.0.1, no
# password, fsync off (the data need not survive the machine's crash).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rundir=$root/.cache/pg-run

have() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

install() {
  have && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  # One install at a time: several test binaries may ask at once.
  exec 9>/tmp/tierd-postgres-install.lock
  flock 9
  have && return 0
  echo "installing Debian's postgresql package (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >&2
  $sudo apt-get install -y -q --no-install-recommends postgresql >&2
  # The package's own cluster is not ours: tests initdb their own.
  command -v pg_lsclusters >/dev/null && for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do
    $sudo pg_ctlcluster ${c%/*} ${c#*/} stop >/dev/null 2>&1 || true
  done
  have
}

bindir() {
  if [ -n "${TIERD_PG_BIN:-}" ]; then echo "$TIERD_PG_BIN"; return; fi
  ls -d /usr/lib/postgresql/*/bin | sort -t/ -k4 -n | tail -1
}

# as_pg runs a command as the postgres user when this runs as root
# (PostgreSQL refuses to run as root), else as this user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

print_env() { # dsn data
  cat <<EOT
PostgreSQL:
  dsn:       $1
  data dir:  $2
For tierd:
  cluster:
    catalog: "$1"
EOT
}

start() {
  install
  local bin data port dsn
  bin=$(bindir)
  if [ -f "$rundir/data" ] && [ -f "$rundir/dsn" ] && as_pg "$bin/pg_ctl" -D "$(cat "$rundir/data")/pg" status >/dev/null 2>&1; then
    echo "already running; dsn $(cat "$rundir/dsn")" >&2
    print_env "$(cat "$rundir/dsn")" "$(cat "$rundir/data")"
    return 0
  fi
  [ -f "$rundir/data" ] && stop 2>/dev/null # a server that died: clear its leftovers
  mkdir -p "$rundir"
  # The data goes to a temporary directory, like MinIO's: the postgres
  # user may not be able to enter the repository's directories.
  data=$(mktemp -d "${TMPDIR:-/tmp}/tierd-pg.XXXXXX")
  echo "$data" >"$rundir/data"
  [ "$(id -u)" = 0 ] && chown postgres: "$data"
  chmod 700 "$data"
  as_pg "$bin/initdb" -D "$data/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$data/initdb.log" 2>&1 ||
    { echo "initdb failed:" >&2; cat "$data/initdb.log" >&2; stop; return 1; }
  port=$(free_port)
  as_pg "$bin/pg_ctl" -D "$data/pg" -l "$data/postgres.log" -w -t 60 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c full_page_writes=off" start >/dev/null ||
    { echo "postgres did not start; log:" >&2; tail -20 "$data/postgres.log" >&2; stop; return 1; }
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres tierd
  dsn="postgres://postgres@127.0.0.1:$port/tierd?sslmode=disable"
  echo "$dsn" >"$rundir/dsn"
  print_env "$dsn" "$data"
}

stop() {
  [ -f "$rundir/data" ] || { echo "not running" >&2; return 0; }
  local data
  data=$(cat "$rundir/data")
  if [ -d "$data/pg" ]; then
    as_pg "$(bindir)/pg_ctl" -D "$data/pg" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
  rm -f "$rundir/data" "$rundir/dsn"
  echo "stopped" >&2
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac

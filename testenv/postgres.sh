#!/usr/bin/env bash
# PostgreSQL for tests and cluster-mode demos, from Debian's postgresql
# package (the tests run it from a temporary initdb, as the postgres user
# when they run as root: PostgreSQL refuses to run as root).
#
#   postgres.sh install   install Debian's postgresql package if no
#                         /usr/lib/postgresql/*/bin/initdb exists (needs root
#                         or sudo; several minutes the first time)
set -euo pipefail

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
  $sudo pg_ctlcluster --help >/dev/null 2>&1 && for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do
    $sudo pg_ctlcluster ${c%/*} ${c#*/} stop >/dev/null 2>&1 || true
  done
  have
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# MinIO for tests and demos, built from the Go module proxy at a pinned
# version (no container runtime, no download outside the Go toolchain).
#
#   minio.sh build   build .cache/bin/minio if it is missing (~7 min on 2 cores, once)
#   minio.sh start   start one in the background on a free loopback port, print
#                    its endpoint and credentials (state in .cache/minio-run/)
#   minio.sh stop    stop the one `start` started and remove its data
#   minio.sh run     build if needed, then run one in the foreground (make minio);
#                    Ctrl-C stops it and removes its data
#
# Credentials: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD if set, else tierd / tierd-secret.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=v0.0.0-20260212201848-7aac2a2c5b7c
bindir=$root/.cache/bin
bin=$bindir/minio
rundir=$root/.cache/minio-run
user=${MINIO_ROOT_USER:-tierd}
pass=${MINIO_ROOT_PASSWORD:-tierd-secret}

build() {
  [ -x "$bin" ] && return 0
  mkdir -p "$bindir"
  # One build at a time: `go test ./...` may ask from several packages at once.
  exec 9>"$root/.cache/minio-build.lock"
  flock 9
  [ -x "$bin" ] && return 0
  echo "building minio@$version into $bindir (several minutes the first time)" >&2
  # Build into a scratch GOBIN and rename, so nobody ever runs a half-written binary.
  local tmp
  tmp=$(mktemp -d "$root/.cache/minio-build.XXXXXX")
  if ! GOBIN=$tmp go install "github.com/minio/minio@$version"; then
    rm -rf "$tmp"; echo "minio build failed" >&2; return 1
  fi
  mv "$tmp/minio" "$bin"
  rm -rf "$tmp"
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

wait_ready() { # pid endpoint log
  for _ in $(seq 1 300); do
    if ! kill -0 "$1" 2>/dev/null; then echo "minio exited; log:" >&2; tail -20 "$3" >&2; return 1; fi
    if curl -fsS -o /dev/null "$2/minio/health/ready" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "minio not ready after 60s; log:" >&2; tail -20 "$3" >&2; return 1
}

print_env() { # endpoint data
  cat <<EOT
MinIO:
  endpoint:   $1
  access key: $user
  secret key: $pass
  data dir:   $2
  bucket:     tierd (created empty)
  store URL:  s3://tierd/tierd?endpoint=$1&region=us-east-1
For a client:
  export AWS_ACCESS_KEY_ID=$user AWS_SECRET_ACCESS_KEY=$pass AWS_REGION=us-east-1
EOT
}

start() {
  build
  if [ -f "$rundir/pid" ] && kill -0 "$(cat "$rundir/pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$rundir/pid")); endpoint $(cat "$rundir/endpoint")" >&2; return 0
  fi
  mkdir -p "$rundir"
  local data port endpoint pid
  data=$(mktemp -d "${TMPDIR:-/tmp}/tierd-minio.XXXXXX")
  port=$(free_port)
  endpoint=http://127.0.0.1:$port
  MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
    nohup "$bin" server --quiet --address "127.0.0.1:$port" "$data" >"$rundir/minio.log" 2>&1 &
  pid=$!
  echo "$pid" >"$rundir/pid"; echo "$endpoint" >"$rundir/endpoint"; echo "$data" >"$rundir/data"
  wait_ready "$pid" "$endpoint" "$rundir/minio.log" || { stop; return 1; }
  make_bucket "$endpoint" tierd || { stop; return 1; }
  print_env "$endpoint" "$data"
}

# make_bucket creates a bucket with curl's SigV4 signing (curl 7.75+), so
# that the printed store URL works as it is.
make_bucket() { # endpoint bucket
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --user "$user:$pass" \
    --aws-sigv4 "aws:amz:us-east-1:s3" "$1/$2") || { echo "curl failed to create bucket $2" >&2; return 1; }
  case $code in
    200|409) return 0 ;;
    *) echo "creating bucket $2 answered HTTP $code" >&2; return 1 ;;
  esac
}

stop() {
  [ -f "$rundir/pid" ] || { echo "not running" >&2; return 0; }
  local pid
  pid=$(cat "$rundir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  [ -f "$rundir/data" ] && rm -rf "$(cat "$rundir/data")"
  rm -f "$rundir/pid" "$rundir/endpoint" "$rundir/data"
  echo "stopped" >&2
}

run() {
  build
  local port endpoint pid
  run_data=$(mktemp -d "${TMPDIR:-/tmp}/tierd-minio.XXXXXX")
  local data=$run_data
  port=$(free_port)
  endpoint=http://127.0.0.1:$port
  MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
    "$bin" server --quiet --address "127.0.0.1:$port" "$data" &
  pid=$!
  trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$run_data"' EXIT
  trap 'exit 130' INT TERM
  wait_ready "$pid" "$endpoint" /dev/null || exit 1
  make_bucket "$endpoint" tierd || exit 1
  print_env "$endpoint" "$data"
  echo "Ctrl-C to stop."
  wait "$pid"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  run) run ;;
  *) echo "usage: $0 build|start|stop|run" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs every fuzz target in the repository for $FUZZTIME (default 8s) each.
# Targets are found by name, so a new Fuzz* function is run without listing it.
#
# Go 1.26's fuzz coordinator has a race at the end of a duration -fuzztime
# (go.dev/issue/75804, fixed in Go 1.27): on a loaded machine it may fail a
# target with a bare "context deadline exceeded" and no failing input. When
# that happens the target is run again with a count budget (-fuzztime Nx, N
# the executions the first run reached), which has no deadline to race, so
# the same amount of fuzzing is still done and a real finding still fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-8s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  echo "fuzz $pkg $name ($fuzztime)"
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then continue; fi
  # A found bug writes its input under testdata/fuzz, and any other failure
  # prints more than the coordinator's bare deadline error: never retried.
  if grep -q "Failing input written" "$log" || ! grep -qx "    context deadline exceeded" "$log"; then
    cat "$log"; status=1; continue
  fi
  execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  execs=$(( ${execs:-0} > 10000 ? ${execs:-0} : 10000 ))
  echo "  (go.dev/issue/75804: the fuzzer stopped at its deadline without a finding; running ${execs}x instead)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "${execs}x" -timeout 10m "$pkg" >"$log" 2>&1; then
    cat "$log"; status=1
  fi
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's#^\./##; s#:func #:#')
exit $status

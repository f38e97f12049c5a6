#!/usr/bin/env bash
# Runs every Fuzz target of the module for a bounded time each (default 3s):
# every parser of untrusted bytes has one. A run that ends only with the Go
# fuzzer's own "context deadline exceeded" (its workers were slow to stop on
# a loaded machine; no failing input was found or written) is run once more;
# any real finding fails at once and names the input file.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-3s}
n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($t)"
    ok=0
    for attempt in 1 2; do
      if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >"$log" 2>&1; then ok=1; break; fi
      if grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then break; fi
      echo "  (the fuzzer did not stop in time, without a finding; running it again)"
    done
    if [ "$ok" != 1 ]; then cat "$log"; exit 1; fi
    n=$((n+1))
  done
done
echo "fuzz: $n targets ran for $t each"

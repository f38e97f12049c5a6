#!/usr/bin/env bash
# Runs every Fuzz target of the module for a bounded time each (default 3s):
# every parser of untrusted bytes has one.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-3s}
n=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >/tmp/sealroot-fuzz.log 2>&1 || { cat /tmp/sealroot-fuzz.log; exit 1; }
    n=$((n+1))
  done
done
echo "fuzz: $n targets ran for $t each"

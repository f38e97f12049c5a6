#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it: the linter, unit tests (with the
# race detector off to stay inside the time budget), every fuzz target for a
# bounded time, and the QEMU end-to-end tests. Needs `make deps` first.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
export SEALROOT_KERNEL=${SEALROOT_KERNEL:-$PWD/.cache/kernel/vmlinuz}
export SEALROOT_KMODULES=${SEALROOT_KMODULES:-$PWD/.cache/kernel/modules}
export SEALROOT_KRUNFW_KERNEL=${SEALROOT_KRUNFW_KERNEL:-$PWD/.cache/krunfw/bzImage}

# A real PostgreSQL server for the broker's replicated store tests.
if [ -z "${SEALROOT_TEST_POSTGRES:-}" ] && [ -x tests/postgres.sh ]; then
  SEALROOT_TEST_POSTGRES=$(bash tests/postgres.sh start)
  export SEALROOT_TEST_POSTGRES
  trap 'bash tests/postgres.sh stop >/dev/null 2>&1 || true' EXIT
fi

start=$(date +%s)
echo "== lint (golangci-lint, pinned in tests/lint.sh)"
bash tests/lint.sh
echo "== unit tests"
go test -count=1 -timeout 20m $(go list ./... | grep -v /tests)
echo "== fuzz (bounded)"
bash tests/fuzz.sh "${FUZZTIME:-3s}"
echo "== end-to-end (QEMU)"
go test -count=1 -timeout 25m ./tests/...
echo "== all tests passed in $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# Runs golangci-lint (configuration: .golangci.yml) over the module, as
# `make lint` and `make test` do. The linter is pinned here and installed on
# first use into a per-machine directory outside the repository
# ($SEALROOT_TOOLS, by default $(go env GOPATH)/sealroot-tools), only when
# that exact version is missing: building it takes about 3 minutes of CPU
# once, later runs reuse it.
#   tests/lint.sh              lint ./...
#   tests/lint.sh --install    only install the pinned linter, print its path
#   tests/lint.sh ARGS...      passed on to `golangci-lint run`
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=v2.15.0
TOOLS=${SEALROOT_TOOLS:-$(go env GOPATH)/sealroot-tools}
DIR=$TOOLS/golangci-lint-$VERSION
BIN=$DIR/golangci-lint

if ! { [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "version ${VERSION#v} "; }; then
  echo "lint: installing golangci-lint $VERSION into $DIR" >&2
  mkdir -p "$DIR"
  # go install pkg@version builds outside this module: no -mod flag.
  GOFLAGS= GOBIN=$DIR nice -n 10 go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$VERSION"
fi

if [ "${1:-}" = --install ]; then
  echo "$BIN"
  exit 0
fi
exec "$BIN" run "$@"

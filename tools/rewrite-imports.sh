#!/usr/bin/env bash
# Apply issue 9's package and identifier moves (tools/arch-moves.txt) to the Go files given
# as arguments: import paths, the package qualifiers whose name changed
# (config. -> diskconfig., trusteesnp. -> snpreport.), and the package clause
# of a file that already sits in a moved package's new directory. Run from
# anywhere; file paths are taken relative to the current directory, which
# should be the repository root. Idempotent: a second run changes nothing.
#
#   bash tools/rewrite-imports.sh $(git ls-files '*.go')
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -gt 0 ] || { echo "usage: $0 file.go..." >&2; exit 2; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$root" && go build -o "$bin/rewriteimports" ./tools/rewriteimports)
"$bin/rewriteimports" -moves "$root/tools/arch-moves.txt" "$@"

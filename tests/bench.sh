#!/usr/bin/env bash
# `make bench`: prints the project's figures. Each section is a Go
# benchmark; nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
export SEALROOT_KERNEL=${SEALROOT_KERNEL:-$PWD/.cache/kernel/vmlinuz}
export SEALROOT_KMODULES=${SEALROOT_KMODULES:-$PWD/.cache/kernel/modules}
echo "== initrd size per compression, boot timeline (plain root)"
go test -run '^$' -bench 'InitrdSize|PlainBoot' -benchtime 1x -timeout 30m ./tests/

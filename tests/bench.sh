#!/usr/bin/env bash
# `make bench`: prints the project's figures. Each section is a Go
# benchmark or a program that prints numbers; nothing here asserts a
# timing. Boot figures are medians over several boots under TCG.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
export SEALROOT_KERNEL=${SEALROOT_KERNEL:-$PWD/.cache/kernel/vmlinuz}
export SEALROOT_KMODULES=${SEALROOT_KMODULES:-$PWD/.cache/kernel/modules}
export SEALROOT_KRUNFW_KERNEL=${SEALROOT_KRUNFW_KERNEL:-$PWD/.cache/krunfw/bzImage}
section() { printf '\n== %s\n' "$1"; }

section "initrd size per compression; plain boot timeline (PID 1 → workload exec, per phase)"
go test -run '^$' -bench 'InitrdSize|PlainBoot' -benchtime 1x -timeout 30m ./tests/

section "attested boot timeline, krun and Trustee dialects (evidence + broker, KDF, mount)"
go test -run '^$' -bench 'AttestedBoot' -benchtime 1x -timeout 30m ./tests/

section "the guest init's size per Go package (largest first; stripped, the init is the 'loaded' figure)"
tmpinit=$(mktemp -d)
CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$tmpinit/init" ./guest/init
go run ./tests/tools/gosize -top 30 "$tmpinit/init"
rm -rf "$tmpinit"

section "initrd without modules (the libkrunfw shape) per compression"
go test -run '^$' -bench 'KrunfwInitrdSize' -benchtime 1x -timeout 10m ./tests/

section "microvm + krunfw kernel: PID 1 → workload start, plain vs attested (krun, Trustee), per phase, ratios"
go test -run '^$' -bench 'MicrovmBoot' -benchtime 1x -timeout 30m ./tests/

section "microvm + krunfw kernel: smallest memory for a sim-attested LUKS2 boot (machine-generated key)"
go test -run '^$' -bench 'MicrovmMinRAM' -benchtime 1x -timeout 30m ./tests/

section "LUKS: unlock time of our code vs cryptsetup --test-passphrase (same volumes), format throughput"
go test -run '^$' -bench 'UnlockVsCryptsetup|Format' -benchtime 1x -timeout 20m ./cryptsetup/

section "image build throughput for a 1 GiB rootfs (mkfs + LUKS2 encryption + footer), without and with a verity tree"
go test -run '^$' -bench 'Build1GiB' -benchtime 1x -timeout 20m ./host/image/

section "verity: tree hashing alone (256 MiB in memory); plain boot and a 64 MiB sequential read in the guest, without and with verity"
go test -run '^$' -bench 'Tree256MiB' -benchtime 2x -timeout 10m ./verity/
go test -run '^$' -bench 'VerityBoot' -benchtime 1x -timeout 30m ./tests/

section "SNP verification rate (warm certificate cache) vs raw ECDSA P-384 verify, one core"
snpout=$(go test -run '^$' -bench 'SNPVerify|ECDSAP384Verify' -benchtime 2s -cpu 1 -timeout 10m ./host/verify/snp/)
printf '%s\n' "$snpout"
printf '%s\n' "$snpout" | awk '
  /^BenchmarkSNPVerify[ \t]/ { for (i = 1; i < NF; i++) if ($(i+1) == "verifications/s") v = $i }
  /^BenchmarkECDSAP384Verify/ { for (i = 1; i < NF; i++) if ($(i+1) == "verifications/s") r = $i }
  END { if (v && r) printf "SNP verifications/s %.0f | raw ECDSA P-384 verifications/s %.0f | ratio %.2f (same run, one core)\n", v, r, v / r }'

section "broker store writes on bbolt: workload (fsync + rollback sequence fsync), session (batched); raw and guarded"
go test -run '^$' -bench 'BoltWrites' -benchtime 2s -timeout 10m ./host/broker/store/

section "broker /auth cost: pending sessions in memory (default) vs in the store (bbolt), db growth per call"
go test -run '^$' -bench 'BenchmarkAuth' -benchtime 2000x -timeout 10m ./host/broker/

section "launch measurement of a 12 MiB kernel + 64 MiB initrd: SNP (QEMU, libkrun) and sim"
go test -run '^$' -bench 'Measure64MiB' -benchtime 3x -timeout 10m ./host/measure/

if [ -f host/broker/loadtest/main.go ] || ls host/broker/*_test.go 2>/dev/null | xargs grep -l 'func BenchmarkLoad' >/dev/null 2>&1; then
  section "broker load test over loopback (simulated-SNP attestations; broker process on CPU 0, guests on the others): closed loop, then open loop at 25/50/75 % of capacity, broker CPU per handshake vs raw verify on the same core"
  if [ -x tests/postgres.sh ] && [ -z "${SEALROOT_TEST_POSTGRES:-}" ]; then
    SEALROOT_TEST_POSTGRES=$(bash tests/postgres.sh start); export SEALROOT_TEST_POSTGRES
    trap 'bash tests/postgres.sh stop >/dev/null 2>&1 || true' EXIT
  fi
  if [ -f host/broker/loadtest/main.go ]; then
    printf 'PostgreSQL reads of a handshake, one goroutine (GetSessionRead is one round trip for session + workload; workload-cached is a hit in the workload cache):\n'
    go test -run '^$' -bench 'PostgresReads' -benchtime 2000x -cpu 1 -timeout 10m ./host/broker/store/ | grep -E '^Benchmark|skip' || true
    go run ./host/broker/loadtest
    if [ -n "${SEALROOT_TEST_POSTGRES:-}" ]; then
      printf '\nPostgreSQL with sessions in memory (--pending-sessions memory: sticky replicas) and the workload cache: no round trip in a handshake\n'
      go run ./host/broker/loadtest -stores postgres -broker-flags "--pending-sessions memory"
    fi
  else
    go test -run '^$' -bench 'Load' -benchtime 1x -timeout 30m ./host/broker/
  fi
fi

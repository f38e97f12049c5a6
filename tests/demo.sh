#!/usr/bin/env bash
# `make demo`: an attested boot of an encrypted workload, end to end, on this
# machine. Builds the initrd and a small encrypted workload image (tee sim),
# creates the simulated secure processor, starts a broker on loopback with
# its embedded store, registers the workload with the measurement that
# `sealroot measure` computed, launches the VM, shows the boot timeline and
# the workload's output, stops the broker, and exits with the workload's
# exit status. Files stay in out/demo (DEMO_DIR) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
out=${DEMO_DIR:-$PWD/out/demo}
bin=$PWD/bin/sealroot
kernel=${SEALROOT_KERNEL:-$PWD/.cache/kernel/vmlinuz}
kmods=${SEALROOT_KMODULES:-$PWD/.cache/kernel/modules}

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; C=$'\e[36m'; D=$'\e[2m'; R=$'\e[0m'; else B= G= C= D= R=; fi
n=0; total=8
t0=$(date +%s%N)
step() { n=$((n+1)); ts=$(date +%s%N); printf '\n%s▶ [%d/%d] %s%s\n' "$B" "$n" "$total" "$1" "$R"; }
ok() { printf '  %s✓%s %s %s(%.1f s)%s\n' "$G" "$R" "$1" "$D" "$(( ($(date +%s%N) - ts) / 1000000 ))e-3" "$R"; }
where() { printf '  %s%-14s%s %s\n' "$C" "$1" "$R" "$2"; }

broker_pid=""
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT

rm -rf "$out/image" "$out/broker" "$out/rootfs" "$out/passphrase"
mkdir -p "$out"

step "Build the sealroot initrd (the guest's PID 1 and its kernel modules)"
"$bin" initramfs build -o "$out/initrd.cpio.gz" --kernel-modules "$kmods" | sed 's/^/  /'
ok "initrd built"
where initrd "$out/initrd.cpio.gz"
where kernel "$kernel"

step "Build the demo workload: a static program in an otherwise empty rootfs"
mkdir -p "$out/rootfs"
CGO_ENABLED=0 go build -trimpath -o "$out/rootfs/demo" ./tests/testprogs/demo
ok "workload built"
where rootfs "$out/rootfs"

step "Create the simulated secure processor (a fresh ARK → ASK → VCEK chain)"
if [ -f "$out/sim/vcek.pem" ]; then
  echo "  reusing the keys in $out/sim"
else
  "$bin" sim init --dir "$out/sim" | sed 's/^/  /'
fi
ok "secure processor ready"
where sim "$out/sim"

step "Start the key broker on loopback (embedded bbolt store)"
port=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free loopback port" >&2; exit 1; }
od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$out/admin-token"; chmod 600 "$out/admin-token"
"$bin" broker --listen "127.0.0.1:$port" --state "$out/broker" --trust-sim-root "$out/sim" \
  --admin-token-file "$out/admin-token" --offline > "$out/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$out/broker.log" >&2; exit 1; }
  sleep 0.1
done
ok "broker listening on http://127.0.0.1:$port"
where "broker log" "$out/broker.log"

step "Build the encrypted image (LUKS2, tee sim) and register it with the broker"
echo "  the guest will reach the broker at 10.0.2.100:8000 (forwarded to 127.0.0.1:$port);"
echo "  the generated passphrase goes straight to the broker and is never written to disk"
"$bin" image build --rootfs "$out/rootfs" --tee sim --workload-id sealroot-demo \
  --attestation-url http://10.0.2.100:8000 --cpus 1 --memory 512 \
  --cmd /demo --cmd attested --env "DEMO_MESSAGE=the root disk was unlocked with a key released only after attestation" \
  --register --broker "http://127.0.0.1:$port" --admin-token-file "$out/admin-token" \
  --kernel "$kernel" --initrd "$out/initrd.cpio.gz" -o "$out/image" 2>&1 | sed 's/^/  /'
ok "image built and registered"
where disk "$out/image/disk.img"
where config "$out/image/krun-sev.json"

step "What the broker expects: the launch measurement and policy"
echo "  sealroot measure: $("$bin" measure --tee sim --kernel "$kernel" --initrd "$out/initrd.cpio.gz" --disk "$out/image/disk.img")"
"$bin" workloads show sealroot-demo --broker "http://127.0.0.1:$port" --admin-token-file "$out/admin-token" | sed 's/^/  /'
ok "the measurement covers the kernel, initrd, command line, vCPUs and memory"

step "Launch the VM: attest, receive the key, unlock, switch root, run"
set +e
"$bin" launch --kernel "$kernel" --initrd "$out/initrd.cpio.gz" --disk "$out/image/disk.img" \
  --tee sim --sim-dir "$out/sim" --broker "http://127.0.0.1:$port" --events "$out/events.jsonl" --timeline \
  2> "$out/launch.err" | sed 's/^/  │ /'
status=${PIPESTATUS[0]}
set -e
sed 's/^/  /' "$out/launch.err"
ok "VM powered off"
where events "$out/events.jsonl"

step "Stop the broker"
kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=""
releases=$(grep -c '"event":"key_release"' "$out/broker.log" || true)
ok "broker stopped; its audit log has $releases key release record(s)"

printf '\n%sdemo finished in %.1f s: the workload exited with status %d%s\n' "$B" "$(( ($(date +%s%N) - t0) / 1000000 ))e-3" "$status" "$R"
exit "$status"

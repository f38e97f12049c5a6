#!/usr/bin/env bash
# Installs what sealroot's build, tests and demo need on a Debian 12 machine,
# idempotently: QEMU, cryptsetup, e2fsprogs, and a Debian cloud kernel
# (vmlinuz + modules) unpacked under .cache/kernel. Run as root (or with sudo
# available). Nothing here is committed; everything is fetched.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${SEALROOT_CACHE:-$top/.cache}
mkdir -p "$cache"

# Go: sealroot (and the guest init that `initramfs build` compiles from this
# checkout) needs the version go.mod names. Debian 12's golang packages are
# older, so it is not installed from apt: say what is missing and stop.
want_go=$(awk '$1 == "go" {print $2; exit}' "$top/go.mod")
have_go=$(cd / && GOTOOLCHAIN=local go version 2>/dev/null | awk '{print $3}' || true)
if ! printf '%s\n%s\n' "go$want_go" "${have_go:-go0}" | sort -V -C 2>/dev/null; then
  echo "deps: Go >= $want_go is needed (go.mod), found ${have_go:-no go on PATH}." >&2
  echo "deps: Debian 12's golang packages are older: install Go $want_go or newer from https://go.dev/dl and put its bin/ on PATH." >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cryptsetup >/dev/null || need+=(cryptsetup-bin)
# veritysetup cross-checks the dm-verity trees sealroot builds (same package).
command -v veritysetup >/dev/null || need+=(cryptsetup-bin)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v debugfs >/dev/null || need+=(e2fsprogs)
command -v cpio >/dev/null || need+=(cpio)
command -v zstd >/dev/null || need+=(zstd)
command -v xz >/dev/null || need+=(xz-utils)
# zopfli writes the smallest gzip initrd (initramfs build --compress zopfli).
command -v zopfli >/dev/null || need+=(zopfli)
# gcc builds a synthetic libkrunfw and python3 runs independent MRTD and libkrun
# implementations in host/measure's tests.
command -v gcc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3)
# osslsigncode computes the Authenticode digest of the kernel independently
# (host/measure's TDX RTMR1 tests).
command -v osslsigncode >/dev/null || need+=(osslsigncode)
# OVMF: Debian's build carries SEV and TDX metadata; the SNP/TDX measurement tests use it.
[ -f /usr/share/ovmf/OVMF.fd ] || need+=(ovmf)
# PostgreSQL: the broker's replicated store is tested against a real server.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The kernel: resolve the versioned image package behind the metapackage.
kdir=$cache/kernel
if [ ! -f "$kdir/vmlinuz" ] || [ ! -d "$kdir/modules" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$pkg" ]; then
    $SUDO apt-get update -qq
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [ -n "$pkg" ] || { echo "deps: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
  echo "deps: fetching kernel package $pkg"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "$pkg" && dpkg-deb -x ./*.deb root)
  kver=$(ls "$tmp/root/lib/modules" | head -n1)
  rm -rf "$kdir.new" && mkdir -p "$kdir.new"
  cp "$tmp/root/boot/vmlinuz-$kver" "$kdir.new/vmlinuz"
  mv "$tmp/root/lib/modules/$kver" "$kdir.new/modules"
  echo "$kver" > "$kdir.new/version"
  rm -rf "$kdir" && mv "$kdir.new" "$kdir"
fi
echo "deps: $have_go; kernel $(cat "$kdir/version") at $kdir"

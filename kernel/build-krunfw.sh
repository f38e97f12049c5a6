#!/usr/bin/env bash
# Builds sealroot's libkrunfw-shaped guest kernel from Debian's
# linux-source-6.12 package: `make tinyconfig`, then kernel/krunfw.config
# merged on top, then every option of the fragment checked in the result.
#
# The build is cached outside the clone, keyed by the fragment, the recipe
# version below and the source package version, under
#   ${SEALROOT_KRUNFW_CACHE:-/var/cache/sealroot/krunfw}/<key>/{bzImage,config}
# so a new clone on the same machine reuses it; the result is copied to
# ${SEALROOT_CACHE:-<repo>/.cache}/krunfw/{bzImage,config}.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
frag=$top/kernel/krunfw.config
store=${SEALROOT_KRUNFW_CACHE:-/var/cache/sealroot/krunfw}
out=${SEALROOT_CACHE:-$top/.cache}/krunfw
jobs=${KRUNFW_JOBS:-$(nproc)}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need=()
for p in linux-source-6.12 flex bison bc libelf-dev libssl-dev gcc make xz-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "kernel-krunfw: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Bump when a change to this script changes the kernel it builds.
recipe=1
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( { echo "linux-source-6.12 $srcver recipe $recipe"; cat "$frag"; } | sha256sum | cut -c1-16)
dest=$store/$key

$SUDO mkdir -p "$store"
[ -w "$store" ] || $SUDO chown "$(id -u):$(id -g)" "$store"
exec 9>"$store/.lock"
flock 9

if [ ! -f "$dest/bzImage" ]; then
  tree=$store/linux-$srcver
  if [ ! -f "$tree/Makefile" ]; then
    echo "kernel-krunfw: unpacking linux-source-6.12 $srcver"
    rm -rf "$tree.new" && mkdir -p "$tree.new"
    tar -xJf /usr/src/linux-source-6.12.tar.xz -C "$tree.new" --strip-components=1
    mv "$tree.new" "$tree"
  fi
  echo "kernel-krunfw: configuring ($key)"
  make -s -C "$tree" ARCH=x86_64 tinyconfig >/dev/null
  "$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$frag" >/dev/null
  make -s -C "$tree" ARCH=x86_64 olddefconfig >/dev/null
  # Every option of the fragment must have survived the dependency checks.
  bad=0
  while IFS= read -r line; do
    case $line in
      CONFIG_*=*)
        grep -qxF -- "$line" "$tree/.config" || { echo "kernel-krunfw: wanted $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$tree/.config" || echo unset)" >&2; bad=1; } ;;
      "# CONFIG_"*" is not set")
        opt=${line#\# }; opt=${opt%% *}
        if grep -qE "^$opt=" "$tree/.config"; then echo "kernel-krunfw: wanted $opt off, got: $(grep -E "^$opt=" "$tree/.config")" >&2; bad=1; fi ;;
    esac
  done < "$frag"
  [ $bad = 0 ] || exit 1
  echo "kernel-krunfw: building with $jobs jobs (this takes a while)"
  start=$(date +%s)
  make -s -C "$tree" ARCH=x86_64 -j"$jobs" bzImage
  echo "kernel-krunfw: built in $(( $(date +%s) - start ))s"
  mkdir -p "$dest.new"
  cp "$tree/arch/x86/boot/bzImage" "$dest.new/bzImage"
  cp "$tree/.config" "$dest.new/config"
  echo "linux-source-6.12 $srcver" > "$dest.new/version"
  rm -rf "$dest" && mv "$dest.new" "$dest"
fi

mkdir -p "$out"
for f in bzImage config version; do
  if ! cmp -s "$dest/$f" "$out/$f"; then
    cp "$dest/$f" "$out/$f.new"
    mv "$out/$f.new" "$out/$f"
  fi
done
echo "kernel-krunfw: $(cat "$out/version") ($key) at $out/bzImage"

#!/usr/bin/env bash
# Build QEMU's x86-64 user-mode emulator with a CPUID cache geometry taken from the environment
# (cache-geometry.patch: REPRODL_QEMU_L1D_KIB, REPRODL_QEMU_L2_KIB), from Debian's source
# package, and cache the binary outside the checkout. Prints the binary's path on its last line.
#
#   bash tools/cache_qemu/build.sh            # build once, then reuse the cached binary
#   REPRODL_QEMU_CACHE=/some/dir bash ...     # where the binary is kept
#
# Needs root with apt-get (Debian bookworm): it adds a deb-src entry and the build dependencies.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
patch_file="$here/cache-geometry.patch"
key="$(sha256sum "$patch_file" "$0" | sha256sum | cut -c1-12)"
cache="${REPRODL_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reprodl/cache-qemu-$key}"
binary="$cache/qemu-x86_64"

if [ -x "$binary" ] && "$binary" --version >/dev/null 2>&1; then
  echo "$binary"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "error: building the cache-geometry emulator needs root and apt-get (Debian)" >&2
  exit 2
fi
start=$(date +%s)
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  cat > /etc/apt/sources.list.d/reprodl-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dpkg-dev meson ninja-build libglib2.0-dev \
  pkg-config flex bison python3 gcc make patch >/dev/null

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source -qq --download-only qemu >/dev/null
dsc="$(ls qemu_*.dsc | head -1)"
dpkg-source -x --no-check "$dsc" src >/dev/null
cd src
patch -p1 --quiet < "$patch_file"
./configure --target-list=x86_64-linux-user --disable-system --disable-tools --disable-docs \
  --disable-werror --disable-install-blobs --meson=/usr/bin/meson >/dev/null
ninja -C build qemu-x86_64 >/dev/null
mkdir -p "$cache"
cp build/qemu-x86_64 "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "${dsc%.dsc}" > "$cache/SOURCE"
echo "built from ${dsc%.dsc} in $(( $(date +%s) - start )) s" >&2
echo "$binary"

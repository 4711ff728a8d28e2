#!/usr/bin/env bash
# Builds an initramfs that is a base initramfs (default: the bundled guest/initramfs.cpio.lz4) plus more
# installed Debian programs, for runs that need tools too big for the bundled image's budget — iperf3
# brings OpenSSL's libcrypto (9 MB with its libraries, where the whole bundled image is 5.6 MB unpacked).
#   guest/addon-initramfs.sh [--base INITRAMFS] PROGRAM...     e.g. guest/addon-initramfs.sh /usr/bin/iperf3
# Each PROGRAM (an absolute path) comes with exactly the shared objects ldd lists (guest/install-program.sh).
# Output (never in the repository): ${VIRIDIAN_GUEST_ADDON_DIR:-${TMPDIR:-/tmp}/viridian-guest-addons}/
# <programs>.img, an uncompressed newc archive of the programs followed by the base initramfs unchanged
# (the kernel unpacks concatenated archives in order; the uncompressed one must come first, because the
# LZ4 decompressor reads to the end of its input). Rebuilt only when an input changed; prints its path.
# The base may be guest/stock-initramfs.sh's output, which has the same layout.
set -euo pipefail

guest_dir=$(cd "$(dirname "$0")" && pwd)
base="$guest_dir/initramfs.cpio.lz4"
if [ "${1:-}" = --base ]; then
  base=$2
  shift 2
fi
[ $# -gt 0 ] || {
  echo "usage: guest/addon-initramfs.sh [--base INITRAMFS] PROGRAM..." >&2
  exit 2
}
[ -f "$base" ] || {
  echo "guest/addon-initramfs.sh: $base not found" >&2
  exit 1
}
dir=${VIRIDIAN_GUEST_ADDON_DIR:-${TMPDIR:-/tmp}/viridian-guest-addons}
mkdir -p "$dir"
name=$(for p in "$@"; do basename "$p"; done | tr '\n' '+')
out="$dir/${name%+}-$(basename "${base%%.*}").img"

stamp=$(sha256sum "$base" "$0" "$guest_dir/install-program.sh" "$@" | cut -d' ' -f1 | tr '\n' ' ')
if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

# shellcheck source=guest/install-program.sh
. "$guest_dir/install-program.sh"
scratch=$(mktemp -d "$dir/addon.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
for prog in "$@"; do
  install_program "$scratch/root" "$prog" || exit 1
done
find "$scratch/root" -exec touch -h -d "@$(stat -c %Y "$base")" {} +
(cd "$scratch/root" && find . -print0 | sort -z | cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) \
  >"$scratch/addon.cpio"
cat "$scratch/addon.cpio" "$base" >"$scratch/out.img"
mv "$scratch/out.img" "$out"
echo "$stamp" >"$out.stamp"
echo "$(basename "$out"): $(stat -c %s "$out") bytes ($* and their libraries on $(basename "$base"))" >&2
echo "$out"

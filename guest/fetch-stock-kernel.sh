#!/usr/bin/env bash
# Fetches Debian 12's stock x86-64 kernel (the image behind the `linux-image-amd64` metapackage) for tests
# that boot an unmodified distribution kernel. Nothing is installed and nothing lands in the repository:
# the .deb is downloaded with `apt-get download` into a scratch directory, and boot/vmlinuz-* and
# lib/modules/<release>/ are extracted from it (extract/ below the scratch directory). Prints the path of
# the kernel. Scratch: VIRIDIAN_STOCK_KERNEL_DIR, default ${TMPDIR:-/tmp}/viridian-stock-kernel. The
# kernel's built-ins (8250 console, initramfs, ELF, devtmpfs) suffice for the bundled initramfs's serial
# shell; its Hyper-V, SCSI, ext4 and virtio drivers are modules, which guest/stock-initramfs.sh packs.
set -euo pipefail

dir=${VIRIDIAN_STOCK_KERNEL_DIR:-${TMPDIR:-/tmp}/viridian-stock-kernel}
mkdir -p "$dir/debs"
# apt drops privileges to _apt for downloads; let it write here so that it need not fall back to root.
chmod 0777 "$dir/debs"
cd "$dir/debs"

if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  apt-get update -qq
fi
# The metapackage depends on exactly one versioned image package, e.g. linux-image-6.1.0-41-amd64.
image_pkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[ -n "$image_pkg" ] || {
  echo "fetch-stock-kernel.sh: cannot find the image package linux-image-amd64 depends on" >&2
  exit 1
}
apt-get download -q "$image_pkg" >/dev/null
deb=$(compgen -G "${image_pkg}_*.deb" | sort | tail -n1)
[ -n "$deb" ] || {
  echo "fetch-stock-kernel.sh: apt-get download $image_pkg produced no .deb" >&2
  exit 1
}

rm -rf "$dir/extract"
dpkg-deb --fsys-tarfile "$deb" | tar -C "$dir" --one-top-level=extract -x --wildcards './boot/vmlinuz-*' './lib/modules/*'
vmlinuz=$(compgen -G "$dir/extract/boot/vmlinuz-*" | sort | tail -n1)
[ -n "$vmlinuz" ] || {
  echo "fetch-stock-kernel.sh: $deb contains no boot/vmlinuz-*" >&2
  exit 1
}
release=${vmlinuz##*/vmlinuz-}
[ -d "$dir/extract/lib/modules/$release/kernel" ] || {
  echo "fetch-stock-kernel.sh: $deb contains no lib/modules/$release/kernel" >&2
  exit 1
}
cp "$vmlinuz" "$dir/vmlinuz"
echo "$image_pkg ($(dpkg-deb -f "$deb" Version)): $(basename "$vmlinuz"), $(stat -c %s "$dir/vmlinuz") bytes;" \
  "modules in $dir/extract/lib/modules/$release" >&2
echo "$dir/vmlinuz"

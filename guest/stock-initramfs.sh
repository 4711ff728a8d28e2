#!/usr/bin/env bash
# Builds an initramfs for Debian's stock kernel (guest/fetch-stock-kernel.sh): the bundled guest's
# userspace (the committed guest/initramfs.cpio.lz4, unchanged) plus Debian's own modules for what the
# bundled kernel has built in: Hyper-V (hv_vmbus, hv_storvsc, hv_utils, hv_netvsc), disks and the DVD
# (sd_mod, sr_mod, ext4, isofs), and virtio for QEMU (virtio_pci, virtio_blk, virtio_net, virtio_scsi),
# each with the modules it depends on (modules.dep). guest/init loads the modules that /etc/modules names
# with busybox modprobe, before it starts anything else.
# Output (never in the repository): stock-initramfs.img next to the stock kernel, rebuilt only when an
# input changed; prints its path as the last line. Scratch: VIRIDIAN_STOCK_KERNEL_DIR, as for
# fetch-stock-kernel.sh (which this runs when the kernel or its modules are missing).
# Layout: an uncompressed newc archive (the modules, /etc/modules), then the bundled LZ4 archive. The
# kernel unpacks concatenated archives in order; an uncompressed one must come first, because the LZ4
# decompressor reads to the end of its input. Spec: Documentation/driver-api/early-userspace/buffer-format.rst.
set -euo pipefail

guest_dir=$(cd "$(dirname "$0")" && pwd)
dir=${VIRIDIAN_STOCK_KERNEL_DIR:-${TMPDIR:-/tmp}/viridian-stock-kernel}
bundled="$guest_dir/initramfs.cpio.lz4"
out="$dir/stock-initramfs.img"

die() {
  echo "guest/stock-initramfs.sh: $*" >&2
  exit 1
}

# The modules /etc/modules names, in load order. crc32c_generic and crct10dif_generic are what ext4 and
# sd_mod's T10 checksums ask the crypto API for at run time (not link-time dependencies, so modules.dep
# does not list them); the generic versions work on every CPU, unlike Debian's soft dependencies
# crc32c-intel and crct10dif-pclmul, which fail to load where SSE4.2 or PCLMULQDQ is missing.
wanted=(crc32c_generic crct10dif_generic hv_vmbus hv_utils hv_storvsc hv_netvsc sd_mod sr_mod isofs ext4
  virtio_pci virtio_blk virtio_net virtio_scsi)

[ -f "$bundled" ] || die "$bundled not found"
for tool in depmod cpio xz lz4; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian packages kmod, cpio, xz-utils, lz4)"
done
if ! compgen -G "$dir/extract/lib/modules/*/kernel" >/dev/null || [ ! -s "$dir/vmlinuz" ]; then
  bash "$guest_dir/fetch-stock-kernel.sh" >/dev/null
fi
modules_root="$dir/extract/lib/modules"
release=$(compgen -G "$modules_root/*/kernel" | sort | tail -n1)
release=${release%/kernel}
release=${release##*/}
[ -n "$release" ] || die "no modules in $modules_root"

stamp="$release $(sha256sum "$bundled" "$0" | cut -d' ' -f1 | tr '\n' ' ')"
if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

# modules.dep: the package ships none (its postinst runs depmod); it lists every module's dependencies,
# transitively, as paths relative to lib/modules/<release>.
depmod -b "$dir/extract" "$release"
deps="$modules_root/$release/modules.dep"
[ -s "$deps" ] || die "depmod wrote no $deps"

# Each wanted module and its dependencies, as paths relative to lib/modules/<release>. Module names
# treat - and _ alike.
closure=$(
  for name in "${wanted[@]}"; do
    awk -v want="${name//-/_}" '{
      key = $1; sub(/:$/, "", key)
      base = key; sub(/.*\//, "", base); sub(/\.ko(\.[a-z]+)?$/, "", base); gsub(/-/, "_", base)
      if (base == want) { found = 1; for (i = 1; i <= NF; i++) { p = $i; sub(/:$/, "", p); print p } }
    } END { if (!found) exit 1 }' "$deps" || die "module $name is not in $deps"
  done | sort -u
)

scratch=$(mktemp -d "$dir/stock-initramfs.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
root="$scratch/root"
target="$root/lib/modules/$release"
mkdir -p "$target" "$root/etc"
while IFS= read -r rel; do
  src="$modules_root/$release/$rel"
  case "$rel" in
  # busybox's modprobe loads plain .ko files only: unpack compressed ones here.
  *.ko.xz) install -d "$target/$(dirname "$rel")" && xz -dc "$src" >"$target/${rel%.xz}" ;;
  *.ko) install -D -m 0644 "$src" "$target/$rel" ;;
  *) die "unsupported module file $rel" ;;
  esac
done <<<"$closure"
cp "$modules_root/$release/modules.builtin" "$modules_root/$release/modules.builtin.modinfo" "$target/"
grep -Fx -f <(sed 's/\.xz$//' <<<"$closure") "$modules_root/$release/modules.order" >"$target/modules.order" || true
# modules.dep (and the alias files) for the modules in the image, naming the unpacked files.
depmod -b "$root" "$release"
{
  echo "# Loaded by /init with modprobe, in this order (guest/stock-initramfs.sh)."
  printf '%s\n' "${wanted[@]}"
} >"$root/etc/modules"

# Reproducible: sorted names, owner 0:0, one mtime: the package's own (that of its modules.builtin).
find "$root" -exec touch -h -d "@$(stat -c %Y "$modules_root/$release/modules.builtin")" {} +
(cd "$root" && find . -print0 | sort -z | cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) \
  >"$scratch/modules.cpio"
cat "$scratch/modules.cpio" "$bundled" >"$scratch/out.img"
mv "$scratch/out.img" "$out"
echo "$stamp" >"$out.stamp"
echo "stock initramfs for $release: $(wc -l <<<"$closure") modules, $(stat -c %s "$out") bytes" >&2
echo "$out"

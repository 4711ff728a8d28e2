#!/usr/bin/env bash
# Builds the bundled Viridian guest (guest/bzImage, guest/initramfs.cpio.lz4) from Debian 12 packages:
# Linux from `linux-source-6.1` configured as tinyconfig + guest/kernel.config, and an initramfs made of
# busybox-static, a few dynamically linked Debian programs (e2fsprogs' mke2fs/e2fsck, hyperv-daemons'
# hv_kvp_daemon) with exactly the shared objects they need, guest/init and guest/rootfs/. Run by
# `npm run guest:build`; never by the tests, which use the committed images. All scratch work happens
# outside the repository (VIRIDIAN_GUEST_BUILD_DIR, default ${TMPDIR:-/tmp}/viridian-guest-build).
# VIRIDIAN_GUEST_INITRAMFS_ONLY=1 rebuilds and installs only the initramfs (the kernel takes long).
# Boot protocol of the result: Documentation/x86/boot.rst.
set -euo pipefail

guest_dir=$(cd "$(dirname "$0")" && pwd)
scratch=${VIRIDIAN_GUEST_BUILD_DIR:-${TMPDIR:-/tmp}/viridian-guest-build}
jobs=${VIRIDIAN_GUEST_JOBS:-2}
initramfs_only=${VIRIDIAN_GUEST_INITRAMFS_ONLY:-0}
kernel_limit=$((8 * 1024 * 1024))
initramfs_limit=$((4 * 1024 * 1024))

die() {
  echo "guest/build.sh: $*" >&2
  exit 1
}

# --- 1. Host packages ------------------------------------------------------------------------------
packages=(linux-source-6.1 busybox-static build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils lz4 gzip
  e2fsprogs hyperv-daemons)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages (install as root): ${missing[*]}"
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

tarball=$(compgen -G "/usr/src/linux-source-6.1.tar.*" | sort | head -n1 || true)
[ -n "$tarball" ] || die "linux-source-6.1 is installed but /usr/src/linux-source-6.1.tar.* is missing"
src_version=$(dpkg-query -W -f '${Version}' linux-source-6.1)
busybox_bin=/bin/busybox
[ -x "$busybox_bin" ] || die "$busybox_bin not found (package busybox-static)"
"$busybox_bin" --list-full >/dev/null 2>&1 || die "$busybox_bin is not a multi-call busybox with --list-full"

# --- 2. Reproducibility inputs: the build date is the linux-source package's own date ----------------
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  # awk reads to the end so that zcat never dies of SIGPIPE under pipefail.
  changelog_date=$(zcat /usr/share/doc/linux-source-6.1/changelog.Debian.gz |
    awk '/^ -- / && !d { sub(/^ -- .*>  /, ""); d = $0 } END { print d }')
  SOURCE_DATE_EPOCH=$(date -u -d "$changelog_date" +%s)
fi
export SOURCE_DATE_EPOCH
export KBUILD_BUILD_TIMESTAMP
KBUILD_BUILD_TIMESTAMP=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%a %b %e %H:%M:%S UTC %Y')
export KBUILD_BUILD_USER=viridian
export KBUILD_BUILD_HOST=viridian-build
export KBUILD_BUILD_VERSION=1
export LC_ALL=C
export TZ=UTC

build_kernel() {
  # --- 3. Kernel source, unpacked once per package version ------------------------------------------
  src="$scratch/linux-source-6.1"
  if [ "$(cat "$scratch/source.stamp" 2>/dev/null)" != "$src_version" ]; then
    echo "unpacking $tarball ($src_version) into $scratch"
    rm -rf "$src" "$scratch/source.stamp"
    nice -n 19 tar -C "$scratch" -xf "$tarball"
    echo "$src_version" >"$scratch/source.stamp"
  fi
  obj="$scratch/obj"
  mkdir -p "$obj"

  kmake() {
    nice -n 19 ionice -c3 make -C "$src" O="$obj" ARCH=x86_64 -j"$jobs" "$@"
  }

  # --- 4. Configure: tinyconfig + fragment, then verify every fragment line survived ------------------
  # tinyconfig narrates its own fragment merges; only errors (stderr) matter here.
  kmake -s tinyconfig >/dev/null
  (cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config" "$guest_dir/kernel.config") >/dev/null
  kmake -s olddefconfig

  lost=()
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      grep -qxF -- "$line" "$obj/.config" || lost+=("$line (got: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$obj/.config" || echo absent))")
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      ! grep -qE "^${BASH_REMATCH[1]}=" "$obj/.config" || lost+=("$line (got: $(grep -E "^${BASH_REMATCH[1]}=" "$obj/.config"))")
    fi
  done <"$guest_dir/kernel.config"
  if [ ${#lost[@]} -gt 0 ]; then
    printf 'guest/build.sh: fragment option did not survive olddefconfig: %s\n' "${lost[@]}" >&2
    exit 1
  fi
  echo "config: all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$guest_dir/kernel.config") fragment options verified"

  # --- 5. Kernel ---------------------------------------------------------------------------------------
  kmake bzImage
  bzimage="$obj/arch/x86/boot/bzImage"
}

mkdir -p "$scratch"
if [ "$initramfs_only" != 1 ]; then
  build_kernel
fi

# --- 6. Initramfs: cpio newc, sorted, owner 0:0, fixed mtimes, LZ4 (legacy frame) ---------------------
root="$scratch/initramfs"
rm -rf "$root"
mkdir -p "$root"
for d in bin sbin usr/bin usr/sbin dev proc sys tmp run root mnt etc var/lib/hyperv; do
  install -d -m 0755 "$root/$d"
done
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox_bin" "$root/bin/busybox"
"$busybox_bin" --list-full | while IFS= read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

# Programs busybox lacks, from the Debian packages of section 1, at the paths the packages install them
# (a busybox applet of the same name gives way). They are dynamically linked: each brings exactly the
# shared objects `ldd` lists, at the paths it names (the ELF interpreter included), and nothing else.
# Programs too big for the image's budget go into an add-on initramfs instead (guest/addon-initramfs.sh).
debian_programs=(
  /sbin/mke2fs /sbin/e2fsck # e2fsprogs: ext4 (busybox's mke2fs makes only ext2)
  /usr/sbin/hv_kvp_daemon   # hyperv-daemons: the KVP integration service's guest half
)
# name:target symlinks as e2fsprogs installs them (mke2fs and e2fsck choose their defaults by argv[0]).
debian_links=(/sbin/mkfs.ext2:mke2fs /sbin/mkfs.ext3:mke2fs /sbin/mkfs.ext4:mke2fs
  /sbin/fsck.ext2:e2fsck /sbin/fsck.ext3:e2fsck /sbin/fsck.ext4:e2fsck)
# shellcheck source=guest/install-program.sh
. "$guest_dir/install-program.sh"
for prog in "${debian_programs[@]}"; do
  install_program "$root" "$prog" || die "cannot install $prog"
done
for link in "${debian_links[@]}"; do
  rm -f "$root${link%%:*}"
  ln -s "${link#*:}" "$root${link%%:*}"
done
# mount, e2fsck and mke2fs look for the mount table at /etc/mtab.
ln -s /proc/mounts "$root/etc/mtab"

install -m 0755 "$guest_dir/init" "$root/init"
(cd "$guest_dir/rootfs" && find . -type f | sort) | while IFS= read -r f; do
  mode=0644
  [ -x "$guest_dir/rootfs/$f" ] && mode=0755
  install -D -m "$mode" "$guest_dir/rootfs/$f" "$root/$f"
done
# The kernel opens /dev/console for /init's stdio before /init can mount devtmpfs.
mknod -m 0600 "$root/dev/console" c 5 1 || die "mknod /dev/console failed (run as root)"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
# LZ4, not gzip: unpacking runs on the guest's (emulated) CPU at boot, and inflating costs about 20
# instructions per byte where LZ4 costs a few (guest/README.md has the measurement). The kernel's unlz4
# reads only the legacy frame (-l); -12 is the densest level and decodes as fast as any.
initramfs="$scratch/initramfs.cpio.lz4"
(cd "$root" && find . -print0 | sort -z | cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) |
  lz4 -l -12 -q -c >"$initramfs"

# --- 7. Check limits, install into guest/ ------------------------------------------------------------
isize=$(stat -c %s "$initramfs")
[ "$isize" -lt "$initramfs_limit" ] || die "initramfs is $isize bytes, limit $initramfs_limit"
if [ "$initramfs_only" != 1 ]; then
  ksize=$(stat -c %s "$bzimage")
  [ "$ksize" -lt "$kernel_limit" ] || die "bzImage is $ksize bytes, limit $kernel_limit"
  install -m 0644 "$bzimage" "$guest_dir/bzImage"
  install -m 0644 "$obj/.config" "$guest_dir/kernel.config.full"
  echo "linux $(cat "$obj/include/config/kernel.release") from linux-source-6.1 $src_version"
  echo "bzImage:            $ksize bytes  sha256 $(sha256sum "$guest_dir/bzImage" | cut -d' ' -f1)"
fi
install -m 0644 "$initramfs" "$guest_dir/initramfs.cpio.lz4"
echo "initramfs.cpio.lz4: $isize bytes  sha256 $(sha256sum "$guest_dir/initramfs.cpio.lz4" | cut -d' ' -f1)"

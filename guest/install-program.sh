# Sourced by guest/build.sh and guest/addon-initramfs.sh (bash): install_program ROOT PROGRAM copies an
# installed, dynamically linked PROGRAM into the initramfs tree ROOT at the same path, with exactly the
# shared objects `ldd` lists for it (the ELF interpreter included) at the paths ldd names, and nothing
# else. A file already at PROGRAM's path (a busybox applet link) gives way. Fails with a message when the
# program is missing or a library is not found.

install_program() {
  local root=$1 prog=$2 libs lib
  [ -x "$prog" ] || {
    echo "install_program: $prog not found" >&2
    return 1
  }
  rm -f "$root$prog" && install -D -m 0755 "$prog" "$root$prog" || return 1
  # ldd lines: "libx.so.1 => /path (addr)", "/lib64/ld-linux-x86-64.so.2 (addr)", "linux-vdso.so.1 (addr)".
  libs=$(ldd "$prog") || {
    echo "install_program: ldd $prog failed" >&2
    return 1
  }
  if grep -q 'not found' <<<"$libs"; then
    echo "install_program: ldd $prog: $libs" >&2
    return 1
  fi
  while IFS= read -r lib; do
    [ -e "$root$lib" ] || install -D -m 0755 "$lib" "$root$lib" || return 1
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs")
}

// Owns: the QEMU guests of the network interop tests: Debian's stock kernel with its virtio-net modules, the
// bundled busybox initramfs, and a second initramfs archive whose /init runs one scripted network role
// (static address or DHCP, ping a peer, serve or fetch a file over HTTP, print its md5) and reports on the
// serial console with lines starting "VNET ". Also starting such a guest on a switch's ports socket.
// Must not: reach anything but the switch it is given (QEMU's only NIC is a stream netdev to that socket), or
// leave QEMU running (every guest is stopped by `stop()` or ends by powering off).
// Spec: Linux Documentation/driver-api/early-userspace/buffer-format.rst (concatenated initramfs archives,
// "newc" headers; a later archive's file replaces an earlier one's), QEMU 7.2 `-netdev stream`
// (addr.type=unix, server=off: the length-prefixed wire format of src/net/frame-stream.ts), busybox 1.35
// applets (ip, udhcpc, ping, wget, httpd, md5sum).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { decodeLz4Legacy } from "../guest/lz4.js";
import { BUNDLED_INITRD, QEMU } from "../linux/guest-console.js";
import { stockKernel, stockKernelDir } from "../linux/stock-kernel.js";

/** The modules virtio-net needs in Debian 6.1, in load order (`modinfo -F depends`). */
const MODULES = [
  "net/core/failover.ko",
  "drivers/net/net_failover.ko",
  "drivers/virtio/virtio_ring.ko",
  "drivers/virtio/virtio.ko",
  "drivers/virtio/virtio_pci_legacy_dev.ko",
  "drivers/virtio/virtio_pci_modern_dev.ko",
  "drivers/virtio/virtio_pci.ko",
  "drivers/net/virtio_net.ko",
];

const INIT = `#!/bin/sh
# /init of the network test guest: one role from the kernel command line (vnet_* variables), then report.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for a in ip udhcpc ping wget httpd md5sum insmod dd sleep poweroff cut seq; do
  [ -e /bin/$a ] || ln -s busybox /bin/$a
done
for m in ${MODULES.map((m) => m.split("/").pop()).join(" ")}; do insmod /lib/modules/$m || echo "VNET FAIL insmod $m"; done
ip link set lo up
ip link set eth0 up || echo "VNET FAIL no eth0"
echo "VNET DRIVER $(basename $(readlink /sys/class/net/eth0/device/driver))"
if [ -n "$vnet_ip" ]; then
  ip addr add "$vnet_ip" dev eth0
else
  udhcpc -i eth0 -s /etc/vnet-dhcp -n -q -t 10 -T 2 || echo "VNET FAIL dhcp"
fi
echo "VNET ADDR $(ip -4 -o addr show dev eth0 | cut -d' ' -f7)"
waitping() {
  for i in $(seq 1 600); do ping -c 1 -W 2 "$1" >/dev/null 2>&1 && { echo "VNET PING OK $1"; return 0; }; done
  echo "VNET FAIL ping $1"
}
mkdir -p /www
case "$vnet_role" in
serve)
  dd if=/dev/urandom of=/www/data bs=1048576 count="$vnet_mib" 2>/dev/null
  echo "VNET MD5 $(md5sum /www/data | cut -d' ' -f1)"
  httpd -p 80 -h /www
  waitping "$vnet_peer"
  ping -c 3 "$vnet_peer" >/dev/null && echo "VNET PING3 OK"
  echo "VNET READY"
  ;;
fetch)
  waitping "$vnet_peer"
  ping -c 3 "$vnet_peer" >/dev/null && echo "VNET PING3 OK"
  for i in $(seq 1 300); do wget -q -O /tmp/data "http://$vnet_peer/data" && break; sleep 1; done
  echo "VNET MD5 $(md5sum /tmp/data | cut -d' ' -f1)"
  ;;
nat)
  gw=$(ip route | grep '^default' | cut -d' ' -f3)
  echo "VNET GATEWAY $gw"
  wget -q -O /tmp/data "http://$gw:$vnet_port/$vnet_path" || echo "VNET FAIL wget"
  echo "VNET MD5 $(md5sum /tmp/data | cut -d' ' -f1)"
  echo "$vnet_page" > /www/index.html
  httpd -p 80 -h /www
  echo "VNET READY"
  ;;
esac
echo "VNET DONE"
[ -n "$vnet_stay" ] && while :; do sleep 3600; done
poweroff -f
`;

const DHCP_SCRIPT = `#!/bin/sh
# udhcpc event script: applies the lease (address, router, MTU) to the interface.
case "$1" in
bound|renew)
  ip addr flush dev "$interface"
  ip addr add "$ip/\${mask:-24}" dev "$interface"
  [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
  for r in $router; do ip route add default via "$r" dev "$interface"; break; done
  ;;
esac
exit 0
`;

/** A "newc" cpio archive of regular files and directories (mode, contents). */
function newc(files: { name: string; mode: number; data?: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const pad = (n: number) => new Uint8Array((4 - (n % 4)) % 4);
  let ino = 1;
  for (const f of [...files, { name: "TRAILER!!!", mode: 0 }]) {
    const data = "data" in f && f.data ? f.data : new Uint8Array(0);
    const name = new TextEncoder().encode(`${f.name}\0`);
    const fields = [ino++, f.mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length, 0];
    const header = new TextEncoder().encode(`070701${fields.map(hex).join("")}`);
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  }
  return Buffer.concat(parts);
}

function modulesFromDeb(): Map<string, Uint8Array> {
  const debs = join(stockKernelDir(), "debs");
  const deb = existsSync(debs)
    ? readdirSync(debs).find((n) => n.startsWith("linux-image-") && n.endsWith(".deb"))
    : undefined;
  if (!deb) throw new Error(`no linux-image .deb in ${debs} (guest/fetch-stock-kernel.sh puts it there)`);
  const out = join(stockKernelDir(), "net-modules");
  mkdirSync(out, { recursive: true });
  const r = spawnSync(
    "sh",
    [
      "-c",
      `dpkg-deb --fsys-tarfile "$1" | tar -C "$2" -x --wildcards './lib/modules/*/kernel/*'`,
      "sh",
      join(debs, deb),
      out,
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`extracting modules from ${deb}: ${r.stderr}`);
  const [version] = readdirSync(join(out, "lib/modules"));
  const mods = new Map<string, Uint8Array>();
  for (const m of MODULES)
    mods.set(m.split("/").pop()!, readFileSync(join(out, "lib/modules", version!, "kernel", m)));
  return mods;
}

export interface NetGuestImages {
  kernel: string;
  initrd: string;
}

let images: NetGuestImages | undefined;

/** The stock kernel and the test initramfs (built once per process, next to the cached stock kernel). */
export function netGuestImages(): NetGuestImages {
  if (images) return images;
  const kernel = stockKernel();
  const mods = modulesFromDeb();
  const enc = new TextEncoder();
  const extra = newc([
    { name: "init", mode: 0o100755, data: enc.encode(INIT) },
    { name: "etc", mode: 0o040755 },
    { name: "etc/vnet-dhcp", mode: 0o100755, data: enc.encode(DHCP_SCRIPT) },
    { name: "lib", mode: 0o040755 },
    { name: "lib/modules", mode: 0o040755 },
    ...[...mods].map(([name, data]) => ({ name: `lib/modules/${name}`, mode: 0o100644, data })),
  ]);
  // Written aside and renamed, so a test in another process never reads half a file.
  const initrd = join(stockKernelDir(), "net-guest.cpio.gz");
  // The bundled initramfs is LZ4 legacy, which has no end marker: Linux's unlz4 cannot find where a second
  // compressed archive begins. So both archives go into one gzip stream (the unpacker takes consecutive
  // cpio archives; the later archive's /init replaces the bundled one).
  const bundled = decodeLz4Legacy(readFileSync(BUNDLED_INITRD), 256 << 20);
  writeFileSync(`${initrd}.${process.pid}`, gzipSync(Buffer.concat([bundled, extra])));
  renameSync(`${initrd}.${process.pid}`, initrd);
  images = { kernel, initrd };
  return images;
}

export interface NetGuest {
  readonly child: ChildProcess;
  /** Serial output so far. */
  output(): string;
  /** Resolves with the first "VNET <tag> ..." line's rest; rejects when the guest ends first. */
  waitFor(tag: string): Promise<string>;
  /** Resolves when QEMU has exited. */
  exited: Promise<number | null>;
  stop(): void;
}

export function startNetGuest(
  images: NetGuestImages,
  socket: string,
  mac: string,
  vars: Record<string, string>,
): NetGuest {
  const append = [
    "console=ttyS0",
    "quiet",
    "panic=-1",
    // Under TCG on a loaded host the kernel's check that the IO-APIC timer ticks can time out and panic
    // ("IO-APIC + timer doesn't work!"); the option is Linux's own for virtual machines whose timer works.
    "no_timer_check",
    ...Object.entries(vars).map(([k, v]) => `vnet_${k}=${v}`),
  ].join(" ");
  const child = spawn(
    QEMU,
    [
      "-accel",
      "tcg",
      "-nographic",
      "-no-reboot",
      "-m",
      "256M",
      "-kernel",
      images.kernel,
      "-initrd",
      images.initrd,
      "-append",
      append,
      "-netdev",
      `stream,id=n0,server=off,addr.type=unix,addr.path=${socket}`,
      "-device",
      `virtio-net-pci,netdev=n0,mac=${mac}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  const waiters: (() => void)[] = [];
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (s: string) => {
    out += s;
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (s: string) => (err += s));
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      done = true;
      for (const w of [...waiters]) w();
      resolve(code);
    }),
  );
  const tail = () => `\n--- serial (last 3000 chars) ---\n${out.slice(-3000)}\n--- qemu stderr ---\n${err}`;
  return {
    child,
    output: () => out,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
    waitFor: (tag) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const fail = /VNET FAIL ([^\r\n]*)/.exec(out);
          const m = new RegExp(`VNET ${tag}(?: ([^\\r\\n]*))?\\r?\\n`).exec(out);
          if (m) {
            waiters.splice(waiters.indexOf(check), 1);
            resolve(m[1] ?? "");
          } else if (fail || done) {
            waiters.splice(waiters.indexOf(check), 1);
            reject(
              new Error(
                `guest ${mac}: ${fail ? `failed: ${fail[1]}` : `ended before 'VNET ${tag}'`}${tail()}`,
              ),
            );
          }
        };
        waiters.push(check);
        check();
      }),
  };
}

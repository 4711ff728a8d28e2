import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { command, parseMemorySize, parseRunArgs, STATUS_GUEST_STOPPED, UsageError } from "./run-command.js";

test("memory sizes parse with K/M/G suffixes and are bounded", () => {
  assert.equal(parseMemorySize("128M"), 128 * 1024 * 1024);
  assert.equal(parseMemorySize("1G"), 1024 ** 3);
  assert.equal(parseMemorySize("65536K"), 64 * 1024 * 1024);
  assert.equal(parseMemorySize("256"), 256 * 1024 * 1024);
  assert.equal(parseMemorySize("64G"), 64 * 1024 ** 3, "the largest guest RAM");
  for (const bad of ["", "12X", "-1M", "1M", "1", "65G", "65537M", "4097K"])
    assert.throws(() => parseMemorySize(bad), UsageError, bad);
  assert.throws(() => parseMemorySize("65G"), /between 2M and 64G \(the largest guest RAM\)/);
});

test("guest RAM the host will not reserve is a clear error naming the cause, never an internal error", (t) => {
  // An address-space limit (ulimit -v, 4 GiB) below the guest's 8 GiB makes the reservation fail on any
  // host, for the bundled Linux guest and for a Multiboot kernel alike.
  const bin = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));
  const demo = fileURLToPath(new URL("../../../guest/demo.elf", import.meta.url));
  for (const extra of [[], ["--kernel", demo]]) {
    const r = spawnSync(
      "bash",
      ["-c", 'ulimit -v 4194304 && exec "$0" "$@"', process.execPath, bin, "run", "--memory", "8G", ...extra],
      { encoding: "utf8", input: "" },
    );
    if (r.error) {
      t.skip(`bash is not available: ${r.error.message}`);
      return;
    }
    assert.equal(r.status, 2, `status ${r.status}, stderr: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^viridian run: cannot allocate 8589934592 bytes of guest RAM: the host refused to reserve 8192 MiB of address space for guest RAM \(.+\): its memory, overcommit policy or address-space limit \(ulimit -v\) allows less\n$/,
    );
  }
});

test("run options parse; unknown options and missing values are usage errors", () => {
  const o = parseRunArgs([
    "--kernel",
    "k.elf",
    "--cmdline",
    "a b",
    "--memory",
    "64M",
    "--trace",
    "--serial-log",
    "s.log",
    "--initrd",
    "i.gz",
    "--cpus",
    "2",
    "--rtc-offset",
    "-3600",
  ]);
  assert.deepEqual(o, {
    kernel: "k.elf",
    cmdline: "a b",
    memory: 64 * 1024 * 1024,
    trace: true,
    serialLog: "s.log",
    initrd: "i.gz",
    cpus: 2,
    rtcOffset: -3600,
    state: false,
    disks: [],
    nics: [],
  });
  // --disk is repeatable (LUN order), ":ro" makes one read-only; one --dvd.
  const d = parseRunArgs(["--disk", "a.vhdx", "--disk", "b.img:ro", "--dvd", "c.iso", "--disk", "x:y"]);
  assert.deepEqual(d.disks, [
    { path: "a.vhdx", readOnly: false },
    { path: "b.img", readOnly: true },
    { path: "x:y", readOnly: false },
  ]);
  assert.equal(d.dvd, "c.iso");
  assert.throws(() => parseRunArgs(["--disk", ":ro"]), UsageError);
  assert.throws(() => parseRunArgs(["--dvd", "a.iso", "--dvd", "b.iso"]), UsageError);
  assert.throws(() => parseRunArgs(["--disk"]), UsageError);
  assert.throws(() => parseRunArgs(["--rtc-offset", "1.5"]), UsageError);
  assert.throws(() => parseRunArgs(["--cpus", "0"]), UsageError);
  assert.equal(parseRunArgs(["--pace-mips", "20"]).paceMips, 20);
  assert.throws(() => parseRunArgs(["--pace-mips", "0"]), UsageError);
  assert.equal(parseRunArgs(["--stop-timeout", "5"]).stopTimeout, 5);
  assert.equal(parseRunArgs(["--stop-timeout", "0"]).stopTimeout, 0);
  assert.throws(() => parseRunArgs(["--stop-timeout", "-1"]), UsageError);
  assert.throws(() => parseRunArgs(["--stop-timeout", "soon"]), UsageError);
  assert.throws(() => parseRunArgs(["--kernel"]), UsageError);
  assert.throws(() => parseRunArgs(["--bogus"]), UsageError);
  assert.throws(() => parseRunArgs(["--max-instructions", "0"]), UsageError);
});

test("--nic: a switch name or socket path, an optional MAC (else 00:15:5d:xx:xx:xx); bad forms are usage errors", () => {
  const prev = process.env.VIRIDIAN_RUNTIME_DIR;
  process.env.VIRIDIAN_RUNTIME_DIR = "/run/v";
  try {
    const o = parseRunArgs([
      "--nic",
      "switch=lab,mac=00:15:5D:00:00:01",
      "--nic",
      "switch=/tmp/s/ports.sock",
    ]);
    assert.deepEqual(o.nics[0], {
      mac: "00:15:5d:00:00:01",
      attach: { kind: "switch", socket: "/run/v/switches/lab/ports.sock" },
    });
    assert.deepEqual(o.nics[1]!.attach, { kind: "switch", socket: "/tmp/s/ports.sock" });
    assert.match(o.nics[1]!.mac, /^00:15:5d(:[0-9a-f]{2}){3}$/);
    for (const bad of [
      "",
      "lab",
      "switch=",
      "mac=00:15:5d:00:00:01",
      "switch=a,switch=b",
      "switch=a,mac=zz",
      "switch=a,vlan=3",
      "switch=bad name",
    ])
      assert.throws(() => parseRunArgs(["--nic", bad]), UsageError, bad);
  } finally {
    if (prev === undefined) delete process.env.VIRIDIAN_RUNTIME_DIR;
    else process.env.VIRIDIAN_RUNTIME_DIR = prev;
  }
});

test("--nic user: QEMU's hostfwd spelling, 127.0.0.1 when no host address is given; bad forms are usage errors", () => {
  const o = parseRunArgs([
    "--nic",
    "user",
    "--nic",
    "user,hostfwd=tcp::8080-:80,hostfwd=udp:0.0.0.0:5353-:53,hostfwd=:127.0.0.2:2222-:22,mac=00:15:5d:00:00:02",
  ]);
  assert.deepEqual(o.nics[0]!.attach, { kind: "user", hostForwards: [] });
  assert.match(o.nics[0]!.mac, /^00:15:5d(:[0-9a-f]{2}){3}$/);
  assert.deepEqual(o.nics[1], {
    mac: "00:15:5d:00:00:02",
    attach: {
      kind: "user",
      hostForwards: [
        { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 },
        { protocol: "udp", hostAddress: "0.0.0.0", hostPort: 5353, guestPort: 53 },
        { protocol: "tcp", hostAddress: "127.0.0.2", hostPort: 2222, guestPort: 22 },
      ],
    },
  });
  for (const bad of [
    "user,switch=lab",
    "user,hostfwd",
    "user,hostfwd=",
    "user,hostfwd=tcp::0-:80",
    "user,hostfwd=tcp::8080-:65536",
    "user,hostfwd=tcp::8080-10.0.2.15:80",
    "user,hostfwd=sctp::8080-:80",
    "user,hostfwd=tcp:localhost:8080-:80",
    "user,mac=01:00:5e:00:00:01,mac=00:15:5d:00:00:01",
    "user,mac=zz",
    "user,vlan=3",
    "users",
    "switch=lab,hostfwd=tcp::8080-:80",
  ])
    assert.throws(() => parseRunArgs(["--nic", bad]), UsageError, bad);
});

test("a NIC whose switch is not running is a clear build error (status 2), not a crash", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-nic-"));
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void errors.push(a.join(" "));
  try {
    const status = await command.run(["--nic", `switch=${join(dir, "ports.sock")}`]);
    assert.equal(status, 2);
    assert.match(
      errors.join("\n"),
      /NIC 0 \(00:15:5d:[0-9a-f:]+\): cannot connect to the switch socket .*ports\.sock: ENOENT/,
    );
  } finally {
    console.error = orig;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a kernel that halts with interrupts off ends with status 3; its serial output reaches the log", async () => {
  // Multiboot a.out-kludge image: mov dx,0x3f8; mov al,'k'; out dx,al; cli; hlt
  const file = new Uint8Array(64);
  const dv = new DataView(file.buffer);
  const flags = 0x10003;
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, -(0x1badb002 + flags) >>> 0, true);
  dv.setUint32(12, 0x100000, true);
  dv.setUint32(16, 0x100000, true);
  dv.setUint32(20, 0, true);
  dv.setUint32(24, 0, true);
  dv.setUint32(28, 0x100020, true);
  file.set([0x66, 0xba, 0xf8, 0x03, 0xb0, 0x6b, 0xee, 0xfa, 0xf4], 32);
  const dir = mkdtempSync(join(tmpdir(), "viridian-run-"));
  const origWrite = process.stdout.write.bind(process.stdout);
  const origError = console.error;
  const errors: string[] = [];
  try {
    writeFileSync(join(dir, "k.bin"), file);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    console.error = (m: string) => errors.push(m);
    const status = await command.run([
      "--kernel",
      join(dir, "k.bin"),
      "--serial-log",
      join(dir, "serial.txt"),
    ]);
    process.stdout.write = origWrite;
    assert.equal(status, STATUS_GUEST_STOPPED);
    assert.equal(readFileSync(join(dir, "serial.txt"), "latin1"), "k");
    assert.match(errors.join("\n"), /the guest halted with interrupts disabled/);
    assert.match(errors.join("\n"), /cr0=/);
    errors.length = 0;
    writeFileSync(join(dir, "bad.bin"), new Uint8Array(16));
    assert.equal(await command.run(["--kernel", join(dir, "bad.bin")]), 2);
    assert.match(errors.join("\n"), /no Multiboot v1 header/);
  } finally {
    process.stdout.write = origWrite;
    console.error = origError;
    rmSync(dir, { recursive: true, force: true });
  }
});

// Tests of the VM configuration as data (defaults, a JSON round trip, hostile files refused field by field)
// and of buildVm's refusals (files it cannot read, images it cannot boot, devices that do not exist yet).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkVmConfig, vmConfig, VmConfigError } from "./vm-config.js";
import { buildVm, VmBuildError } from "./build-vm.js";

test("a VmConfig is plain data: defaults, and it survives JSON unchanged", () => {
  const c = vmConfig({ memoryBytes: 64 << 20, boot: { kernel: "/k", cmdline: "x" }, time: { paceMips: 20 } });
  assert.deepEqual(c, {
    memoryBytes: 64 << 20,
    processors: 1,
    boot: { kernel: "/k", initrd: null, cmdline: "x" },
    disks: [],
    dvd: null,
    nics: [],
    time: { source: "host", paceMips: 20 },
    rtcOffsetSeconds: 0,
  });
  const withDisks = {
    ...c,
    disks: [{ path: "/d.vhdx", readOnly: true }],
    dvd: "/x.iso",
    nics: [
      { mac: "00:15:5d:01:02:03", attach: { kind: "switch" as const, socket: "/run/sw/ports.sock" } },
      {
        mac: "00:15:5d:01:02:04",
        attach: {
          kind: "user" as const,
          hostForwards: [
            { protocol: "tcp" as const, hostAddress: "127.0.0.1", hostPort: 2222, guestPort: 22 },
            { protocol: "udp" as const, hostAddress: "0.0.0.0", hostPort: 5353, guestPort: 53 },
          ],
        },
      },
    ],
  };
  assert.deepEqual(checkVmConfig(JSON.parse(JSON.stringify(withDisks))), withDisks);
});

test("a NIC written before attachments existed ({mac, switchSocket}) is read as a switch NIC", () => {
  const old = { ...vmConfig({}), nics: [{ mac: "00:15:5D:01:02:03", switchSocket: "/run/sw/ports.sock" }] };
  assert.deepEqual(checkVmConfig(JSON.parse(JSON.stringify(old))).nics, [
    { mac: "00:15:5d:01:02:03", attach: { kind: "switch", socket: "/run/sw/ports.sock" } },
  ]);
});

test("a hostile configuration is refused with the field that is wrong", () => {
  const good = vmConfig({});
  const sw = (socket: string) => ({ kind: "switch", socket });
  const fwd = (f: Record<string, unknown>) => ({
    protocol: "tcp",
    hostAddress: "127.0.0.1",
    hostPort: 8080,
    guestPort: 80,
    ...f,
  });
  const user = (...hostForwards: unknown[]) => ({
    mac: "00:15:5d:00:00:01",
    attach: { kind: "user", hostForwards },
  });
  const bad: Array<[string, unknown]> = [
    ["config", null],
    ["config", []],
    ["extra", { ...good, extra: 1 }],
    ["memoryBytes", { ...good, memoryBytes: 1.5 }],
    ["memoryBytes", { ...good, memoryBytes: 4095 * 1024 }],
    ["memoryBytes", { ...good, memoryBytes: 2 ** 60 }],
    ["memoryBytes", { ...good, memoryBytes: "256M" }],
    ["processors", { ...good, processors: 0 }],
    ["processors", { ...good, processors: 65 }],
    ["boot", { ...good, boot: "vmlinuz" }],
    ["boot.kernel", { ...good, boot: { ...good.boot, kernel: "" } }],
    ["boot.kernel", { ...good, boot: { ...good.boot, kernel: "a\0b" } }],
    ["boot.kernel", { ...good, boot: { ...good.boot, kernel: 7 } }],
    ["boot.cmdline", { ...good, boot: { ...good.boot, cmdline: "x".repeat(5000) } }],
    ["boot.initrd", { ...good, boot: { ...good.boot, initrd: 1 } }],
    ["boot.root", { ...good, boot: { ...good.boot, root: "/" } }],
    ["disks", { ...good, disks: {} }],
    ["disks", { ...good, disks: new Array(65).fill({ path: "/d", readOnly: false }) }],
    // 64 disks fill the controller's LUNs: no room for the DVD.
    ["disks", { ...good, disks: new Array(64).fill({ path: "/d", readOnly: false }), dvd: "/x.iso" }],
    ["disks[0]", { ...good, disks: ["/d"] }],
    ["disks[0].readOnly", { ...good, disks: [{ path: "/d", readOnly: "yes" }] }],
    ["disks[0].path", { ...good, disks: [{ path: "", readOnly: false }] }],
    ["dvd", { ...good, dvd: 3 }],
    ["nics", { ...good, nics: {} }],
    [
      "nics",
      {
        ...good,
        nics: new Array(9).fill(null).map((_, i) => ({ mac: `00:15:5d:00:00:0${i}`, attach: sw("/s") })),
      },
    ],
    ["nics[0]", { ...good, nics: ["/s"] }],
    ["nics[0].mac", { ...good, nics: [{ mac: "00:15:5d:00:00", attach: sw("/s") }] }],
    ["nics[0].mac", { ...good, nics: [{ mac: "01:00:5e:00:00:01", attach: sw("/s") }] }],
    ["nics[0].mac", { ...good, nics: [{ mac: 42, attach: sw("/s") }] }],
    ["nics[0].mac", { ...good, nics: [{ attach: sw("/s") }] }],
    ["nics[0].switchSocket", { ...good, nics: [{ mac: "00:15:5d:00:00:01", switchSocket: "" }] }],
    ["nics[0].vlan", { ...good, nics: [{ mac: "00:15:5d:00:00:01", switchSocket: "/s", vlan: 2 }] }],
    // The old form and the new one are not mixed.
    [
      "nics[0].attach",
      { ...good, nics: [{ mac: "00:15:5d:00:00:01", switchSocket: "/s", attach: sw("/t") }] },
    ],
    ["nics[0].attach", { ...good, nics: [{ mac: "00:15:5d:00:00:01" }] }],
    ["nics[0].attach", { ...good, nics: [{ mac: "00:15:5d:00:00:01", attach: "/s" }] }],
    ["nics[0].attach.kind", { ...good, nics: [{ mac: "00:15:5d:00:00:01", attach: { kind: "tap" } }] }],
    ["nics[0].attach.socket", { ...good, nics: [{ mac: "00:15:5d:00:00:01", attach: sw("") }] }],
    [
      "nics[0].attach.hostForwards",
      {
        ...good,
        nics: [{ mac: "00:15:5d:00:00:01", attach: { kind: "switch", socket: "/s", hostForwards: [] } }],
      },
    ],
    [
      "nics[0].attach.hostForwards",
      { ...good, nics: [{ mac: "00:15:5d:00:00:01", attach: { kind: "user" } }] },
    ],
    [
      "nics[0].attach.hostForwards",
      { ...good, nics: [user(...new Array(33).fill(null).map((_, i) => fwd({ hostPort: 1000 + i })))] },
    ],
    ["nics[0].attach.hostForwards[0]", { ...good, nics: [user("tcp:127.0.0.1:80-:80")] }],
    ["nics[0].attach.hostForwards[0].protocol", { ...good, nics: [user(fwd({ protocol: "sctp" }))] }],
    ["nics[0].attach.hostForwards[0].hostAddress", { ...good, nics: [user(fwd({ hostAddress: "" }))] }],
    [
      "nics[0].attach.hostForwards[0].hostAddress",
      { ...good, nics: [user(fwd({ hostAddress: "localhost" }))] },
    ],
    [
      "nics[0].attach.hostForwards[0].hostAddress",
      { ...good, nics: [user(fwd({ hostAddress: "127.0.0.256" }))] },
    ],
    ["nics[0].attach.hostForwards[0].hostAddress", { ...good, nics: [user(fwd({ hostAddress: "::1" }))] }],
    ["nics[0].attach.hostForwards[0].hostPort", { ...good, nics: [user(fwd({ hostPort: 0 }))] }],
    ["nics[0].attach.hostForwards[0].hostPort", { ...good, nics: [user(fwd({ hostPort: 65536 }))] }],
    ["nics[0].attach.hostForwards[0].hostPort", { ...good, nics: [user(fwd({ hostPort: "80" }))] }],
    ["nics[0].attach.hostForwards[0].guestPort", { ...good, nics: [user(fwd({ guestPort: 8.5 }))] }],
    [
      "nics[0].attach.hostForwards[0].guestAddress",
      { ...good, nics: [user(fwd({ guestAddress: "10.0.2.15" }))] },
    ],
    // Two forwards that want the same host socket, in one NIC or in two.
    ["nics[0].attach.hostForwards[1]", { ...good, nics: [user(fwd({}), fwd({ guestPort: 81 }))] }],
    [
      "nics[1].attach.hostForwards[0]",
      {
        ...good,
        nics: [user(fwd({})), { ...user(fwd({ hostAddress: "0.0.0.0" })), mac: "00:15:5d:00:00:02" }],
      },
    ],
    [
      "nics",
      {
        ...good,
        nics: [
          { mac: "00:15:5d:00:00:01", attach: sw("/s") },
          { mac: "00:15:5D:00:00:01", attach: sw("/t") },
        ],
      },
    ],
    ["time.source", { ...good, time: { source: "deterministic", paceMips: null } }],
    ["time.paceMips", { ...good, time: { source: "host", paceMips: 0 } }],
    ["time.paceMips", { ...good, time: { source: "host", paceMips: Number.NaN } }],
    ["rtcOffsetSeconds", { ...good, rtcOffsetSeconds: 1e12 }],
    ["rtcOffsetSeconds", { ...good, rtcOffsetSeconds: 0.5 }],
  ];
  for (const [field, value] of bad) {
    assert.throws(
      () => checkVmConfig(value),
      (e: unknown) => e instanceof VmConfigError && e.field === field,
      `expected a refusal of ${field}: ${JSON.stringify(value)?.slice(0, 80)}`,
    );
  }
});

test("buildVm refuses what it cannot build, with a clear error and no machine", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-buildvm-"));
  const host = { serial: () => undefined };
  try {
    await assert.rejects(
      () => buildVm(vmConfig({ disks: [{ path: join(dir, "d.vhdx"), readOnly: false }] }), host),
      (e: unknown) => e instanceof VmBuildError && /^disk 0 \(.*d\.vhdx\): .*no such file/.test(e.message),
    );
    await assert.rejects(
      () => buildVm(vmConfig({ dvd: join(dir, "x.iso") }), host),
      (e: unknown) => e instanceof VmBuildError && /^the DVD \(.*x\.iso\): .*no such file/.test(e.message),
    );
    // A file that is not an ISO 9660 image is refused as a DVD (it would open as a raw disk).
    writeFileSync(join(dir, "not.iso"), new Uint8Array(64 * 1024));
    await assert.rejects(
      () => buildVm(vmConfig({ dvd: join(dir, "not.iso") }), host),
      (e: unknown) => e instanceof VmBuildError && /not an ISO 9660 image/.test(e.message),
    );
    // A VHDX signature with nothing valid behind it names the image and what is wrong.
    writeFileSync(join(dir, "bad.vhdx"), new TextEncoder().encode("vhdxfile"));
    await assert.rejects(
      () => buildVm(vmConfig({ disks: [{ path: join(dir, "bad.vhdx"), readOnly: true }] }), host),
      (e: unknown) => e instanceof VmBuildError && /^disk 0 \(.*bad\.vhdx\): .*VHDX/.test(e.message),
    );
    await assert.rejects(
      () => buildVm(vmConfig({ boot: { kernel: join(dir, "missing") } }), host),
      (e: unknown) => e instanceof VmBuildError && /cannot read kernel/.test(e.message),
    );
    writeFileSync(join(dir, "junk"), new Uint8Array(64));
    await assert.rejects(
      () => buildVm(vmConfig({ boot: { kernel: join(dir, "junk") } }), host),
      (e: unknown) => e instanceof VmBuildError && /no Multiboot v1 header/.test(e.message),
    );
    // A bzImage signature with nothing valid behind it: the Linux loader names the field.
    const fake = new Uint8Array(0x400);
    fake.set([0x55, 0xaa], 0x1fe);
    fake.set([0x48, 0x64, 0x72, 0x53], 0x202);
    writeFileSync(join(dir, "fake-bzimage"), fake);
    await assert.rejects(
      () => buildVm(vmConfig({ boot: { kernel: join(dir, "fake-bzimage") } }), host),
      (e: unknown) => e instanceof VmBuildError && e.message.startsWith(join(dir, "fake-bzimage")),
    );
    await assert.rejects(() => buildVm({ ...vmConfig({}), processors: 0 }, host), VmConfigError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a service VM file's NICs name switches: the worker resolves each to its ports socket, and refuses a name that is a path", async () => {
  const { readVmConfig } = await import("./worker-main.js");
  const dir = mkdtempSync(join(tmpdir(), "viridian-vmfile-"));
  try {
    const machine = { ...vmConfig({}), nics: [{ mac: "02:00:00:00:00:01", switch: "lan" }] };
    writeFileSync(join(dir, "config.json"), JSON.stringify({ schemaVersion: 2, machine }));
    assert.deepEqual(readVmConfig(dir, "/run/sw").nics, [
      { mac: "02:00:00:00:00:01", attach: { kind: "switch", socket: "/run/sw/lan/ports.sock" } },
    ]);
    assert.throws(() => readVmConfig(dir, null), /--switches/);
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ machine: { ...machine, nics: [{ mac: "02:00:00:00:00:01", switch: "../x" }] } }),
    );
    assert.throws(
      () => readVmConfig(dir, "/run/sw"),
      (e: unknown) => e instanceof VmConfigError,
    );
    // A machine section without NICs (schema 1) means none.
    const { nics: _none, ...v1 } = machine;
    writeFileSync(join(dir, "config.json"), JSON.stringify({ machine: v1 }));
    assert.deepEqual(readVmConfig(dir, "/run/sw").nics, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

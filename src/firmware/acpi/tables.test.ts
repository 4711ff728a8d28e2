import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestMemory } from "../../memory/guest-memory.js";
import { standardDevices, vmbusDevice, type AcpiDevice } from "./dsdt.js";
import { AmlError } from "./aml.js";
import { ACPI_HW, buildAcpiTables, checksumOk, writeAcpiTables, type AcpiLayout } from "./tables.js";

/** A device with an Interrupt descriptor (encoding coverage). */
const vmbus: AcpiDevice = {
  name: "VMB2",
  hid: "VMBus",
  uid: 0,
  resources: [{ kind: "interrupt", gsis: [5] }],
};

function get(layout: AcpiLayout, sig: string): { address: number; bytes: Uint8Array; view: DataView } {
  const t = layout.tables.find((x) => x.signature === sig);
  assert.ok(t, sig);
  return {
    address: t.address,
    bytes: t.bytes,
    view: new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength),
  };
}
const u64 = (v: DataView, o: number): number => Number(v.getBigUint64(o, true));

test("every table has a valid checksum and the pointers chain RSDP -> XSDT -> FADT -> FACS/DSDT", () => {
  const l = buildAcpiTables({ cpus: 4 });
  const rsdp = get(l, "RSDP");
  assert.equal(rsdp.address, 0xe0000);
  assert.equal(new TextDecoder().decode(rsdp.bytes.subarray(0, 8)), "RSD PTR ");
  assert.ok(checksumOk(rsdp.bytes, 0, 20), "RSDP v1 checksum");
  assert.ok(checksumOk(rsdp.bytes, 0, 36), "RSDP extended checksum");
  assert.equal(rsdp.view.getUint8(15), 2);
  const xsdt = get(l, "XSDT");
  assert.equal(u64(rsdp.view, 24), xsdt.address);
  for (const sig of ["XSDT", "FACP", "APIC", "DSDT"]) {
    const t = get(l, sig);
    assert.ok(checksumOk(t.bytes), `${sig} checksum`);
    assert.equal(t.view.getUint32(4, true), t.bytes.length, `${sig} length`);
  }
  const fadt = get(l, "FACP");
  const madt = get(l, "APIC");
  assert.deepEqual([u64(xsdt.view, 36), u64(xsdt.view, 44)], [fadt.address, madt.address]);
  assert.equal(get(l, "FACS").address % 64, 0);
  assert.equal(fadt.view.getUint32(36, true), get(l, "FACS").address);
  assert.equal(u64(fadt.view, 140), get(l, "DSDT").address);
  assert.equal(fadt.view.getUint8(8), 6);
  assert.equal(fadt.view.getUint32(64, true), 0x604);
  assert.equal(fadt.view.getUint16(46, true), 9);
  assert.equal(fadt.view.getUint8(128), 6);
  assert.equal(u64(fadt.view, 120), 0xcf9);
  // Every table but the RSDP lies inside the region the e820 map marks ACPI.
  for (const t of l.tables.filter((x) => x.signature !== "RSDP"))
    assert.ok(t.address >= l.region.base && t.address + t.bytes.length <= l.region.base + l.region.length);
  // MADT: one enabled local APIC per CPU, with distinct APIC IDs.
  const ids: number[] = [];
  for (let o = 44; o < madt.bytes.length; o += madt.bytes[o + 1]!)
    if (madt.bytes[o] === 0) ids.push(madt.bytes[o + 3]!);
  assert.deepEqual(ids, [0, 1, 2, 3]);
  assert.equal(madt.view.getUint32(36, true), ACPI_HW.localApic);
});

test("tables are written into guest RAM and bad configurations are refused", () => {
  const m = new GuestMemory(16 * 1024 * 1024);
  const l = buildAcpiTables({ cpus: 1 });
  writeAcpiTables(m, l);
  const back = new Uint8Array(36);
  m.read(0xe0000, back);
  assert.deepEqual(back, get(l, "RSDP").bytes);
  assert.throws(() => buildAcpiTables({ cpus: 0 }), AmlError);
  assert.throws(() => buildAcpiTables({ cpus: 256 }), AmlError);
  assert.throws(() => buildAcpiTables({ cpus: 1, devices: [vmbus, vmbus] }), /duplicate/);
  assert.throws(() => buildAcpiTables({ cpus: 1 }, 0x80000, 0x100), /region holds/);
});

function haveIasl(): boolean {
  return spawnSync("iasl", ["-v"], { stdio: "ignore" }).status === 0;
}

test("iasl disassembles every table without errors and recompiles the DSDT", (t) => {
  if (!haveIasl()) {
    t.skip("iasl not installed (Debian package acpica-tools; .ci/run installs it)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "viridian-acpi-"));
  try {
    const l = buildAcpiTables({ cpus: 2, devices: [...standardDevices(), vmbus, vmbusDevice()] });
    const dsl: Record<string, string> = {};
    // iasl cannot read a bare RSDP (it has no table header); its checksums are checked above.
    for (const tb of l.tables.filter((x) => x.signature !== "RSDP")) {
      const base = tb.signature.toLowerCase();
      writeFileSync(join(dir, `${base}.dat`), tb.bytes);
      const r = spawnSync("iasl", ["-d", `${base}.dat`], { cwd: dir, encoding: "utf8" });
      assert.equal(r.status, 0, `iasl -d ${base}.dat: ${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stdout + r.stderr, /error|invalid|warning/i, base);
      dsl[tb.signature] = readFileSync(join(dir, `${base}.dsl`), "utf8");
      assert.doesNotMatch(dsl[tb.signature]!, /Invalid|Incorrect checksum|\*\*\*\*/, base);
    }
    const d = dsl.DSDT!;
    for (const want of [
      "Name (\\_S5, Package (0x04)",
      "Scope (\\_SB)",
      "Device (COM1)",
      'EisaId ("PNP0501")',
      'EisaId ("PNP0B00")',
      'EisaId ("PNP0100")',
      'EisaId ("PNP0000")',
      'EisaId ("PNP0303")',
      "0x03F8,             // Range Minimum",
      'Name (_HID, "VMBus")',
      "Device (VMBS)",
      "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
    ])
      assert.ok(d.includes(want), `DSDT disassembly lacks ${want}`);
    assert.match(dsl.FACP!, /Reset Register Supported \(V2\) : 1/);
    assert.match(dsl.FACP!, /PM1A Control Block Address : 00000604/);
    assert.match(dsl.APIC!, /Local Apic Address : FEE00000/);
    assert.equal((dsl.APIC!.match(/\[Processor Local APIC\]/g) ?? []).length, 2);
    assert.match(dsl.APIC!, /Interrupt Input LINT : 01/);

    // iasl's compiler insists on 7- or 8-character _HID strings, so Hyper-V's "VMBus" ID (which Linux's
    // hv_vmbus matches) only passes the disassembler; the recompile check uses the standard device set.
    const std = get(buildAcpiTables({ cpus: 2 }), "DSDT").bytes;
    writeFileSync(join(dir, "std.dat"), std);
    assert.equal(spawnSync("iasl", ["-d", "std.dat"], { cwd: dir }).status, 0);
    const c = spawnSync("iasl", ["-oa", "-p", "recompiled", "std.dsl"], { cwd: dir, encoding: "utf8" });
    assert.equal(c.status, 0, c.stdout + c.stderr);
    assert.match(c.stdout, /0 Errors/);
    // Without optimisations iasl emits the same AML except that it leaves End Tag checksums zero.
    const ours = std.subarray(36);
    const theirs = readFileSync(join(dir, "recompiled.aml")).subarray(36);
    assert.equal(theirs.length, ours.length);
    const differing = [...ours.keys()].filter((i) => ours[i] !== theirs[i]);
    assert.ok(
      differing.every((i) => ours[i - 1] === 0x79 && theirs[i] === 0),
      `bytes differ at ${differing.join(",")}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the VMBus node: _HID "VMBus", _UID 0 and an empty _CRS (an end tag only), as hv_vmbus needs', () => {
  const aml = get(buildAcpiTables({ cpus: 1, devices: [vmbusDevice()] }), "DSDT").bytes;
  const text = String.fromCharCode(...aml);
  const at = text.indexOf("VMBS");
  assert.ok(at > 0);
  const dev = aml.subarray(at);
  const find = (pattern: number[]) => dev.findIndex((_, i) => pattern.every((b, j) => dev[i + j] === b));
  assert.ok(
    find([0x08, 0x5f, 0x48, 0x49, 0x44, 0x0d, 0x56, 0x4d, 0x42, 0x75, 0x73, 0x00]) > 0,
    'Name(_HID, "VMBus")',
  );
  assert.ok(find([0x08, 0x5f, 0x55, 0x49, 0x44, 0x00]) > 0, "Name(_UID, Zero)");
  // Name(_CRS, Buffer(2) {0x79, checksum}): BufferOp, PkgLength 5, ByteConst 2, end tag.
  assert.ok(
    find([0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x05, 0x0a, 0x02, 0x79]) > 0,
    "Name(_CRS, ResourceTemplate() {})",
  );
});

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { GuestMemory } from "../memory/guest-memory.js";
import {
  BootError,
  E820_ACPI,
  E820_RAM,
  E820_RESERVED,
  LINUX_LAYOUT,
  e820Map,
  loadLinux,
  parseBzImage,
} from "./linux-boot.js";
import { describeLinuxLayout, prepareLinuxBoot } from "./prepare-linux.js";
import { checksumOk } from "./acpi/tables.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Fields {
  setupSects?: number;
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  relocatable?: number;
  align?: number;
  pref?: number;
  initSize?: number;
  cmdlineSize?: number;
  initrdMax?: number;
  kernelBytes?: number;
  bootFlag?: number;
  magic?: number;
  jump?: number;
}

/** A synthetic bzImage: a setup area with a protocol 2.15 header, then `kernelBytes` of payload. */
function bzImage(f: Fields = {}): Uint8Array {
  const setupSects = f.setupSects ?? 4;
  const kernelBytes = f.kernelBytes ?? 0x3000;
  const sects = setupSects || 4;
  const file = new Uint8Array((sects + 1) * 512 + kernelBytes);
  const v = new DataView(file.buffer);
  v.setUint8(0x1f1, setupSects);
  v.setUint32(0x1f4, Math.ceil(kernelBytes / 16), true);
  v.setUint16(0x1fe, f.bootFlag ?? 0xaa55, true);
  v.setUint16(0x200, f.jump ?? 0x6aeb, true);
  v.setUint32(0x202, f.magic ?? 0x53726448, true);
  v.setUint16(0x206, f.version ?? 0x020f, true);
  v.setUint8(0x211, f.loadflags ?? 0x01);
  v.setUint32(0x22c, f.initrdMax ?? 0x7fffffff, true);
  v.setUint32(0x230, f.align ?? 0x200000, true);
  v.setUint8(0x234, f.relocatable ?? 1);
  v.setUint8(0x235, 21);
  v.setUint16(0x236, f.xloadflags ?? 0x03, true);
  v.setUint32(0x238, f.cmdlineSize ?? 0x7ff, true);
  v.setUint32(0x258, f.pref ?? 0x1000000, true);
  v.setUint32(0x260, f.initSize ?? 0x400000, true);
  for (let i = 0; i < kernelBytes; i++) file[(sects + 1) * 512 + i] = (i * 7 + 1) & 0xff;
  return file;
}

function rd(m: GuestMemory, gpa: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  m.read(gpa, b);
  return b;
}
const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
function bootParams(m: GuestMemory): DataView {
  return dv(rd(m, LINUX_LAYOUT.bootParams, 4096));
}

test("parses a synthetic protocol 2.15 header", () => {
  const h = parseBzImage(bzImage());
  assert.equal(h.version, 0x020f);
  assert.equal(h.kernelOffset, 5 * 512);
  assert.equal(h.kernelLength, 0x3000);
  assert.equal(h.prefAddress, 0x1000000);
  assert.equal(h.initSize, 0x400000);
  assert.equal(h.relocatable, true);
  assert.equal(h.headerEnd, 0x26c);
  assert.equal(h.minAlignment, 2 * MiB);
  assert.equal(parseBzImage(bzImage({ setupSects: 0 })).kernelOffset, 5 * 512); // 0 means 4
});

test("every malformed header gives a BootError naming the problem", () => {
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array(100), /too small/],
    [bzImage({ bootFlag: 0x1234 }), /boot_flag/],
    [bzImage({ magic: 0 }), /HdrS/],
    [bzImage({ version: 0x020b }), /2\.11 is older than 2\.12/],
    [bzImage({ loadflags: 0 }), /LOADED_HIGH/],
    [bzImage({ xloadflags: 0x02 }), /XLF_KERNEL_64/],
    [bzImage({ align: 0x3000 }), /kernel_alignment/],
    [bzImage({ initSize: 0x100 }), /init_size/],
    [bzImage({ jump: 0x10eb }), /setup header length/],
    [bzImage({ jump: 0x6a90 }), /short jmp/],
    [bzImage({ setupSects: 200, kernelBytes: 0 }), /setup_sects/],
  ];
  for (const [file, re] of cases)
    assert.throws(
      () => parseBzImage(file),
      (e: unknown) => e instanceof BootError && re.test(e.message),
      String(re),
    );
  const truncated = bzImage().subarray(0, 5 * 512 + 0x1000);
  assert.throws(() => parseBzImage(truncated), /syssize/);
});

test("loads the kernel at pref_address and builds boot_params", () => {
  const m = new GuestMemory(64 * MiB);
  const file = bzImage();
  const r = loadLinux(m, file, { cmdline: "console=ttyS0 quiet", rsdpAddress: 0xe0000 });
  assert.equal(r.kernel.base, 0x1000000);
  assert.deepEqual(rd(m, 0x1000000, 0x3000), file.subarray(5 * 512));
  const bp = bootParams(m);
  assert.equal(bp.getUint16(0x1fe, true), 0xaa55);
  assert.equal(bp.getUint32(0x202, true), 0x53726448);
  assert.equal(bp.getUint8(0x210), 0xff);
  assert.equal(bp.getUint8(0x211), 0x81);
  assert.equal(bp.getUint16(0x224, true), 0xfe00);
  assert.equal(bp.getUint32(0x228, true), LINUX_LAYOUT.cmdline);
  assert.equal(bp.getUint32(0x070, true), 0xe0000);
  assert.equal(new TextDecoder().decode(rd(m, LINUX_LAYOUT.cmdline, 20)), "console=ttyS0 quiet\0");
  assert.equal(bp.getUint32(0x218, true), 0);
  assert.equal(r.initrd, null);
});

test("a non-relocatable kernel needs RAM at pref_address; a relocatable one moves to 1 MiB rounded to its alignment", () => {
  assert.throws(() => loadLinux(new GuestMemory(16 * MiB), bzImage({ relocatable: 0 })), /not relocatable/);
  const r = loadLinux(new GuestMemory(16 * MiB), bzImage({ relocatable: 1 }));
  assert.equal(r.kernel.base, 2 * MiB);
  assert.equal(r.entry.rip, 2 * MiB + 0x200);
  assert.throws(() => loadLinux(new GuestMemory(4 * MiB), bzImage()), /not enough RAM/);
});

test("the initrd goes page-aligned as high as allowed, above the kernel's init_size", () => {
  const m = new GuestMemory(64 * MiB);
  const initrd = new Uint8Array(10000).fill(0x5a);
  const r = loadLinux(m, bzImage(), { initrd });
  assert.equal(r.initrd?.base, Math.floor((64 * MiB - 10000) / 4096) * 4096);
  assert.equal(r.initrd!.base % 4096, 0);
  assert.deepEqual(rd(m, r.initrd!.base, 10000), initrd);
  const bp = bootParams(m);
  assert.equal(bp.getUint32(0x218, true), r.initrd!.base);
  assert.equal(bp.getUint32(0x21c, true), 10000);
  assert.equal(bp.getUint32(0x0c0, true), 0);

  // initrd_addr_max below RAM top caps the end address (inclusive limit).
  const m2 = new GuestMemory(64 * MiB);
  const r2 = loadLinux(m2, bzImage({ initrdMax: 32 * MiB - 1 }), { initrd });
  assert.equal(r2.initrd!.base + 4096 * 3, 32 * MiB);

  // No room between the kernel's init_size end and the cap.
  const m3 = new GuestMemory(64 * MiB);
  assert.throws(() => loadLinux(m3, bzImage({ initrdMax: 0x1400fff }), { initrd }), /initrd of 10000 bytes/);

  // Above 4 GiB when the low range is too small and the kernel allows it.
  const m4 = new GuestMemory(20 * MiB + 8 * MiB, 20 * MiB);
  const big = new Uint8Array(6 * MiB);
  const r4 = loadLinux(m4, bzImage(), { initrd: big });
  assert.equal(r4.initrd!.base, 4 * GiB + 2 * MiB);
  const bp4 = bootParams(m4);
  assert.equal(bp4.getUint32(0x218, true), 2 * MiB);
  assert.equal(bp4.getUint32(0x0c0, true), 1);
  assert.throws(
    () => loadLinux(new GuestMemory(28 * MiB, 20 * MiB), bzImage({ xloadflags: 1 }), { initrd: big }),
    /initrd/,
  );
});

test("command line limits", () => {
  const m = new GuestMemory(64 * MiB);
  assert.throws(() => loadLinux(m, bzImage({ cmdlineSize: 8 }), { cmdline: "123456789" }), /cmdline_size/);
  assert.throws(() => loadLinux(m, bzImage(), { cmdline: "a\0b" }), /NUL/);
  loadLinux(m, bzImage({ cmdlineSize: 8 }), { cmdline: "12345678" });
});

test("e820: RAM, the BIOS area reserved, ACPI tables as type 3, the MMIO hole absent", () => {
  const m = new GuestMemory(3 * GiB + 256 * MiB, 3 * GiB);
  const map = e820Map(m, [{ base: 0x80000, length: 0x10000, type: E820_ACPI }]);
  assert.deepEqual(map, [
    { base: 0, length: 0x80000, type: E820_RAM },
    { base: 0x80000, length: 0x10000, type: E820_ACPI },
    { base: 0x90000, length: 0x9fc00 - 0x90000, type: E820_RAM },
    { base: 0x9fc00, length: 0x100000 - 0x9fc00, type: E820_RESERVED },
    { base: 0x100000, length: 3 * GiB - 0x100000, type: E820_RAM },
    { base: 4 * GiB, length: 256 * MiB, type: E820_RAM },
  ]);
  const r = loadLinux(new GuestMemory(64 * MiB), bzImage(), {
    e820Extra: [{ base: 0x80000, length: 0x10000, type: E820_ACPI }],
  });
  assert.equal(r.e820.length, 5);
});

test("64-bit entry state, GDT and identity page tables", () => {
  const m = new GuestMemory(64 * MiB + 1 * GiB, 64 * MiB);
  const r = loadLinux(m, bzImage(), { nx: true });
  const e = r.entry;
  assert.equal(e.mode, "long64");
  assert.equal(e.rip, 0x1000200);
  assert.equal(e.registers.rsi, LINUX_LAYOUT.bootParams);
  assert.equal((e.cr0 & 0x80000001) >>> 0, 0x80000001);
  assert.equal(e.cr4, 0x20);
  assert.equal(e.efer, 0xd00);
  assert.equal(loadLinux(new GuestMemory(64 * MiB), bzImage()).entry.efer, 0x500);
  assert.equal(e.rflags & 0x200, 0);
  assert.equal(e.cs.selector, 0x10);
  assert.equal(e.ds.selector, 0x18);
  assert.equal(e.cs.access & 0x2000, 0x2000); // L
  const gdt = dv(rd(m, e.gdtr.base, e.gdtr.limit + 1));
  assert.equal(gdt.getBigUint64(0x10, true), 0x00af9b000000ffffn);
  assert.equal(gdt.getBigUint64(0x18, true), 0x00cf93000000ffffn);
  // Walk the tables for a low address, one in the MMIO hole and one above 4 GiB.
  const walk = (va: number): number => {
    const pml4 = dv(rd(m, e.cr3, 4096)).getBigUint64(0, true);
    const pdpt = Number(pml4 & 0xffffffffff000n);
    const pdpte = dv(rd(m, pdpt, 4096)).getBigUint64(Math.floor(va / GiB) * 8, true);
    assert.equal(pdpte & 1n, 1n);
    const pde = dv(rd(m, Number(pdpte & 0xffffffffff000n), 4096)).getBigUint64(((va % GiB) >>> 21) * 8, true);
    assert.equal(pde & 0x83n, 0x83n);
    return Number(pde & 0xfffffffe00000n) + (va % (2 * MiB));
  };
  for (const va of [0x1000200, 0xfee00000, 4 * GiB + 0x12345, 4 * GiB + 1 * GiB - 1])
    assert.equal(walk(va), va);
  assert.equal(r.pageTables.length, (2 + 5) * 4096);
});

test("loads the real guest bzImage", () => {
  // The bundled guest kernel is committed (guest/README.md); a missing file must fail, not skip.
  const file = readFileSync("guest/bzImage");
  const h = parseBzImage(file);
  assert.ok(h.version >= 0x020c);
  assert.equal(h.kernelOffset + h.kernelLength <= file.length, true);
  const m = new GuestMemory(256 * MiB);
  const r = loadLinux(m, file, {
    cmdline: "console=ttyS0",
    initrd: new Uint8Array(MiB),
    rsdpAddress: 0xe0000,
  });
  assert.equal(r.kernel.base, h.prefAddress);
  assert.ok(r.initrd!.base >= r.kernel.base + h.initSize);
  assert.equal(r.initrd!.base + MiB, 256 * MiB);
  // The 64-bit entry point is code (not zero padding).
  assert.notDeepEqual(rd(m, r.entry.rip, 16), new Uint8Array(16));
  const p = prepareLinuxBoot(new GuestMemory(256 * MiB), { kernel: file, cmdline: "console=ttyS0", cpus: 1 });
  assert.equal(p.entry.rip, h.prefAddress + 0x200);
});

test("prepareLinuxBoot: ACPI tables in an e820 ACPI range, RSDP in the zero page, tables readable in RAM", () => {
  const m = new GuestMemory(128 * MiB);
  const p = prepareLinuxBoot(m, {
    kernel: bzImage(),
    initrd: new Uint8Array(8192),
    cmdline: "console=ttyS0",
    cpus: 2,
  });
  const bp = bootParams(m);
  assert.equal(Number(bp.getBigUint64(0x070, true)), 0xe0000);
  assert.ok(p.boot.e820.some((e) => e.type === E820_ACPI && e.base === LINUX_LAYOUT.acpiTables));
  const rsdp = rd(m, 0xe0000, 36);
  assert.ok(checksumOk(rsdp));
  const xsdt = Number(dv(rsdp).getBigUint64(24, true));
  const xsdtHeader = rd(m, xsdt, 36);
  assert.equal(new TextDecoder().decode(xsdtHeader.subarray(0, 4)), "XSDT");
  assert.ok(checksumOk(rd(m, xsdt, dv(xsdtHeader).getUint32(4, true))));
  // Nothing the loader placed overlaps anything else.
  const ranges = [
    [LINUX_LAYOUT.gdt, 32],
    [LINUX_LAYOUT.bootParams, 4096],
    [LINUX_LAYOUT.cmdline, p.boot.cmdline.length + 1],
    [p.boot.pageTables.base, p.boot.pageTables.length],
    [p.acpi.region.base, p.acpi.region.length],
    [0xe0000, 36],
    [p.boot.kernel.base, p.boot.kernel.initSize],
    [p.boot.initrd!.base, p.boot.initrd!.length],
  ] as const;
  for (const [a, al] of ranges)
    for (const [b, bl] of ranges)
      if (a !== b) assert.ok(a + al <= b || b + bl <= a, `${a.toString(16)} overlaps ${b.toString(16)}`);
  const summary = describeLinuxLayout(p).join("\n");
  assert.match(summary, /boot protocol 2\.15/);
  assert.match(summary, /e820 0x80000-0x8ffff type 3/);
  // A hostile kernel is refused before the tables are written.
  const m2 = new GuestMemory(16 * MiB);
  assert.throws(() => prepareLinuxBoot(m2, { kernel: bzImage({ magic: 1 }), cpus: 1 }), BootError);
  assert.deepEqual(rd(m2, 0xe0000, 8), new Uint8Array(8));
});

test("random corruption of the setup header loads or fails with BootError, never anything else", () => {
  const base = bzImage({ kernelBytes: 0x800, initSize: 0x1000 });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0x1f0, max: 0x26f }), fc.integer({ min: 0, max: 255 })), {
        maxLength: 8,
      }),
      (edits) => {
        const file = base.slice();
        for (const [o, v] of edits) file[o] = v;
        const m = new GuestMemory(32 * MiB);
        try {
          loadLinux(m, file, { initrd: new Uint8Array(4096), cmdline: "x" });
        } catch (e) {
          if (!(e instanceof BootError)) throw e;
        }
      },
    ),
    { numRuns: 150 },
  );
});

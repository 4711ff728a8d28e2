import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestMemory } from "../memory/guest-memory.js";
import {
  loadMultiboot,
  memoryMap,
  multibootEntryState,
  MultibootError,
  MULTIBOOT_BOOTLOADER_MAGIC,
} from "./multiboot.js";

const MiB = 1024 * 1024;

function w32(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(off, v >>> 0, true);
}
function w16(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint16(off, v, true);
}
function r32(m: GuestMemory, gpa: number): number {
  const b = new Uint8Array(4);
  m.read(gpa, b);
  return new DataView(b.buffer).getUint32(0, true);
}

/** A one-segment ELF32 image loaded at `base` whose payload is `code`; the Multiboot header follows the headers. */
function elfImage(opts: { base?: number; code?: number[]; bss?: number; flags?: number } = {}): Uint8Array {
  const base = opts.base ?? MiB;
  const code = opts.code ?? [0xf4];
  const headerOff = 84;
  const codeOff = headerOff + 12;
  const file = new Uint8Array(codeOff + code.length);
  file.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0);
  w16(file, 16, 2);
  w16(file, 18, 3);
  w32(file, 20, 1);
  w32(file, 24, base + codeOff);
  w32(file, 28, 52);
  w16(file, 40, 52);
  w16(file, 42, 32);
  w16(file, 44, 1);
  w32(file, 52, 1);
  w32(file, 56, 0);
  w32(file, 60, base);
  w32(file, 64, base);
  w32(file, 68, file.length);
  w32(file, 72, file.length + (opts.bss ?? 0));
  w32(file, 76, 7);
  const flags = opts.flags ?? 3;
  w32(file, headerOff, 0x1badb002);
  w32(file, headerOff + 4, flags);
  w32(file, headerOff + 8, -(0x1badb002 + flags));
  file.set(code, codeOff);
  return file;
}

test("an ELF32 kernel is loaded at its physical address and entered as Multiboot 3.2 says", () => {
  const mem = new GuestMemory(16 * MiB);
  mem.bytes.fill(0xee, MiB, MiB + 0x1000);
  const file = elfImage({ code: [0x90, 0xf4], bss: 64 });
  const r = loadMultiboot(mem, file, { cmdline: "console=ttyS0", bootLoaderName: "viridian" });
  assert.equal(r.entry.eip, MiB + 96);
  assert.equal(r.entry.eax, MULTIBOOT_BOOTLOADER_MAGIC);
  assert.equal(r.entry.ebx, r.infoAddress);
  assert.equal(r.entry.cr0 & 0x80000001, 1, "PE on, PG off");
  assert.equal(r.entry.eflags & 0x200, 0, "IF clear");
  assert.equal(r.entry.code.limit, 0xffffffff);
  assert.deepEqual([...mem.bytes.subarray(MiB + 96, MiB + 98)], [0x90, 0xf4]);
  assert.equal(mem.bytes[MiB + file.length + 63], 0, "bss zeroed");
  assert.equal(mem.bytes[MiB + file.length + 64], 0xee, "nothing written past bss");
  assert.deepEqual(r.loaded, [{ base: MiB, length: file.length + 64 }]);
});

test("a segment without bss that ends at the top of RAM loads (nothing is zeroed past it)", () => {
  const mem = new GuestMemory(16 * MiB);
  const length = elfImage().length;
  const r = loadMultiboot(mem, elfImage({ base: 16 * MiB - length }));
  assert.deepEqual(r.loaded, [{ base: 16 * MiB - length, length }]);
  assert.equal(mem.bytes[16 * MiB - 1], 0xf4);
});

test("the information structure carries memory sizes, an mmap, the command line and the loader name", () => {
  const mem = new GuestMemory(64 * MiB);
  const r = loadMultiboot(mem, elfImage(), { cmdline: "quiet root=/dev/sda", bootLoaderName: "viridian" });
  const info = r.infoAddress;
  const flags = r32(mem, info);
  assert.equal(flags & 0x245, 0x245, "mem, cmdline, mmap and boot_loader_name flags");
  assert.equal(r32(mem, info + 4), 640);
  assert.equal(r32(mem, info + 8), 63 * 1024);
  const cmd = r32(mem, info + 16);
  const text = (gpa: number): string => {
    let s = "";
    for (let a = gpa; mem.bytes[a] !== 0; a++) s += String.fromCharCode(mem.bytes[a]!);
    return s;
  };
  assert.equal(text(cmd), "quiet root=/dev/sda");
  assert.equal(text(r32(mem, info + 64)), "viridian");
  const mmapLen = r32(mem, info + 44);
  const mmapAddr = r32(mem, info + 48);
  const entries: Array<[number, number, number]> = [];
  for (let p = mmapAddr; p < mmapAddr + mmapLen; p += r32(mem, p) + 4) {
    entries.push([r32(mem, p + 4), r32(mem, p + 12), r32(mem, p + 20)]);
  }
  assert.deepEqual(entries, [
    [0, 0xa0000, 1],
    [0xa0000, 0x60000, 2],
    [MiB, 63 * MiB, 1],
  ]);
});

test("RAM above 4 GiB appears in the memory map with 64-bit base and length", () => {
  const mem = new GuestMemory(8 * MiB, 4 * MiB);
  assert.deepEqual(memoryMap(mem), [
    { base: 0, length: 0xa0000, type: 1 },
    { base: 0xa0000, length: 0x60000, type: 2 },
    { base: MiB, length: 3 * MiB, type: 1 },
    { base: 0x1_0000_0000, length: 4 * MiB, type: 1 },
  ]);
});

test("an image loaded over the default information address moves the information above the image", () => {
  const mem = new GuestMemory(4 * MiB);
  const r = loadMultiboot(mem, elfImage({ base: 0x7000, bss: 0x3000 }));
  assert.ok(r.infoAddress >= 0x7000 + 0x3000, `info at 0x${r.infoAddress.toString(16)}`);
  assert.equal(r.infoAddress % 4096, 0);
});

test("the a.out kludge (flag 16) loads by the header's address fields", () => {
  const mem = new GuestMemory(4 * MiB);
  const file = new Uint8Array(64);
  const flags = 0x10003;
  w32(file, 0, 0x1badb002);
  w32(file, 4, flags);
  w32(file, 8, -(0x1badb002 + flags));
  w32(file, 12, 0x200000); // header_addr
  w32(file, 16, 0x200000); // load_addr
  w32(file, 20, 0x200000 + 64); // load_end_addr
  w32(file, 24, 0x200000 + 128); // bss_end_addr
  w32(file, 28, 0x200000 + 32); // entry_addr
  file[32] = 0xf4;
  mem.bytes.fill(0xee, 0x200000, 0x200100);
  const r = loadMultiboot(mem, file);
  assert.equal(r.entry.eip, 0x200020);
  assert.equal(mem.bytes[0x200020], 0xf4);
  assert.equal(mem.bytes[0x200040], 0, "bss zeroed");
  assert.equal(mem.bytes[0x200080], 0xee);
});

test("hostile or unsupported images are refused with a MultibootError", () => {
  const mem = new GuestMemory(4 * MiB);
  const bad = (file: Uint8Array, pattern: RegExp): void => {
    assert.throws(
      () => loadMultiboot(mem, file),
      (e: unknown) => e instanceof MultibootError && pattern.test(e.message),
    );
  };
  bad(new Uint8Array(100), /no Multiboot v1 header/);
  const badSum = elfImage();
  w32(badSum, 92, 0);
  bad(badSum, /no Multiboot v1 header/);
  bad(elfImage({ flags: 0x8 }), /requires Multiboot features/);
  bad(elfImage({ base: 8 * MiB }), /outside guest RAM/);
  bad(elfImage({ base: 0xfffff000 }), /outside guest RAM/);
  bad(elfImage({ bss: 0x7fffffff }), /outside guest RAM/);
  const truncated = elfImage();
  w32(truncated, 68, 0x10000); // p_filesz past the end of the file
  w32(truncated, 72, 0x10000);
  bad(truncated, /past the end of the image/);
  const phnum = elfImage();
  w16(phnum, 44, 60000);
  bad(phnum, /program headers/);
  const notElf = elfImage();
  notElf[0] = 0;
  bad(notElf, /not an ELF file/);
  const elf64 = elfImage();
  elf64[4] = 2;
  bad(elf64, /ELFCLASS32/);
  const entry = elfImage();
  w32(entry, 24, 0x12345678);
  bad(entry, /entry point/);
  assert.throws(() => loadMultiboot(mem, elfImage(), { cmdline: "x".repeat(5000) }), MultibootError);
});

test("random corruption of a valid image loads or fails with MultibootError, never anything else", () => {
  const base = elfImage({ code: [0x90, 0x90, 0xf4], bss: 16 });
  const mem = new GuestMemory(2 * MiB);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      (edits) => {
        const file = base.slice();
        for (const [at, v] of edits) file[at] = v;
        try {
          loadMultiboot(mem, file);
        } catch (e) {
          if (!(e instanceof MultibootError)) throw e;
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test("the Multiboot entry state converts to the loader-neutral EntryState", () => {
  const m = new GuestMemory(8 * MiB);
  const r = loadMultiboot(m, elfImage());
  const e = multibootEntryState(r.entry);
  assert.equal(e.mode, "protected32");
  assert.equal(e.rip, r.entry.eip);
  assert.equal(e.registers.rax, MULTIBOOT_BOOTLOADER_MAGIC);
  assert.equal(e.registers.rbx, r.infoAddress);
  assert.deepEqual(e.cs, r.entry.code);
  assert.deepEqual(e.ss, r.entry.data);
  assert.equal(e.efer, 0);
});

test("modules are loaded page-aligned after the kernel, in order, with their strings; reserved ranges show in the mmap", () => {
  const mem = new GuestMemory(16 * MiB);
  const r = loadMultiboot(mem, elfImage({ bss: 0x2345 }), {
    cmdline: "k.elf x",
    modules: [
      { data: Uint8Array.from([1, 2, 3]), string: "one a b" },
      { data: new Uint8Array(0x1001).fill(7), string: "two" },
      { data: new Uint8Array(0), string: "empty" },
    ],
    reserved: [{ base: 0x80000, length: 0x10000, type: 3 }],
  });
  const info = r.infoAddress;
  assert.equal(r32(mem, info) & 8, 8, "flag 3: modules");
  assert.equal(r32(mem, info + 20), 3, "mods_count");
  const mods = r32(mem, info + 24);
  const kernelEnd = Math.max(...r.loaded.map((l) => l.base + l.length));
  const str = (gpa: number): string => {
    const b = new Uint8Array(32);
    mem.read(gpa, b);
    return new TextDecoder().decode(b.subarray(0, b.indexOf(0)));
  };
  let prevEnd = kernelEnd;
  for (const [i, [len, s]] of (
    [
      [3, "one a b"],
      [0x1001, "two"],
      [0, "empty"],
    ] as const
  ).entries()) {
    const start = r32(mem, mods + 16 * i);
    assert.equal(start % 4096, 0, `module ${i} is page-aligned`);
    assert.ok(start >= prevEnd, `module ${i} lies after the kernel and the previous module`);
    assert.equal(r32(mem, mods + 16 * i + 4) - start, len);
    assert.equal(str(r32(mem, mods + 16 * i + 8)), s);
    prevEnd = start + Math.max(1, len);
  }
  assert.equal(mem.bytes[r32(mem, mods + 16)], 7);
  assert.deepEqual(
    r.modules.map((m) => m.string),
    ["one a b", "two", "empty"],
  );
  // The memory map: the reserved range is type 3, and no available entry overlaps it.
  const n = r32(mem, info + 44) / 24;
  const map = Array.from({ length: n }, (_, i) => {
    const o = r32(mem, info + 48) + 24 * i;
    return { base: r32(mem, o + 4), length: r32(mem, o + 12), type: r32(mem, o + 20) };
  });
  assert.ok(map.some((e) => e.base === 0x80000 && e.length === 0x10000 && e.type === 3));
  for (const e of map.filter((x) => x.type === 1))
    assert.ok(
      e.base + e.length <= 0x80000 || e.base >= 0x90000,
      `available ${e.base.toString(16)} overlaps ACPI`,
    );
});

test("hostile module lists and reserved ranges are refused with a MultibootError", () => {
  const mem = new GuestMemory(4 * MiB);
  const one = { data: new Uint8Array(1), string: "m" };
  assert.throws(() => loadMultiboot(mem, elfImage(), { modules: new Array(65).fill(one) }), MultibootError);
  assert.throws(
    () => loadMultiboot(mem, elfImage(), { modules: [{ data: new Uint8Array(4 * MiB), string: "big" }] }),
    /module 0 .* outside guest RAM/,
  );
  assert.throws(
    () =>
      loadMultiboot(mem, elfImage(), { modules: [{ data: new Uint8Array(1), string: "x".repeat(5000) }] }),
    /string is longer/,
  );
  assert.throws(
    () =>
      loadMultiboot(mem, elfImage({ base: 0x80000 }), {
        reserved: [{ base: 0x80000, length: 0x10000, type: 3 }],
      }),
    /overlaps reserved memory/,
  );
});

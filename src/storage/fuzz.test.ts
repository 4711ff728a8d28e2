// Fuzzing of hostile images with fast-check: valid VHDs (fixed, dynamic, differencing), a raw-ish image and an
// ISO 9660 image are mutated (bit flips, truncation, field overwrites with extreme values); opening, info,
// reading, allocation queries, check and the ISO directory reader must only ever throw StorageError, must
// finish, and must not allocate more than a bounded multiple of the file size.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { MemoryFile, MemoryFileSystem } from "./memory-file.js";
import { StorageError } from "./disk.js";
import { createImage, openImage } from "./open.js";
import type { ImageDisk } from "./image-format.js";
import { isoFormat, type IsoDisk } from "./iso9660.js";

/** A minimal ISO 9660 image: PVD, terminator, a root directory holding HELLO.TXT and a DOCS subdirectory. */
export function tinyIso(): Uint8Array {
  const S = 2048;
  const img = new Uint8Array(24 * S);
  const both32 = (at: number, v: number): void => {
    new DataView(img.buffer).setUint32(at, v, true);
    new DataView(img.buffer).setUint32(at + 4, v, false);
  };
  const both16 = (at: number, v: number): void => {
    new DataView(img.buffer).setUint16(at, v, true);
    new DataView(img.buffer).setUint16(at + 2, v, false);
  };
  const record = (at: number, name: string | number, extent: number, size: number, dir: boolean): number => {
    const nameBytes = typeof name === "number" ? [name] : [...name].map((c) => c.charCodeAt(0));
    const len = 33 + nameBytes.length + ((33 + nameBytes.length) % 2);
    img[at] = len;
    both32(at + 2, extent);
    both32(at + 10, size);
    img[at + 25] = dir ? 2 : 0;
    both16(at + 28, 1);
    img[at + 32] = nameBytes.length;
    img.set(nameBytes, at + 33);
    return at + len;
  };
  const pvd = 16 * S;
  img[pvd] = 1;
  img.set(
    [..."CD001"].map((c) => c.charCodeAt(0)),
    pvd + 1,
  );
  img[pvd + 6] = 1;
  img.set(
    [..."FUZZ"].map((c) => c.charCodeAt(0)),
    pvd + 40,
  );
  both32(pvd + 80, 24);
  both16(pvd + 128, S);
  record(pvd + 156, 0, 18, S, true);
  img[17 * S] = 255;
  img.set(
    [..."CD001"].map((c) => c.charCodeAt(0)),
    17 * S + 1,
  );
  let at = 18 * S;
  at = record(at, 0, 18, S, true);
  at = record(at, 1, 18, S, true);
  at = record(at, "DOCS", 20, S, true);
  record(at, "HELLO.TXT;1", 19, 13, false);
  img.set(
    [..."hello, world\n"].map((c) => c.charCodeAt(0)),
    19 * S,
  );
  at = 20 * S;
  at = record(at, 0, 20, S, true);
  at = record(at, 1, 18, S, true);
  record(at, "A.BIN;1", 21, 3000, false);
  img.fill(0x42, 21 * S, 21 * S + 3000);
  return img;
}

async function samples(): Promise<Map<string, { files: Map<string, Uint8Array>; target: string }>> {
  const out = new Map<string, { files: Map<string, Uint8Array>; target: string }>();
  for (const kind of ["fixed", "dynamic"] as const) {
    const fs = new MemoryFileSystem();
    await createImage(fs, "/v.vhd", "vhd", { kind, capacity: 256 * 1024, blockSize: 16 * 1024 });
    const d = await openImage(fs, "/v.vhd", { readOnly: false });
    await d.write(3, new Uint8Array(40 * 1024).fill(0x33));
    await d.close();
    out.set(`vhd-${kind}`, {
      files: new Map([["/v.vhd", fs.files.get("/v.vhd")!.contents()]]),
      target: "/v.vhd",
    });
  }
  const fs = new MemoryFileSystem();
  fs.files.set("/p.vhd", new MemoryFile("/p.vhd", out.get("vhd-dynamic")!.files.get("/v.vhd")!));
  await createImage(fs, "/c.vhd", "vhd", { kind: "differencing", parentPath: "/p.vhd" });
  const c = await openImage(fs, "/c.vhd", { readOnly: false });
  await c.write(100, new Uint8Array(3 * 512).fill(0xcc));
  await c.close();
  out.set("vhd-differencing", {
    files: new Map([
      ["/p.vhd", fs.files.get("/p.vhd")!.contents()],
      ["/c.vhd", fs.files.get("/c.vhd")!.contents()],
    ]),
    target: "/c.vhd",
  });
  const raw = new Uint8Array(64 * 1024 + 100).map((_, i) => i * 31);
  out.set("raw", { files: new Map([["/r.img", raw]]), target: "/r.img" });
  out.set("iso", { files: new Map([["/i.iso", tinyIso()]]), target: "/i.iso" });
  return out;
}

const mutation = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("field" as const),
    at: fc.nat(),
    width: fc.constantFrom(1, 2, 4, 8),
    value: fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0x01),
    region: fc.constantFrom("start", "end", "iso", "any"),
  }),
);

function mutate(bytes: Uint8Array, muts: Array<Record<string, unknown>>): Uint8Array {
  let b = bytes.slice();
  for (const m of muts) {
    if (b.length === 0) break;
    if (m.op === "flip") {
      const at = (m.at as number) % b.length;
      b[at]! ^= 1 << (m.bit as number);
    } else if (m.op === "truncate") {
      b = b.slice(0, (m.at as number) % (b.length + 1));
    } else {
      const region = m.region as string;
      const base =
        region === "start"
          ? 0
          : region === "end"
            ? Math.max(0, b.length - 1536)
            : region === "iso"
              ? 32768
              : 0;
      const span = region === "any" ? b.length : 2048;
      const at = Math.min(b.length - 1, base + ((m.at as number) % span));
      b.fill(m.value as number, at, Math.min(b.length, at + (m.width as number)));
    }
  }
  return b;
}

async function exercise(
  fs: MemoryFileSystem,
  path: string,
  disk: ImageDisk,
  fileBytes: number,
): Promise<void> {
  disk.info();
  const s = disk.logicalSectorSize;
  const total = disk.capacity / s;
  const n = Math.min(total, Math.floor((64 * 1024) / s));
  const buf = new Uint8Array(n * s);
  if (n > 0) {
    await disk.read(0, buf);
    await disk.read(total - n, buf);
    await disk.read(Math.floor((total - n) / 2), buf);
    await disk.isAllocated(0, n);
  }
  await disk.check(false);
  if (disk.info().format === "iso") {
    const iso = (await isoFormat.open(fs, path, { readOnly: true })) as IsoDisk;
    try {
      for (const e of await iso.list("/")) {
        if (e.isDirectory) await iso.list(e.name);
        else await iso.readFile(e.name);
      }
    } finally {
      await iso.close();
    }
  }
  assert.ok(
    process.memoryUsage().arrayBuffers < 256 * 1024 * 1024 + fileBytes * 8,
    "allocation stays bounded",
  );
}

test("mutated images only ever fail with StorageError", { timeout: 240_000 }, async () => {
  const all = await samples();
  let opened = 0;
  let rejected = 0;
  for (const [name, sample] of all) {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (muts) => {
        const fs = new MemoryFileSystem();
        let size = 0;
        for (const [p, bytes] of sample.files) {
          const m = p === sample.target ? mutate(bytes, muts as never) : bytes;
          size += m.length;
          fs.files.set(p, new MemoryFile(p, m));
        }
        try {
          const d = await openImage(fs, sample.target, { readOnly: true });
          opened++;
          try {
            await exercise(fs, sample.target, d, size);
          } finally {
            await d.close();
          }
        } catch (e) {
          if (!(e instanceof StorageError)) throw new Error(`${name}: non-StorageError ${String(e)}`);
          rejected++;
        }
      }),
      { numRuns: Number(process.env.VIRIDIAN_FUZZ_RUNS ?? 250) },
    );
  }
  console.log(`fuzz: ${opened} mutated images opened and exercised, ${rejected} rejected with StorageError`);
  assert.ok(opened > 0 && rejected > 0, `both outcomes occur (opened ${opened}, rejected ${rejected})`);
});

test("the unmutated samples open, read and list", async () => {
  const all = await samples();
  const iso = all.get("iso")!;
  const fs = new MemoryFileSystem();
  fs.files.set("/i.iso", new MemoryFile("/i.iso", iso.files.get("/i.iso")!));
  const d = (await openImage(fs, "/i.iso", { readOnly: true })) as ImageDisk;
  assert.equal(d.info().format, "iso");
  assert.equal(d.capacity, 24 * 2048);
  await assert.rejects(d.write(0, new Uint8Array(2048)), (e: StorageError) => e.code === "read-only");
  await d.close();
  const iso9660 = (await isoFormat.open(fs, "/i.iso", { readOnly: true })) as IsoDisk;
  assert.deepEqual(
    (await iso9660.list("/")).map((e) => e.name),
    ["DOCS", "HELLO.TXT"],
  );
  assert.equal(new TextDecoder().decode(await iso9660.readFile("/hello.txt")), "hello, world\n");
  assert.equal((await iso9660.readFile("/DOCS/A.BIN")).length, 3000);
  await iso9660.close();
});

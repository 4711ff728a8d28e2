// Owns: test fixtures for the SCSI target: a DataBuffer over a plain array that records any access outside
// it, a Disk wrapper that counts flushes/trims and refuses writes outside the capacity, in-memory raw, VHDX
// and ISO media, and CDB builders.
// Must not: be imported from src/ outside tests (test-only).
// Spec: the DataBuffer contract in src/vsp/storvsp/scsi.ts; the Disk contract in src/storage/disk.ts.

import type { Disk } from "../../src/storage/disk.js";
import { MemoryFileSystem } from "../../src/storage/memory-file.js";
import { createImage, openImage } from "../../src/storage/open.js";
import type { ImageDisk } from "../../src/storage/image-format.js";
import type { DataBuffer } from "../../src/vsp/storvsp/scsi.js";
import type { ScsiController, ScsiResult } from "../../src/vsp/storvsp/scsi-controller.js";

/** A buffer in one direction over an array; accesses beyond it are recorded (and refused). */
export class ArrayData implements DataBuffer {
  readonly bytes: Uint8Array;
  readonly violations: string[] = [];
  constructor(
    readonly direction: "in" | "out" | "none",
    lengthOrBytes: number | Uint8Array,
  ) {
    this.bytes = typeof lengthOrBytes === "number" ? new Uint8Array(lengthOrBytes) : lengthOrBytes;
  }
  get length(): number {
    return this.direction === "none" ? 0 : this.bytes.length;
  }
  write(offset: number, src: Uint8Array): void {
    if (this.direction !== "in" || offset < 0 || offset + src.length > this.length) {
      this.violations.push(`write ${offset}+${src.length} into ${this.direction} buffer of ${this.length}`);
      throw new Error(this.violations.at(-1));
    }
    this.bytes.set(src, offset);
  }
  read(offset: number, dst: Uint8Array): void {
    if (this.direction !== "out" || offset < 0 || offset + dst.length > this.length) {
      this.violations.push(`read ${offset}+${dst.length} from ${this.direction} buffer of ${this.length}`);
      throw new Error(this.violations.at(-1));
    }
    dst.set(this.bytes.subarray(offset, offset + dst.length));
  }
}

/** Wraps a Disk: counts flushes and trims, records writes, and fails the test on a write past capacity. */
export class SpyDisk implements Disk {
  flushes = 0;
  trims: { lba: number; count: number }[] = [];
  writes: { lba: number; length: number }[] = [];
  readonly outOfBounds: string[] = [];
  constructor(readonly inner: Disk) {}
  get logicalSectorSize(): number {
    return this.inner.logicalSectorSize;
  }
  get physicalSectorSize(): number {
    return this.inner.physicalSectorSize;
  }
  get capacity(): number {
    return this.inner.capacity;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get identity(): string {
    return this.inner.identity;
  }
  read(lba: number, dst: Uint8Array): Promise<void> {
    return this.inner.read(lba, dst);
  }
  write(lba: number, src: Uint8Array): Promise<void> {
    if (lba < 0 || lba * this.logicalSectorSize + src.length > this.capacity) {
      this.outOfBounds.push(`write at ${lba} of ${src.length}`);
    }
    this.writes.push({ lba, length: src.length });
    return this.inner.write(lba, src);
  }
  flush(): Promise<void> {
    this.flushes++;
    return this.inner.flush();
  }
  trim(lba: number, sectorCount: number): Promise<void> {
    if (lba < 0 || (lba + sectorCount) * this.logicalSectorSize > this.capacity) {
      this.outOfBounds.push(`trim at ${lba} of ${sectorCount}`);
    }
    this.trims.push({ lba, count: sectorCount });
    return this.inner.trim(lba, sectorCount);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A fresh in-memory image opened through openImage. */
export async function memoryImage(
  format: "raw" | "vhdx" | "vhd",
  capacity: number,
  options: {
    logical?: 512 | 4096;
    physical?: 512 | 4096;
    readOnly?: boolean;
    fill?: (b: Uint8Array) => void;
  } = {},
): Promise<{ fs: MemoryFileSystem; disk: ImageDisk }> {
  const fs = new MemoryFileSystem();
  const path = `/disk.${format}`;
  if (format === "raw") {
    const f = await fs.create(path);
    const bytes = new Uint8Array(capacity);
    options.fill?.(bytes);
    await f.write(0, bytes);
    await f.close();
  } else {
    await createImage(fs, path, format, {
      kind: "dynamic",
      capacity,
      logicalSectorSize: options.logical ?? 512,
      physicalSectorSize: options.physical ?? options.logical ?? 512,
    });
  }
  const disk = await openImage(fs, path, { readOnly: options.readOnly ?? false });
  return { fs, disk };
}

/** A minimal ISO 9660 image of `sectors` 2048-byte sectors whose sectors past 20 hold a known pattern. */
export function isoImage(sectors: number, label = "TESTMEDIA"): Uint8Array {
  const S = 2048;
  const img = new Uint8Array(sectors * S);
  const dv = new DataView(img.buffer);
  const both32 = (at: number, v: number): void => {
    dv.setUint32(at, v, true);
    dv.setUint32(at + 4, v, false);
  };
  const both16 = (at: number, v: number): void => {
    dv.setUint16(at, v, true);
    dv.setUint16(at + 2, v, false);
  };
  const pvd = 16 * S;
  img[pvd] = 1;
  img.set([0x43, 0x44, 0x30, 0x30, 0x31], pvd + 1); // "CD001"
  img[pvd + 6] = 1;
  for (let i = 0; i < 32; i++) img[pvd + 40 + i] = i < label.length ? label.charCodeAt(i) : 0x20;
  both32(pvd + 80, sectors);
  both16(pvd + 128, S);
  // The root directory record: extent 18, one sector, a directory.
  const root = pvd + 156;
  img[root] = 34;
  both32(root + 2, 18);
  both32(root + 10, S);
  img[root + 25] = 2;
  both16(root + 28, 1);
  img[root + 32] = 1;
  img[17 * S] = 255;
  img.set([0x43, 0x44, 0x30, 0x30, 0x31], 17 * S + 1);
  img[17 * S + 6] = 1;
  for (let i = 20 * S; i < img.length; i++) img[i] = (i * 7 + (i >> 11)) & 0xff;
  return img;
}

export async function isoDisk(
  sectors: number,
  label?: string,
): Promise<{ bytes: Uint8Array; disk: ImageDisk }> {
  const fs = new MemoryFileSystem();
  const bytes = isoImage(sectors, label);
  const f = await fs.create("/media.iso");
  await f.write(0, bytes);
  await f.close();
  return { bytes, disk: await openImage(fs, "/media.iso", { readOnly: true }) };
}

/** A CDB of `length` bytes with the given opcode and bytes. */
export function cdb(
  length: 6 | 10 | 12 | 16,
  opcode: number,
  fields: Record<number, number> = {},
): Uint8Array {
  const b = new Uint8Array(length);
  b[0] = opcode;
  for (const [at, v] of Object.entries(fields)) b[Number(at)] = v;
  return b;
}

/** Writes a big-endian value of `width` bytes into b at `at`. */
export function be(b: Uint8Array, at: number, width: number, v: number): Uint8Array {
  for (let i = width - 1; i >= 0; i--) {
    b[at + i] = v % 256;
    v = Math.floor(v / 256);
  }
  return b;
}

/** READ/WRITE CDB of the given size. */
export function rw(
  op: "read" | "write",
  size: 6 | 10 | 12 | 16,
  lba: number,
  blocks: number,
  flags = 0,
): Uint8Array {
  const opcode = {
    read: { 6: 0x08, 10: 0x28, 12: 0xa8, 16: 0x88 },
    write: { 6: 0x0a, 10: 0x2a, 12: 0xaa, 16: 0x8a },
  }[op][size];
  const c = cdb(size, opcode);
  if (size === 6) {
    be(c, 1, 3, lba & 0x1fffff);
    c[4] = blocks & 0xff;
  } else if (size === 10) {
    c[1] = flags;
    be(c, 2, 4, lba);
    be(c, 7, 2, blocks);
  } else if (size === 12) {
    c[1] = flags;
    be(c, 2, 4, lba);
    be(c, 6, 4, blocks);
  } else {
    c[1] = flags;
    be(c, 2, 8, lba);
    be(c, 10, 4, blocks);
  }
  return c;
}

/** Sense key, ASC, ASCQ of a result's sense data (or null). */
export function senseOf(r: ScsiResult): [number, number, number] | null {
  if (!r.sense) return null;
  return [r.sense[2]! & 0x0f, r.sense[12]!, r.sense[13]!];
}

/** Runs a command at path 0, target 0. */
export function run(
  c: ScsiController,
  lun: number,
  cdbBytes: Uint8Array,
  data?: DataBuffer,
): Promise<ScsiResult> {
  return c.execute({ path: 0, target: 0, lun }, cdbBytes, data ?? new ArrayData("none", 0));
}

/** Runs a Data-In command with a buffer of `length` and returns the result and the bytes moved. */
export async function runIn(
  c: ScsiController,
  lun: number,
  cdbBytes: Uint8Array,
  length: number,
): Promise<{ r: ScsiResult; data: Uint8Array }> {
  const buf = new ArrayData("in", length);
  const r = await run(c, lun, cdbBytes, buf);
  return { r, data: buf.bytes.subarray(0, r.transferred) };
}

/** A Disk whose reads wait until `release()` (a slow or stuck backing store). */
export class GatedDisk extends SpyDisk {
  private waiting: (() => void)[] = [];
  private open = false;
  pendingReads = 0;
  override async read(lba: number, dst: Uint8Array): Promise<void> {
    if (!this.open) {
      this.pendingReads++;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      this.pendingReads--;
    }
    return super.read(lba, dst);
  }
  release(): void {
    this.open = true;
    for (const w of this.waiting.splice(0)) w();
  }
}

/**
 * A Disk whose writes and flushes each wait for `step()`: a test sees what the initiator was told while the
 * data is not yet written, or written but not yet durable. `log` records each call and when it finished.
 */
export class OrderedDisk extends SpyDisk {
  readonly log: string[] = [];
  private readonly held: (() => void)[] = [];
  private gate(what: string): Promise<void> {
    this.log.push(`${what} started`);
    return new Promise<void>((resolve) => this.held.push(resolve));
  }
  override async write(lba: number, src: Uint8Array): Promise<void> {
    await this.gate("write");
    await super.write(lba, src);
    this.log.push("write done");
  }
  override async flush(): Promise<void> {
    await this.gate("flush");
    await super.flush();
    this.log.push("flush done");
  }
  /** Lets the oldest held write or flush go on. */
  step(): boolean {
    const next = this.held.shift();
    next?.();
    return next !== undefined;
  }
  get waiting(): number {
    return this.held.length;
  }
}

// Owns: the small helpers every image format shares: bounds checks of Disk requests, reads that treat the
// end of file as zeros, zero detection, GUID text, UTF-16 and POSIX-style relative path arithmetic.
// Must not: know any image format's layout, or do I/O other than through FileHandle.
// Spec: the Disk contract in ./disk.ts (sector-aligned requests within capacity); RFC 4122 GUID text form.

import { StorageError, type FileHandle } from "./disk.js";

/** Validates a Disk read/write request and returns its byte offset. */
export function checkRequest(
  name: string,
  capacity: number,
  sectorSize: number,
  lba: number,
  length: number,
): number {
  if (!Number.isSafeInteger(lba) || lba < 0 || length % sectorSize !== 0) {
    throw new StorageError(
      "out-of-range",
      `${name}: request at sector ${lba} of ${length} bytes is not aligned to ${sectorSize}-byte sectors`,
    );
  }
  const offset = lba * sectorSize;
  if (offset + length > capacity) {
    throw new StorageError(
      "out-of-range",
      `${name}: request at byte ${offset}+${length} is beyond the capacity ${capacity}`,
    );
  }
  return offset;
}

/** Reads dst.length bytes; bytes beyond the end of the file read as zeros (sparse-file semantics). */
export async function readFull(file: FileHandle, position: number, dst: Uint8Array): Promise<void> {
  const n = await file.read(position, dst);
  if (n < dst.length) dst.fill(0, n);
}

export function isZero(buf: Uint8Array): boolean {
  // Word-wise when aligned: compaction and convert scan whole images through this.
  if (buf.byteOffset % 4 === 0 && buf.length % 4 === 0) {
    const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

export function guidText(b: Uint8Array): string {
  let h = "";
  for (let i = 0; i < 16; i++) h += (b[i] ?? 0).toString(16).padStart(2, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function randomGuid(): Uint8Array {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40; // RFC 4122 version 4
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

export function encodeUtf16(text: string, bigEndian: boolean): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < text.length; i++) dv.setUint16(i * 2, text.charCodeAt(i), !bigEndian);
  return out;
}

/** Decodes UTF-16 up to the first NUL. */
export function decodeUtf16(bytes: Uint8Array, bigEndian: boolean): string {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let s = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const c = dv.getUint16(i, !bigEndian);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * The path of `to` relative to the directory of `from`, both '/'-separated and either both absolute or both
 * relative to the same directory. Parent locators store this so a moved pair of images stays linked.
 */
export function relativePath(from: string, to: string): string {
  const a = from.split("/").filter((p) => p !== "" && p !== ".");
  const b = to.split("/").filter((p) => p !== "" && p !== ".");
  a.pop();
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) i++;
  const up = a.slice(i).map(() => "..");
  return [...(up.length ? up : ["."]), ...b.slice(i)].join("/");
}

export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

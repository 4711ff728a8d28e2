// Owns: a reader for "newc" cpio archives (the initramfs format), used by the guest-image tests to look
// inside guest/initramfs.cpio.lz4 without unpacking it to disk.
// Must not: trust the archive — every length is bounds-checked and any inconsistency is a NewcError.
// Spec: the Linux kernel's Documentation/driver-api/early-userspace/buffer-format.rst ("newc" header:
// magic "070701", thirteen 8-digit hex fields, NUL-terminated name, name and data padded to 4 bytes).

export class NewcError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(`newc cpio at byte ${offset}: ${message}`);
    this.name = "NewcError";
  }
}

export interface NewcEntry {
  /** Path as stored, without a leading "./" or "/". "." is the root directory. */
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly data: Uint8Array;
}

const HEADER_SIZE = 110;
const MAGIC = "070701";
const TRAILER = "TRAILER!!!";
/** File-type bits of `mode` (S_IFMT) and their values, as in <sys/stat.h>. */
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

const align4 = (n: number): number => (n + 3) & ~3;

function ascii(bytes: Uint8Array, start: number, length: number): string {
  let s = "";
  for (let i = start; i < start + length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

function hexField(bytes: Uint8Array, at: number, headerStart: number): number {
  const text = ascii(bytes, at, 8);
  if (!/^[0-9A-Fa-f]{8}$/.test(text)) throw new NewcError(headerStart, `bad hex field "${text}"`);
  return parseInt(text, 16);
}

/** Parses a whole (uncompressed) newc archive up to its TRAILER!!! entry. */
export function parseNewc(bytes: Uint8Array): NewcEntry[] {
  const entries: NewcEntry[] = [];
  let off = 0;
  for (;;) {
    if (off + HEADER_SIZE > bytes.length) throw new NewcError(off, "truncated header (no TRAILER!!! entry)");
    const magic = ascii(bytes, off, 6);
    if (magic !== MAGIC) throw new NewcError(off, `magic is "${magic}", expected "${MAGIC}"`);
    const field = (i: number): number => hexField(bytes, off + 6 + i * 8, off);
    const mode = field(1);
    const uid = field(2);
    const gid = field(3);
    const mtime = field(5);
    const fileSize = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const nameSize = field(11);
    if (nameSize < 1) throw new NewcError(off, "empty name");
    const nameStart = off + HEADER_SIZE;
    if (nameStart + nameSize > bytes.length) throw new NewcError(off, "name runs past the end of the archive");
    if (bytes[nameStart + nameSize - 1] !== 0) throw new NewcError(off, "name is not NUL-terminated");
    const rawName = ascii(bytes, nameStart, nameSize - 1);
    if (rawName === TRAILER) return entries;
    const dataStart = align4(nameStart + nameSize);
    const dataEnd = dataStart + fileSize;
    if (dataEnd > bytes.length) throw new NewcError(off, "data runs past the end of the archive");
    const name = rawName === "." || rawName === "./" ? "." : rawName.replace(/^\.?\/+/, "");
    entries.push({ name, mode, uid, gid, mtime, rdevMajor, rdevMinor, data: bytes.subarray(dataStart, dataEnd) });
    off = align4(dataEnd);
  }
}

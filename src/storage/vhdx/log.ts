// Owns: the VHDX metadata log's on-disk format: building log entries (header, data descriptors, data sectors),
// finding the active sequence in a log region and turning it into the file writes that replay it.
// Must not: do I/O (callers read the log region and apply the returned writes) or trust any field it reads.
// Spec: MS-VHDX v20240423 section 2.3 (log: 2.3.1 entry header, 2.3.1.2-3 zero and data descriptors, 2.3.1.4
// data sector, 2.3.2 log sequences, 2.3.3 log replay).

import { crc32c } from "../../support/crc32c.js";
import { guidEquals } from "../../support/ms-guid.js";
import {
  HEADER1_OFFSET,
  LOG_SECTOR,
  MiB,
  REGION1_OFFSET,
  put32,
  put64,
  u32,
  u64,
  corrupt,
} from "./layout.js";

const ENTRY_HEADER = 64;
const DESCRIPTOR = 32;

/** A 4 KiB-aligned file write the log records. */
export interface LoggedPage {
  offset: number;
  data: Uint8Array;
}

export type ReplayOp =
  { kind: "data"; offset: number; data: Uint8Array } | { kind: "zero"; offset: number; length: number };

export interface ActiveSequence {
  ops: ReplayOp[];
  /** The largest FlushedFileOffset and LastFileOffset of the replayed entries. */
  flushedFileOffset: number;
  lastFileOffset: number;
  headSequence: number;
  entries: number;
}

/** Sectors used by the header and `n` descriptors (the header takes the first two descriptor slots). */
export const descriptorSectors = (n: number) => Math.ceil((n + 2) / 128);
/** Bytes of an entry carrying `pages` data sectors. */
export const entryBytes = (pages: number) => (descriptorSectors(pages) + pages) * LOG_SECTOR;

export function buildLogEntry(
  sequence: number,
  tail: number,
  logGuid: Uint8Array,
  flushedFileOffset: number,
  lastFileOffset: number,
  pages: LoggedPage[],
): Uint8Array {
  const dsec = descriptorSectors(pages.length);
  const e = new Uint8Array((dsec + pages.length) * LOG_SECTOR);
  e.set([0x6c, 0x6f, 0x67, 0x65], 0); // "loge"
  put32(e, 8, e.length);
  put32(e, 12, tail);
  put64(e, 16, sequence);
  put32(e, 24, pages.length);
  e.set(logGuid, 32);
  put64(e, 48, flushedFileOffset);
  put64(e, 56, lastFileOffset);
  pages.forEach((p, i) => {
    const d = ENTRY_HEADER + i * DESCRIPTOR;
    e.set([0x64, 0x65, 0x73, 0x63], d); // "desc"
    e.set(p.data.subarray(4092, 4096), d + 4);
    e.set(p.data.subarray(0, 8), d + 8);
    put64(e, d + 16, p.offset);
    put64(e, d + 24, sequence);
    const s = (dsec + i) * LOG_SECTOR;
    e.set([0x64, 0x61, 0x74, 0x61], s); // "data"
    put32(e, s + 4, Math.floor(sequence / 2 ** 32));
    e.set(p.data.subarray(8, 4092), s + 8);
    put32(e, s + 4092, sequence % 2 ** 32);
  });
  put32(e, 4, crc32c(e));
  return e;
}

interface Parsed {
  pos: number;
  length: number;
  tail: number;
  sequence: number;
  flushed: number;
  last: number;
  ops: ReplayOp[];
}

/** Reads `n` bytes of the circular log starting at `pos` (wrapping at the end). */
function circular(log: Uint8Array, pos: number, n: number): Uint8Array {
  if (pos + n <= log.length) return log.subarray(pos, pos + n);
  const out = new Uint8Array(n);
  const first = log.length - pos;
  out.set(log.subarray(pos), 0);
  out.set(log.subarray(0, n - first), first);
  return out;
}

/**
 * Validates the entry starting at `pos`; null if it is not a complete, valid entry of this log. `protect` lists
 * file ranges the log must never write (the header section and the log itself).
 */
function parseEntry(
  log: Uint8Array,
  pos: number,
  logGuid: Uint8Array,
  protect: Array<[number, number]>,
  budget: { bytes: number },
): Parsed | null {
  const h = log.subarray(pos, pos + ENTRY_HEADER);
  if (h[0] !== 0x6c || h[1] !== 0x6f || h[2] !== 0x67 || h[3] !== 0x65) return null;
  const length = u32(h, 8);
  const tail = u32(h, 12);
  const sequence = u64(h, 16);
  const count = u32(h, 24);
  if (length === 0 || length % LOG_SECTOR !== 0 || length > log.length) return null;
  if (tail % LOG_SECTOR !== 0 || tail >= log.length) return null;
  if (!(sequence > 0) || !Number.isFinite(sequence)) return null;
  if (!guidEquals(h.subarray(32, 48), logGuid)) return null;
  const dsec = descriptorSectors(count);
  if (count > length / DESCRIPTOR || dsec * LOG_SECTOR > length) return null;
  // Entries claiming to be large at every sector would make the scan quadratic: bound the checksum work.
  budget.bytes -= length;
  if (budget.bytes < 0) throw corrupt("VHDX log: too many overlapping entry headers to scan");
  const e = circular(log, pos, length);
  const stored = u32(e, 4);
  let c = crc32c(e.subarray(0, 4));
  c = crc32c(new Uint8Array(4), c);
  c = crc32c(e.subarray(8), c);
  if (c !== stored) return null;
  const flushed = u64(e, 48);
  const last = u64(e, 56);
  if (!Number.isFinite(flushed) || !Number.isFinite(last)) return null;
  const ops: ReplayOp[] = [];
  let dataSector = dsec;
  for (let i = 0; i < count; i++) {
    const d = ENTRY_HEADER + i * DESCRIPTOR;
    const offset = u64(e, d + 16);
    if (u64(e, d + 24) !== sequence || !Number.isFinite(offset) || offset % LOG_SECTOR !== 0) return null;
    let op: ReplayOp;
    if (e[d] === 0x7a && e[d + 1] === 0x65 && e[d + 2] === 0x72 && e[d + 3] === 0x6f) {
      const zl = u64(e, d + 8);
      if (!Number.isFinite(zl) || zl % LOG_SECTOR !== 0) return null;
      op = { kind: "zero", offset, length: zl };
    } else if (e[d] === 0x64 && e[d + 1] === 0x65 && e[d + 2] === 0x73 && e[d + 3] === 0x63) {
      if ((dataSector + 1) * LOG_SECTOR > length) return null;
      const s = e.subarray(dataSector * LOG_SECTOR, (dataSector + 1) * LOG_SECTOR);
      dataSector++;
      if (s[0] !== 0x64 || s[1] !== 0x61 || s[2] !== 0x74 || s[3] !== 0x61) return null;
      if (u32(s, 4) * 2 ** 32 + u32(s, 4092) !== sequence) return null;
      const data = new Uint8Array(LOG_SECTOR);
      data.set(e.subarray(d + 8, d + 16), 0);
      data.set(s.subarray(8, 4092), 8);
      data.set(e.subarray(d + 4, d + 8), 4092);
      op = { kind: "data", offset, data };
    } else return null;
    const end = op.offset + (op.kind === "zero" ? op.length : LOG_SECTOR);
    for (const [a, b] of protect) if (op.offset < b && a < end) return null;
    ops.push(op);
  }
  return { pos, length, tail, sequence, flushed, last, ops };
}

/**
 * Finds the active sequence (2.3.2): among sequences of valid entries with consecutive sequence numbers whose
 * head's Tail points at the sequence's first entry, the one whose head has the highest sequence number.
 * Returns null when the log holds no valid sequence (nothing to replay).
 */
export function findActiveSequence(
  log: Uint8Array,
  logGuid: Uint8Array,
  logOffset: number,
): ActiveSequence | null {
  // The headers have their own update protocol and the log cannot rewrite itself; anything else (BAT,
  // bitmaps, metadata, even the region table) may be logged by some writer.
  const protect: Array<[number, number]> = [
    [HEADER1_OFFSET, REGION1_OFFSET],
    [logOffset, logOffset + log.length],
  ];
  const byPos = new Map<number, Parsed>();
  const budget = { bytes: Math.max(256 * MiB, 4 * log.length) };
  for (let pos = 0; pos < log.length; pos += LOG_SECTOR) {
    const p = parseEntry(log, pos, logGuid, protect, budget);
    if (p) byPos.set(pos, p);
  }
  let best: Parsed[] | null = null;
  // Highest head first: the first head whose chain is complete is the active sequence.
  const heads = [...byPos.values()].sort((a, b) => b.sequence - a.sequence);
  let walkBudget = 1 << 22;
  for (const head of heads) {
    if (best) break;
    // Walk from the head's tail forward; the chain must reach the head with consecutive sequence numbers.
    const chain: Parsed[] = [];
    let at = byPos.get(head.tail);
    let steps = log.length / LOG_SECTOR;
    while (at && steps-- > 0) {
      // Many heads whose chains break late would make this quadratic: bound the total walk.
      if (--walkBudget < 0) throw corrupt("VHDX log: too many candidate sequences to scan");
      if (chain.length > 0 && at.sequence !== chain[chain.length - 1]!.sequence + 1) break;
      chain.push(at);
      if (at === head) break;
      at = byPos.get((at.pos + at.length) % log.length);
    }
    if (chain[chain.length - 1] === head) best = chain;
  }
  if (!best) return null;
  const ops = best.flatMap((p) => p.ops);
  return {
    ops,
    flushedFileOffset: Math.max(...best.map((p) => p.flushed)),
    lastFileOffset: Math.max(...best.map((p) => p.last)),
    headSequence: best[best.length - 1]!.sequence,
    entries: best.length,
  };
}

/** Checks that replaying `seq` on a file of `fileSize` bytes is sound (2.3.3); throws "corrupt" otherwise. */
export function validateReplay(seq: ActiveSequence, fileSize: number): void {
  if (seq.flushedFileOffset > fileSize) {
    throw corrupt(
      `VHDX log: the file (${fileSize} bytes) is shorter than the log says was flushed (${seq.flushedFileOffset}); it was truncated`,
    );
  }
  // A writer extends the file by a few blocks at a time; a log claiming far more is hostile.
  const limit = fileSize + 4 * 1024 * MiB;
  if (seq.lastFileOffset > limit)
    throw corrupt(`VHDX log: LastFileOffset ${seq.lastFileOffset} is far beyond the file end`);
  for (const op of seq.ops) {
    const end = op.offset + (op.kind === "zero" ? op.length : LOG_SECTOR);
    if (end > Math.max(fileSize, seq.lastFileOffset))
      throw corrupt(`VHDX log: a descriptor writes beyond LastFileOffset (${op.offset})`);
  }
}

// Owns: the block commands that move or drop data on a Disk, shared by the disk and the DVD logical units:
// READ/WRITE(6/10/12/16) with FUA, WRITE SAME(10/16) (with UNMAP = Disk.trim), UNMAP, SYNCHRONIZE
// CACHE(10/16) = Disk.flush; their CDB decoding, LBA range checks, transfer limits, the buffer-length rules,
// and the mapping of StorageError codes to sense data.
// Must not: write a Disk outside the LBA range a CDB validly names, write anything for a command its checks
// refuse, read the initiator's buffer more than once per byte, or allocate more than one transfer (bounded
// by the target's maximum transfer length) per command.
// Spec: SBC-3 5.8-5.12 (READ), 5.30-5.34 (WRITE), 5.41-5.42 (WRITE SAME, UNMAP bit, WSNZ), 5.28 (UNMAP and
// its parameter list, 5.28.2), 5.20-5.21 (SYNCHRONIZE CACHE); SBC-3 4.5 (LBA OUT OF RANGE). Buffer rules
// (SAM-5 5.4.3 residuals): a buffer longer than the CDB asks for moves what the CDB asks (a residual); a
// buffer shorter than a READ/WRITE needs is refused with INVALID FIELD IN CDB at the transfer length, before
// any data moves.

import { StorageError, type Disk } from "../../storage/disk.js";
import {
  be16,
  be24,
  be32,
  be64,
  check,
  GOOD,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  ScsiStatus,
  SENSE,
  type Outcome,
  type ScsiCommand,
  type Sense,
} from "./scsi.js";

/** Limits a logical unit enforces (and reports in the block limits VPD page). */
export interface TransferLimits {
  readonly maxTransferBytes: number;
  readonly maxWriteSameBlocks: number;
  readonly maxUnmapLbaCount: number;
  readonly maxUnmapDescriptors: number;
}

/** A decoded READ or WRITE: where, how many blocks, FUA, and which CDB byte holds the transfer length. */
interface BlockRange {
  readonly lba: number;
  readonly blocks: number;
  readonly fua: boolean;
  readonly lengthByte: number;
}

/** Decodes READ/WRITE(6/10/12/16) by opcode; the protection field (RDPROTECT/WRPROTECT) must be 0. */
function decodeReadWrite(c: Uint8Array): BlockRange | Sense {
  const op = c[0]!;
  const group = op >> 5;
  if (group === 0) {
    // 6-byte: 21-bit LBA, and a transfer length of 0 means 256 blocks.
    return { lba: be24(c, 1) & 0x1fffff, blocks: c[4]! === 0 ? 256 : c[4]!, fua: false, lengthByte: 4 };
  }
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  const fua = (c[1]! & 0x08) !== 0;
  if (group === 1) return { lba: be32(c, 2), blocks: be16(c, 7), fua, lengthByte: 7 };
  if (group === 5) return { lba: be32(c, 2), blocks: be32(c, 6), fua, lengthByte: 6 };
  return { lba: be64(c, 2), blocks: be32(c, 10), fua, lengthByte: 10 };
}

function isSense(x: BlockRange | Sense): x is Sense {
  return "key" in x;
}

function blockCount(disk: Disk): number {
  return Math.floor(disk.capacity / disk.logicalSectorSize);
}

/** LBA OUT OF RANGE unless [lba, lba + blocks) lies within the medium. */
function outOfRange(disk: Disk, lba: number, blocks: number): boolean {
  const count = blockCount(disk);
  return blocks > count || lba > count - blocks;
}

/** Sense for a Disk failure; anything that is not a StorageError is a bug and propagates. */
export function storageSense(e: unknown, writing: boolean): Sense {
  if (!(e instanceof StorageError)) throw e;
  switch (e.code) {
    case "read-only":
      return SENSE.writeProtected;
    case "closed":
      return SENSE.notReady;
    case "out-of-range":
      return SENSE.lbaOutOfRange;
    default:
      return writing ? SENSE.writeError : SENSE.unrecoveredReadError;
  }
}

export async function readBlocks(disk: Disk, cmd: ScsiCommand, limits: TransferLimits): Promise<Outcome> {
  const r = decodeReadWrite(cmd.cdb);
  if (isSense(r)) return check(r);
  if (outOfRange(disk, r.lba, r.blocks)) return check(SENSE.lbaOutOfRange);
  const bytes = r.blocks * disk.logicalSectorSize;
  if (bytes > limits.maxTransferBytes || bytes > cmd.inLength) return check(invalidFieldInCdb(r.lengthByte));
  if (bytes === 0) return GOOD;
  const data = new Uint8Array(bytes);
  try {
    await disk.read(r.lba, data);
  } catch (e) {
    return check(storageSense(e, false));
  }
  cmd.data.write(0, data);
  return { status: ScsiStatus.Good, transferred: bytes, overrun: false };
}

export async function writeBlocks(disk: Disk, cmd: ScsiCommand, limits: TransferLimits): Promise<Outcome> {
  const r = decodeReadWrite(cmd.cdb);
  if (isSense(r)) return check(r);
  if (outOfRange(disk, r.lba, r.blocks)) return check(SENSE.lbaOutOfRange);
  if (disk.readOnly) return check(SENSE.writeProtected);
  const bytes = r.blocks * disk.logicalSectorSize;
  if (bytes > limits.maxTransferBytes) return check(invalidFieldInCdb(r.lengthByte));
  const data = cmd.parameterList(bytes);
  if (!data) return check(invalidFieldInCdb(r.lengthByte));
  if (bytes === 0) return GOOD;
  try {
    await disk.write(r.lba, data);
    // FUA: the write is durable before the command completes.
    if (r.fua) await disk.flush();
  } catch (e) {
    return check(storageSense(e, true));
  }
  return { status: ScsiStatus.Good, transferred: bytes, overrun: false };
}

/** SYNCHRONIZE CACHE(10/16): the range is checked, then the whole disk is flushed. */
export async function synchronizeCache(disk: Disk, cmd: ScsiCommand): Promise<Outcome> {
  const c = cmd.cdb;
  const ten = c[0] === 0x35;
  const lba = ten ? be32(c, 2) : be64(c, 2);
  const blocks = ten ? be16(c, 7) : be32(c, 10);
  if (outOfRange(disk, lba, blocks)) return check(SENSE.lbaOutOfRange);
  try {
    await disk.flush();
  } catch (e) {
    return check(storageSense(e, true));
  }
  return GOOD;
}

/** Writes one block's pattern over a range, or (UNMAP bit) trims it. */
export async function writeSame(disk: Disk, cmd: ScsiCommand, limits: TransferLimits): Promise<Outcome> {
  const c = cmd.cdb;
  const sixteen = c[0] === 0x93;
  if (c[1]! & 0xe0) return check(invalidFieldInCdb(1, 7)); // WRPROTECT
  if (c[1]! & 0x10) return check(invalidFieldInCdb(1, 4)); // ANCHOR: no anchored state here
  if (!sixteen && c[1]! & 0x06) return check(invalidFieldInCdb(1, 2)); // PBDATA/LBDATA
  const unmap = (c[1]! & 0x08) !== 0;
  const noDataOut = sixteen && (c[1]! & 0x01) !== 0; // NDOB: the block is all zeros
  const lba = sixteen ? be64(c, 2) : be32(c, 2);
  const blocks = sixteen ? be32(c, 10) : be16(c, 7);
  const lengthByte = sixteen ? 10 : 7;
  if (blocks === 0) return check(invalidFieldInCdb(lengthByte)); // WSNZ
  if (outOfRange(disk, lba, blocks)) return check(SENSE.lbaOutOfRange);
  if (disk.readOnly) return check(SENSE.writeProtected);
  if (blocks > limits.maxWriteSameBlocks) return check(invalidFieldInCdb(lengthByte));
  const size = disk.logicalSectorSize;
  let pattern: Uint8Array = new Uint8Array(size);
  if (!noDataOut) {
    const block = cmd.parameterList(size);
    if (!block) return check(invalidFieldInCdb(lengthByte));
    pattern = block;
  }
  const transferred = noDataOut ? 0 : size;
  try {
    if (unmap) {
      await disk.trim(lba, blocks);
      return { status: ScsiStatus.Good, transferred, overrun: false };
    }
    const chunkBlocks = Math.max(1, Math.min(blocks, Math.floor(limits.maxTransferBytes / size)));
    const chunk = new Uint8Array(chunkBlocks * size);
    for (let i = 0; i < chunkBlocks; i++) chunk.set(pattern, i * size);
    for (let done = 0; done < blocks;) {
      const n = Math.min(chunkBlocks, blocks - done);
      await disk.write(lba + done, chunk.subarray(0, n * size));
      done += n;
    }
  } catch (e) {
    return check(storageSense(e, true));
  }
  return { status: ScsiStatus.Good, transferred, overrun: false };
}

/** UNMAP: every descriptor is validated before any range is trimmed. */
export async function unmap(disk: Disk, cmd: ScsiCommand, limits: TransferLimits): Promise<Outcome> {
  const c = cmd.cdb;
  if (c[1]! & 0x01) return check(invalidFieldInCdb(1, 0)); // ANCHOR
  const length = be16(c, 7);
  if (length === 0) return GOOD;
  if (length < 8) return check(SENSE.parameterListLength);
  if (disk.readOnly) return check(SENSE.writeProtected);
  const list = cmd.parameterList(length);
  if (!list) return check(invalidFieldInCdb(7));
  const descriptorBytes = Math.min(be16(list, 2), length - 8);
  const count = Math.floor(descriptorBytes / 16);
  if (count > limits.maxUnmapDescriptors) return check(invalidFieldInParameterList(2));
  const ranges: { lba: number; blocks: number }[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const at = 8 + i * 16;
    const lba = be64(list, at);
    const blocks = be32(list, at + 8);
    total += blocks;
    if (total > limits.maxUnmapLbaCount) return check(invalidFieldInParameterList(at + 8));
    if (outOfRange(disk, lba, blocks)) return check(SENSE.lbaOutOfRange);
    if (blocks > 0) ranges.push({ lba, blocks });
  }
  try {
    for (const r of ranges) await disk.trim(r.lba, r.blocks);
  } catch (e) {
    return check(storageSense(e, true));
  }
  return { status: ScsiStatus.Good, transferred: length, overrun: false };
}

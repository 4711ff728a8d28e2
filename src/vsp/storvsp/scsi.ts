// Owns: the SCSI vocabulary every part of the storage target shares: status codes, sense keys and the
// additional-sense pairs we answer with, fixed-format sense data, big-endian CDB field readers, the data
// buffer a command moves bytes through (`DataBuffer`), and a command's outcome (`Outcome`) with the helpers
// that build it (`ScsiCommand`).
// Must not: know the transport (storvsp packets, SRB status codes, guest memory) or any device model; read
// outside the CDB it was given; write a DataBuffer beyond its length.
// Spec: SAM-5 5.3 (status codes), SPC-4 4.5 (sense data, fixed format 4.5.3, sense-key-specific field pointer
// 4.5.2.4.2), SPC-4 Annex D (ASC/ASCQ assignments), SPC-4 4.2.5.6 (allocation length: transfer the lesser of
// the allocation length and the data available).

/** SAM-5 status codes a target returns. */
export const enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  TaskSetFull = 0x28,
}

/** SPC-4 table 28. */
export const enum SenseKey {
  NoSense = 0x0,
  NotReady = 0x2,
  MediumError = 0x3,
  HardwareError = 0x4,
  IllegalRequest = 0x5,
  UnitAttention = 0x6,
  DataProtect = 0x7,
  AbortedCommand = 0xb,
}

/** What a CHECK CONDITION reports: sense key, ASC/ASCQ and, for invalid fields, where the bad field is. */
export interface Sense {
  readonly key: SenseKey;
  readonly asc: number;
  readonly ascq: number;
  /** Sense-key-specific field pointer (ILLEGAL REQUEST): the byte, and bit if known, of the bad field. */
  readonly field?: { readonly inCdb: boolean; readonly byte: number; readonly bit?: number };
}

const sense = (key: SenseKey, asc: number, ascq: number): Sense => ({ key, asc, ascq });

/** The ASC/ASCQ pairs this target answers with (SPC-4 Annex D). */
export const SENSE = {
  noSense: sense(SenseKey.NoSense, 0x00, 0x00),
  /** 20/00: the opcode is not implemented by this logical unit. */
  invalidOpcode: sense(SenseKey.IllegalRequest, 0x20, 0x00),
  /** 21/00 */
  lbaOutOfRange: sense(SenseKey.IllegalRequest, 0x21, 0x00),
  /** 1A/00 */
  parameterListLength: sense(SenseKey.IllegalRequest, 0x1a, 0x00),
  /** 39/00 */
  savingNotSupported: sense(SenseKey.IllegalRequest, 0x39, 0x00),
  /** 53/02 */
  mediumRemovalPrevented: sense(SenseKey.IllegalRequest, 0x53, 0x02),
  /** 27/00 */
  writeProtected: sense(SenseKey.DataProtect, 0x27, 0x00),
  /** 3A/01, 3A/02: no medium, tray closed / open. */
  mediumNotPresentTrayClosed: sense(SenseKey.NotReady, 0x3a, 0x01),
  mediumNotPresentTrayOpen: sense(SenseKey.NotReady, 0x3a, 0x02),
  /** 04/00: the backing store went away (closed). */
  notReady: sense(SenseKey.NotReady, 0x04, 0x00),
  /** 28/00: NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED. */
  mediumChanged: sense(SenseKey.UnitAttention, 0x28, 0x00),
  /** 11/00 */
  unrecoveredReadError: sense(SenseKey.MediumError, 0x11, 0x00),
  /** 0C/00 */
  writeError: sense(SenseKey.MediumError, 0x0c, 0x00),
  /** 44/00: our own failure (a bug); counted, never thrown to the caller. */
  internalTargetFailure: sense(SenseKey.HardwareError, 0x44, 0x00),
} as const;

/** 24/00 INVALID FIELD IN CDB, with the field pointer (SPC-4 4.5.2.4.2). */
export function invalidFieldInCdb(byte: number, bit?: number): Sense {
  return { key: SenseKey.IllegalRequest, asc: 0x24, ascq: 0x00, field: { inCdb: true, byte, bit } };
}

/** 26/00 INVALID FIELD IN PARAMETER LIST, with the field pointer. */
export function invalidFieldInParameterList(byte: number, bit?: number): Sense {
  return { key: SenseKey.IllegalRequest, asc: 0x26, ascq: 0x00, field: { inCdb: false, byte, bit } };
}

/** Fixed-format sense data is 18 bytes; storvsc carries up to 20. */
export const FIXED_SENSE_LENGTH = 18;

/** Encodes fixed-format sense data (response code 70h, current error). */
export function encodeSense(s: Sense): Uint8Array {
  const b = new Uint8Array(FIXED_SENSE_LENGTH);
  b[0] = 0x70;
  b[2] = s.key & 0x0f;
  b[7] = FIXED_SENSE_LENGTH - 8;
  b[12] = s.asc;
  b[13] = s.ascq;
  if (s.field) {
    // SKSV | C/D | BPV | bit pointer, then the 16-bit field pointer.
    b[15] = 0x80 | (s.field.inCdb ? 0x40 : 0) | (s.field.bit !== undefined ? 0x08 | (s.field.bit & 7) : 0);
    b[16] = (s.field.byte >> 8) & 0xff;
    b[17] = s.field.byte & 0xff;
  }
  return b;
}

// Big-endian CDB fields. The CDB handed to a handler is always at least as long as its table row says,
// so these never read past it; a missing byte would read as 0.
export function be16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}
export function be24(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 16) | ((b[at + 1] ?? 0) << 8) | (b[at + 2] ?? 0);
}
export function be32(b: Uint8Array, at: number): number {
  return (
    ((b[at] ?? 0) * 0x1000000 + (((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0))) >>> 0
  );
}
/** A 64-bit field as a Number; values at or above 2^53 come back as Infinity (beyond any capacity). */
export function be64(b: Uint8Array, at: number): number {
  const hi = be32(b, at);
  if (hi >= 0x200000) return Infinity;
  return hi * 0x100000000 + be32(b, at + 4);
}
export function putBe16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}
export function putBe32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}
export function putBe64(b: Uint8Array, at: number, v: number): void {
  putBe32(b, at, Math.floor(v / 0x100000000));
  putBe32(b, at + 4, v % 0x100000000);
}

/**
 * The initiator's buffer for one command, in one direction. Implementations (a validated guest page list in
 * storvsp, a plain array in tests) copy; a handler never holds a view into guest memory, so the guest cannot
 * change bytes after the target has looked at them.
 */
export interface DataBuffer {
  /** "in": device to initiator (Data-In); "out": initiator to device (Data-Out); "none": no data phase. */
  readonly direction: "in" | "out" | "none";
  /** Bytes the buffer holds (0 when direction is "none"). */
  readonly length: number;
  /** Data-In: copies src to the buffer at offset; offset + src.length never exceeds length. */
  write(offset: number, src: Uint8Array): void;
  /** Data-Out: copies dst.length bytes at offset out of the buffer; never beyond length. */
  read(offset: number, dst: Uint8Array): void;
}

/**
 * A handler's answer. `transferred` counts bytes moved through the DataBuffer; `overrun` says the device
 * server had more to return than the buffer held (the transport reports a residual overflow).
 */
export type Outcome =
  | { readonly status: ScsiStatus.Good; readonly transferred: number; readonly overrun: boolean }
  | { readonly status: ScsiStatus.CheckCondition; readonly sense: Sense };

export const GOOD: Outcome = { status: ScsiStatus.Good, transferred: 0, overrun: false };

export function check(s: Sense): Outcome {
  return { status: ScsiStatus.CheckCondition, sense: s };
}

/** One command as a handler sees it: the CDB (a private copy) and the buffer. */
export class ScsiCommand {
  constructor(
    readonly cdb: Uint8Array,
    readonly data: DataBuffer,
  ) {}

  get opcode(): number {
    return this.cdb[0] ?? 0;
  }

  /** Room the initiator gave for Data-In (0 when the buffer runs the other way). */
  get inLength(): number {
    return this.data.direction === "in" ? this.data.length : 0;
  }

  /** Room the initiator gave for Data-Out. */
  get outLength(): number {
    return this.data.direction === "out" ? this.data.length : 0;
  }

  /**
   * Returns parameter data: the lesser of its length and the allocation length (SPC-4 4.2.5.6), cut to the
   * buffer; a buffer shorter than that is an overrun.
   */
  dataIn(bytes: Uint8Array, allocationLength: number): Outcome {
    const want = Math.min(bytes.length, allocationLength);
    const n = Math.min(want, this.inLength);
    if (n > 0) this.data.write(0, bytes.subarray(0, n));
    return { status: ScsiStatus.Good, transferred: n, overrun: n < want };
  }

  /** Copies a parameter list of `length` bytes out of the buffer, or null when the buffer is shorter. */
  parameterList(length: number): Uint8Array | null {
    if (length > this.outLength) return null;
    const b = new Uint8Array(length);
    if (length > 0) this.data.read(0, b);
    return b;
  }
}

/** What the controller needs from every logical unit, whatever its device model. */
export interface LogicalUnit {
  readonly kind: "disk" | "dvd";
  /** Removes and returns a pending unit attention condition (SAM-5 5.14), if any. */
  takeUnitAttention(): Sense | null;
  /** The NOT READY sense commands that need a medium get now, or null when a medium is ready. */
  notReady(): Sense | null;
  /** Plain data for inspect(). */
  inspect(): Record<string, unknown>;
}

/**
 * REQUEST SENSE (SPC-4 6.29): a pending unit attention (consumed), else the not-ready condition, else NO
 * SENSE; fixed format only (DESC = 1 is refused).
 */
export function requestSense(lun: LogicalUnit, cmd: ScsiCommand): Outcome {
  if (cmd.cdb[1]! & 0x01) return check(invalidFieldInCdb(1, 0));
  const s = lun.takeUnitAttention() ?? lun.notReady() ?? SENSE.noSense;
  return cmd.dataIn(encodeSense(s), cmd.cdb[4]!);
}

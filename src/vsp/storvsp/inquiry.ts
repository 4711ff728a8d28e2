// Owns: INQUIRY for every logical unit of the target: the standard inquiry data, the vital product data
// pages (supported pages 00h, unit serial number 80h, device identification 83h, block limits B0h, block
// device characteristics B1h, logical block provisioning B2h), the answer for an address with no logical
// unit (peripheral qualifier 3, type 1Fh), and the 16-byte device identifier the pages are built from.
// Must not: decide what a device supports (the logical units pass their parameters in) or touch a Disk.
// Spec: SPC-4 6.6 (INQUIRY: EVPD, PAGE CODE, ALLOCATION LENGTH; standard data 6.6.2), 7.8.5 (supported VPD
// pages), 7.8.15 (unit serial number), 7.8.6 (device identification; T10 vendor ID designator 7.8.6.4, NAA
// IEEE Registered Extended 7.8.6.6.5), SBC-3 6.5.3 (block limits), 6.5.2 (block device characteristics),
// 6.5.4 (logical block provisioning). Identity strings as Hyper-V's "Msft Virtual Disk" answers them.

import {
  be16,
  invalidFieldInCdb,
  check,
  putBe16,
  putBe32,
  putBe64,
  type Outcome,
  type ScsiCommand,
} from "./scsi.js";

export const PERIPHERAL_DISK = 0x00;
export const PERIPHERAL_CDROM = 0x05;
/** Peripheral qualifier 3 (not capable of a device here) with type 1Fh (unknown): an empty LUN. */
export const PERIPHERAL_NOT_PRESENT = 0x7f;

/** Microsoft's IEEE company id, the OUI in the NAA designator of a Hyper-V virtual disk. */
const MICROSOFT_OUI = 0x002248;

/** SPC-3: scsi_level 6 in Linux, so sd tries READ CAPACITY(16) first and scans with REPORT LUNS. */
const VERSION_SPC3 = 0x05;

export interface InquiryIdentity {
  readonly peripheralType: number;
  readonly removable: boolean;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
}

/** ASCII, space-padded or cut to `width` (INQUIRY strings are fixed-width fields). */
function ascii(s: string, width: number): Uint8Array {
  const b = new Uint8Array(width).fill(0x20);
  for (let i = 0; i < Math.min(width, s.length); i++) {
    const c = s.charCodeAt(i);
    b[i] = c >= 0x20 && c < 0x7f ? c : 0x20;
  }
  return b;
}

/** The 36-byte standard inquiry data (SPC-4 table 142). */
export function standardInquiry(id: InquiryIdentity): Uint8Array {
  const b = new Uint8Array(36);
  b[0] = id.peripheralType & 0x1f;
  b[1] = id.removable ? 0x80 : 0;
  b[2] = VERSION_SPC3;
  b[3] = 0x02; // response data format 2
  b[4] = b.length - 5;
  b[7] = 0x02; // CMDQUE: tagged queueing, so Linux keeps several commands in flight
  b.set(ascii(id.vendor, 8), 8);
  b.set(ascii(id.product, 16), 16);
  b.set(ascii(id.revision, 4), 32);
  return b;
}

/** What an address without a logical unit answers to a standard INQUIRY. */
export function notPresentInquiry(): Uint8Array {
  const b = new Uint8Array(36);
  b[0] = PERIPHERAL_NOT_PRESENT;
  b[2] = VERSION_SPC3;
  b[3] = 0x02;
  b[4] = b.length - 5;
  return b;
}

/** A VPD page: the 4-byte header (SPC-4 table 485) followed by the body. */
function vpdPage(peripheralType: number, page: number, body: Uint8Array): Uint8Array {
  const b = new Uint8Array(4 + body.length);
  b[0] = peripheralType & 0x1f;
  b[1] = page;
  putBe16(b, 2, body.length);
  b.set(body, 4);
  return b;
}

export function serialNumberPage(serial: string): Uint8Array {
  return ascii(serial, serial.length);
}

/**
 * Device identification: a T10 vendor ID designator ("Msft    " + the id in hex) and an NAA 6 designator
 * (IEEE Registered Extended: Microsoft's OUI, then 100 bits of the id), which Linux shows as the wwn.
 */
export function deviceIdentificationPage(vendor: string, id: Uint8Array): Uint8Array {
  const hex = idHex(id);
  const t10 = new Uint8Array(4 + 8 + hex.length);
  t10[0] = 0x02; // protocol identifier 0, code set 2 (ASCII)
  t10[1] = 0x01; // PIV 0, association 0 (the logical unit), designator type 1 (T10 vendor ID)
  t10[3] = t10.length - 4;
  t10.set(ascii(vendor, 8), 4);
  t10.set(ascii(hex, hex.length), 12);
  const naa = new Uint8Array(4 + 16);
  naa[0] = 0x01; // code set 1 (binary)
  naa[1] = 0x03; // association 0, designator type 3 (NAA)
  naa[3] = 16;
  // NAA 6 | OUI (24 bits) | vendor-specific identifier (36 bits) | extension (64 bits)
  naa[4] = 0x60 | ((MICROSOFT_OUI >> 20) & 0x0f);
  naa[5] = (MICROSOFT_OUI >> 12) & 0xff;
  naa[6] = (MICROSOFT_OUI >> 4) & 0xff;
  naa[7] = ((MICROSOFT_OUI & 0x0f) << 4) | ((id[0] ?? 0) & 0x0f);
  naa.set(id.subarray(1, 13), 8);
  const out = new Uint8Array(t10.length + naa.length);
  out.set(t10, 0);
  out.set(naa, t10.length);
  return out;
}

export interface BlockLimits {
  /** Logical blocks per physical block (optimal transfer length granularity). */
  readonly granularity: number;
  readonly maxTransferBlocks: number;
  /** UNMAP limits, or null when the unit cannot unmap (read-only). */
  readonly unmap: {
    readonly maxLbaCount: number;
    readonly maxDescriptors: number;
    readonly granularity: number;
  } | null;
  readonly maxWriteSameBlocks: number;
}

/** Block limits (SBC-3 table 200; page length 3Ch). */
export function blockLimitsPage(l: BlockLimits): Uint8Array {
  const b = new Uint8Array(0x3c);
  // Offsets below are of the full page; the body starts at byte 4.
  const at = (n: number): number => n - 4;
  b[at(4)] = 0x01; // WSNZ: WRITE SAME with zero blocks is refused rather than meaning "to the end"
  putBe16(b, at(6), l.granularity);
  putBe32(b, at(8), l.maxTransferBlocks);
  if (l.unmap) {
    putBe32(b, at(20), l.unmap.maxLbaCount);
    putBe32(b, at(24), l.unmap.maxDescriptors);
    putBe32(b, at(28), l.unmap.granularity);
    putBe32(b, at(32), 0x80000000); // UGAVALID, alignment 0
  }
  putBe64(b, at(36), l.maxWriteSameBlocks);
  return b;
}

/** Block device characteristics (SBC-3 table 198): a non-rotating medium, so Linux treats it as an SSD. */
export function blockCharacteristicsPage(): Uint8Array {
  const b = new Uint8Array(0x3c);
  putBe16(b, 0, 0x0001);
  return b;
}

/** Logical block provisioning (SBC-3 table 201). */
export function provisioningPage(blockCount: number, canUnmap: boolean): Uint8Array {
  const b = new Uint8Array(4);
  // The threshold exponent must make the block count fit 32 bits; at least 1.
  let e = 1;
  while (blockCount / 2 ** e >= 2 ** 32) e++;
  b[0] = e;
  // LBPU (UNMAP), LBPWS (WRITE SAME(16) with UNMAP), LBPWS10; LBPRZ 0: trimmed blocks need not read zero.
  b[1] = canUnmap ? 0xe0 : 0;
  b[2] = canUnmap ? 0x02 : 0x00; // provisioning type: thin when unmapping frees space, else full
  return b;
}

/**
 * The INQUIRY command for a logical unit: `pages` maps each VPD page code (other than 00h, which is built
 * from the keys) to its body.
 */
export function inquiry(
  cmd: ScsiCommand,
  standard: Uint8Array,
  peripheralType: number,
  pages: ReadonlyMap<number, () => Uint8Array>,
): Outcome {
  const c = cmd.cdb;
  const evpd = (c[1]! & 0x01) !== 0;
  const page = c[2]!;
  const allocation = be16(c, 3);
  if (c[1]! & 0x02) return check(invalidFieldInCdb(1, 1)); // CMDDT (obsolete)
  if (!evpd) {
    if (page !== 0) return check(invalidFieldInCdb(2));
    return cmd.dataIn(standard, allocation);
  }
  if (page === 0x00) {
    const codes = [0x00, ...pages.keys()].sort((a, b) => a - b);
    return cmd.dataIn(vpdPage(peripheralType, 0x00, Uint8Array.from(codes)), allocation);
  }
  const body = pages.get(page);
  if (!body) return check(invalidFieldInCdb(2));
  return cmd.dataIn(vpdPage(peripheralType, page, body()), allocation);
}

/** A device identifier in lowercase hex (the T10 designator's text and the default serial number). */
export function idHex(id: Uint8Array): string {
  let hex = "";
  for (const x of id) hex += x.toString(16).padStart(2, "0");
  return hex;
}

/** 16 bytes that identify a device: a GUID's bytes when `text` holds one, else a hash of the text. */
export function deviceIdFromText(text: string): Uint8Array {
  const m = /([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})/i.exec(text);
  const out = new Uint8Array(16);
  if (m) {
    const hex = m.slice(1).join("");
    for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    return out;
  }
  // Four FNV-1a lanes with different offsets: stable across runs and hosts, which is all an id needs here.
  for (let lane = 0; lane < 4; lane++) {
    let h = (0x811c9dc5 ^ (lane * 0x9e3779b1)) >>> 0;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    putBe32(out, lane * 4, h);
  }
  return out;
}

// Owns: encoding ACPI Machine Language byte streams for the static definitions firmware needs: names and
// name paths, integer/string/buffer/package data, Name, Scope, Device, Method/Return, EISAID values and
// resource templates (IO, IRQNoFlags, Memory32Fixed, extended Interrupt, End Tag with checksum).
// Must not: evaluate AML or accept arbitrary caller bytes where a structure is expected; every encoder
// validates its inputs (name characters, value ranges, package sizes) and throws AmlError.
// Spec: ACPI 6.5 20.2 (AML grammar: 20.2.2 name objects, 20.2.3 data objects, 20.2.4 package length
// encoding, 20.2.5 term objects), 6.4 (resource data types: 6.4.2 small and 6.4.3 large descriptors),
// 6.1.5 (_HID and the compressed EISA ID form).

export class AmlError extends Error {
  override name = "AmlError";
}

/** An AML fragment: bytes that are concatenated into a parent term list. */
export type Aml = Uint8Array;

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * PkgLength (20.2.4) for a body of `bodyLength` bytes; the encoded length counts its own bytes. One byte
 * holds up to 63; otherwise the lead byte's bits 7-6 give the number of following bytes and its low
 * nibble the low four bits of the length.
 */
export function pkgLength(bodyLength: number): Uint8Array {
  if (!Number.isInteger(bodyLength) || bodyLength < 0)
    throw new AmlError(`bad package body length ${bodyLength}`);
  if (bodyLength + 1 <= 0x3f) return Uint8Array.of(bodyLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0x0f);
      for (let i = 1; i <= extra; i++) out[i] = Math.floor(total / 2 ** (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new AmlError(`package of ${bodyLength} bytes exceeds the 2^28-byte PkgLength limit`);
}

const LEAD = /^[A-Z_]$/;
const REST = /^[A-Z0-9_]$/;

/** A NameSeg (20.2.2): one to four characters, padded with '_'. */
export function nameSeg(seg: string): Uint8Array {
  if (seg.length < 1 || seg.length > 4 || !LEAD.test(seg[0]!) || ![...seg].every((c) => REST.test(c)))
    throw new AmlError(`"${seg}" is not a valid ACPI name segment`);
  const padded = seg.padEnd(4, "_");
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/** A NameString (20.2.2): optional root '\' or parent '^' prefixes, then dot-separated segments. */
export function nameString(path: string): Uint8Array {
  let i = 0;
  const prefix: number[] = [];
  if (path.startsWith("\\")) {
    prefix.push(0x5c);
    i = 1;
  } else {
    while (path[i] === "^") {
      prefix.push(0x5e);
      i++;
    }
  }
  const rest = path.slice(i);
  if (rest === "") return Uint8Array.from([...prefix, 0x00]); // NullName
  const segs = rest.split(".").map(nameSeg);
  if (segs.length > 255) throw new AmlError(`name path "${path}" has more than 255 segments`);
  const head = segs.length === 1 ? [] : segs.length === 2 ? [0x2e] : [0x2f, segs.length]; // DualNamePrefix / MultiNamePrefix
  return concat([Uint8Array.from([...prefix, ...head]), ...segs]);
}

function le(value: number, bytes: number): number[] {
  const out: number[] = [];
  let v = value;
  for (let i = 0; i < bytes; i++) {
    out.push(v % 256);
    v = Math.floor(v / 256);
  }
  return out;
}

function checkInt(value: number, max: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max)
    throw new AmlError(`${what} ${value} is out of range`);
}

export const byteConst = (v: number): Aml => (checkInt(v, 0xff, "ByteConst"), Uint8Array.of(0x0a, v));
export const wordConst = (v: number): Aml => (
  checkInt(v, 0xffff, "WordConst"),
  Uint8Array.of(0x0b, ...le(v, 2))
);
export const dwordConst = (v: number): Aml => (
  checkInt(v, 0xffffffff, "DWordConst"),
  Uint8Array.of(0x0c, ...le(v, 4))
);
export const qwordConst = (v: number): Aml => (
  checkInt(v, Number.MAX_SAFE_INTEGER, "QWordConst"),
  Uint8Array.of(0x0e, ...le(v, 8))
);

/** The shortest integer encoding: ZeroOp, OneOp, or the smallest constant prefix that holds the value. */
export function integer(v: number): Aml {
  checkInt(v, Number.MAX_SAFE_INTEGER, "Integer");
  if (v === 0) return Uint8Array.of(0x00);
  if (v === 1) return Uint8Array.of(0x01);
  if (v <= 0xff) return byteConst(v);
  if (v <= 0xffff) return wordConst(v);
  if (v <= 0xffffffff) return dwordConst(v);
  return qwordConst(v);
}

/** A String (20.2.3): ASCII characters 0x01-0x7F, NUL-terminated. */
export function string(s: string): Aml {
  const codes = Array.from(s, (c) => c.charCodeAt(0));
  if (codes.some((c) => c < 1 || c > 0x7f)) throw new AmlError(`AML strings are ASCII without NUL: "${s}"`);
  return Uint8Array.of(0x0d, ...codes, 0x00);
}

/** Buffer (20.2.5.4 DefBuffer): BufferOp PkgLength BufferSize ByteList. */
export function buffer(bytes: Uint8Array): Aml {
  const body = concat([integer(bytes.length), bytes]);
  return concat([Uint8Array.of(0x11), pkgLength(body.length), body]);
}

/** Package (DefPackage): PackageOp PkgLength NumElements PackageElementList. */
export function pkg(elements: readonly Aml[]): Aml {
  if (elements.length > 255)
    throw new AmlError(`a Package holds at most 255 elements, got ${elements.length}`);
  const body = concat([Uint8Array.of(elements.length), ...elements]);
  return concat([Uint8Array.of(0x12), pkgLength(body.length), body]);
}

/** Name(path, data) (DefName). */
export const name = (path: string, data: Aml): Aml => concat([Uint8Array.of(0x08), nameString(path), data]);

/** Scope(path) { terms } (DefScope). */
export function scope(path: string, terms: readonly Aml[]): Aml {
  const body = concat([nameString(path), ...terms]);
  return concat([Uint8Array.of(0x10), pkgLength(body.length), body]);
}

/** Device(path) { terms } (DefDevice: ExtOpPrefix DeviceOp). */
export function device(path: string, terms: readonly Aml[]): Aml {
  const body = concat([nameString(path), ...terms]);
  return concat([Uint8Array.of(0x5b, 0x82), pkgLength(body.length), body]);
}

/** Method(path, argCount, serialized) { terms } (DefMethod; sync level 0). */
export function method(path: string, argCount: number, serialized: boolean, terms: readonly Aml[]): Aml {
  checkInt(argCount, 7, "method argument count");
  const body = concat([nameString(path), Uint8Array.of(argCount | (serialized ? 0x08 : 0)), ...terms]);
  return concat([Uint8Array.of(0x14), pkgLength(body.length), body]);
}

/** Return(value) (DefReturn). */
export const ret = (value: Aml): Aml => concat([Uint8Array.of(0xa4), value]);

/** The 32-bit compressed EISA ID of a 7-character PNP ID such as "PNP0501" (6.1.5), as an AML integer value. */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id))
    throw new AmlError(`"${id}" is not an EISA ID (three letters, four hex digits)`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = parseInt(id.slice(3), 16);
  // Stored big-endian in a little-endian DWORD: vendor high byte first.
  return ((vendor >> 8) | ((vendor & 0xff) << 8) | ((product >> 8) << 16) | ((product & 0xff) << 24)) >>> 0;
}
/** EISAID("...") as ASL compiles it: the shortest integer encoding of the compressed value. */
export const eisaId = (id: string): Aml => integer(eisaIdValue(id));

// Resource descriptors (6.4).
export type Resource =
  | { kind: "io"; min: number; max?: number; align?: number; length: number }
  | { kind: "irq"; irqs: readonly number[] }
  | { kind: "memory32"; base: number; length: number; writable?: boolean }
  | {
      kind: "interrupt";
      gsis: readonly number[];
      level?: boolean;
      activeLow?: boolean;
      shared?: boolean;
    };

/** One resource descriptor's bytes (without the End Tag). */
export function resourceDescriptor(r: Resource): Uint8Array {
  switch (r.kind) {
    case "io": {
      const max = r.max ?? r.min;
      checkInt(r.min, 0xffff, "IO minimum");
      checkInt(max, 0xffff, "IO maximum");
      checkInt(r.length, 0xff, "IO length");
      checkInt(r.align ?? 1, 0xff, "IO alignment");
      if (max < r.min) throw new AmlError("IO maximum is below its minimum");
      // 6.4.2.5: small item 0x08, length 7; information bit 0 = 16-bit decode.
      return Uint8Array.of(0x47, 0x01, ...le(r.min, 2), ...le(max, 2), r.align ?? 1, r.length);
    }
    case "irq": {
      let mask = 0;
      for (const irq of r.irqs) {
        checkInt(irq, 15, "IRQ");
        mask |= 1 << irq;
      }
      // 6.4.2.1: IRQ descriptor without the information byte (edge, active-high).
      return Uint8Array.of(0x22, mask & 0xff, mask >> 8);
    }
    case "memory32": {
      checkInt(r.base, 0xffffffff, "Memory32Fixed base");
      checkInt(r.length, 0xffffffff, "Memory32Fixed length");
      // 6.4.3.4: large item 0x06, length 9.
      return Uint8Array.of(0x86, 9, 0, r.writable === false ? 0 : 1, ...le(r.base, 4), ...le(r.length, 4));
    }
    case "interrupt": {
      if (r.gsis.length < 1 || r.gsis.length > 255)
        throw new AmlError("Interrupt needs 1-255 interrupt numbers");
      r.gsis.forEach((g) => checkInt(g, 0xffffffff, "Interrupt number"));
      // 6.4.3.6: consumer (bit 0), edge (bit 1), active-low (bit 2), shared (bit 3).
      const flags = 0x01 | (r.level ? 0 : 0x02) | (r.activeLow ? 0x04 : 0) | (r.shared ? 0x08 : 0);
      const length = 2 + 4 * r.gsis.length;
      return Uint8Array.of(0x89, ...le(length, 2), flags, r.gsis.length, ...r.gsis.flatMap((g) => le(g, 4)));
    }
  }
}

/** ResourceTemplate() { ... }: a Buffer of descriptors closed by an End Tag whose checksum zeroes the sum. */
export function resourceTemplate(resources: readonly Resource[]): Aml {
  const body = concat([...resources.map(resourceDescriptor), Uint8Array.of(0x79)]);
  const sum = body.reduce((s, b) => s + b, 0);
  return buffer(concat([body, Uint8Array.of((256 - (sum & 0xff)) & 0xff)]));
}

// Owns: GUIDs in Microsoft's on-disk layout (Data1..Data3 little-endian, Data4 as bytes) as used by VHDX and
// the text form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", plus random (version 4) generation.
// Must not: use Node built-ins; randomness comes from the Web Crypto global present in Node and browsers.
// Spec: MS-DTYP section 2.3.4 (GUID packet representation); RFC 4122 section 4.4 (random GUIDs).

export const GUID_ZERO = new Uint8Array(16);

/** Parses "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" (braces optional, any case) to 16 on-disk bytes, or null. */
export function parseGuid(text: string): Uint8Array | null {
  const m = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i.exec(
    text.trim(),
  );
  if (!m) return null;
  const out = new Uint8Array(16);
  const put = (hex: string, at: number, reverse: boolean) => {
    const n = hex.length / 2;
    for (let i = 0; i < n; i++) {
      const byte = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
      out[at + (reverse ? n - 1 - i : i)] = byte;
    }
  };
  put(m[1]!, 0, true);
  put(m[2]!, 4, true);
  put(m[3]!, 6, true);
  put(m[4]!, 8, false);
  put(m[5]!, 10, false);
  return out;
}

/** Formats 16 on-disk bytes as lowercase "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
export function formatGuid(b: Uint8Array): string {
  const h = (i: number) => b[i]!.toString(16).padStart(2, "0");
  const d1 = h(3) + h(2) + h(1) + h(0);
  const d2 = h(5) + h(4);
  const d3 = h(7) + h(6);
  const d4 = h(8) + h(9);
  const d5 = h(10) + h(11) + h(12) + h(13) + h(14) + h(15);
  return `${d1}-${d2}-${d3}-${d4}-${d5}`;
}

/** Parses a GUID constant written in the specification's text form; throws on a typo (a programming error). */
export function guidConstant(text: string): Uint8Array {
  const g = parseGuid(text);
  if (!g) throw new Error(`bad GUID constant ${text}`);
  return g;
}

export function guidEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== 16 || b.length !== 16) return false;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isZeroGuid(a: Uint8Array): boolean {
  return guidEquals(a, GUID_ZERO);
}

/** A fresh random (version 4, RFC 4122 variant) GUID in on-disk layout. */
export function randomGuid(): Uint8Array {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[7] = (b[7]! & 0x0f) | 0x40; // version nibble lives in Data3's high byte, stored little-endian
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

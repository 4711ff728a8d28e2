// Owns: CRC-32C (Castagnoli), the checksum of VHDX headers, region tables and log entries, and of iSCSI/SCTP.
// Must not: allocate per call or depend on platform intrinsics (it runs in the browser build too).
// Spec: RFC 3720 section B.4 (polynomial 0x1EDC6F41, reflected 0x82F63B78, init and final xor 0xFFFFFFFF);
// MS-VHDX section 2.2.2 uses it over structures whose checksum field reads as zero.

/** Eight tables for slicing-by-8: table k maps a byte to its CRC contribution k bytes further along. */
const TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i]!;
    for (let k = 1; k < 8; k++) {
      c = (t[c & 0xff]! ^ (c >>> 8)) >>> 0;
      t[k * 256 + i] = c;
    }
  }
  return t;
})();

/**
 * Continues a CRC-32C over `data`. `crc` is a previous result (0 to start), so a structure can be checksummed in
 * pieces: crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  for (; i < end8; i += 8) {
    const lo = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) ^ c;
    c =
      t[7 * 256 + (lo & 0xff)]! ^
      t[6 * 256 + ((lo >>> 8) & 0xff)]! ^
      t[5 * 256 + ((lo >>> 16) & 0xff)]! ^
      t[4 * 256 + (lo >>> 24)]! ^
      t[3 * 256 + data[i + 4]!]! ^
      t[2 * 256 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < n; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * The checksum of a structure that stores its own CRC-32C at `fieldOffset` (4 bytes, little-endian): computed
 * as if that field were zero, without modifying `data`.
 */
export function crc32cWithHole(data: Uint8Array, fieldOffset: number): number {
  let c = crc32c(data.subarray(0, fieldOffset));
  c = crc32c(ZERO4, c);
  return crc32c(data.subarray(fieldOffset + 4), c);
}

const ZERO4 = new Uint8Array(4);

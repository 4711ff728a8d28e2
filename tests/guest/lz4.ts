// Owns: a decoder for LZ4's legacy frame (what `lz4 -l` writes and Linux's initramfs unpacker reads), so
// that the guest-image tests can look inside guest/initramfs.cpio.lz4.
// Must not: trust the input — every length and match offset is bounds-checked, the output is capped, and
// any inconsistency is an Lz4Error.
// Spec: lz4's doc/lz4_Block_format.md (sequences: token, literals, 2-byte offset, match length) and
// doc/lz4_Frame_format.md, "Legacy frame" (magic 0x184C2102, then blocks, each a 4-byte little-endian
// compressed size and at most 8 MiB once decoded); Linux lib/decompress_unlz4.c also skips a repeated
// magic, which concatenated frames produce.

export class Lz4Error extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(`lz4 legacy frame at byte ${offset}: ${message}`);
    this.name = "Lz4Error";
  }
}

export const LZ4_LEGACY_MAGIC = 0x184c2102;
const LEGACY_BLOCK_MAX = 8 * 1024 * 1024;
/** A match is at least this long; the token stores the length minus it. */
const MIN_MATCH = 4;

function le32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/** Output that grows by doubling up to a cap. */
class Output {
  buf: Uint8Array;
  length = 0;
  constructor(private readonly max: number) {
    this.buf = new Uint8Array(Math.min(max, 1 << 20));
  }
  reserve(n: number, at: number): void {
    const need = this.length + n;
    if (need > this.max) throw new Lz4Error(at, `output exceeds the ${this.max}-byte limit`);
    if (need <= this.buf.length) return;
    let size = this.buf.length;
    while (size < need) size *= 2;
    const grown = new Uint8Array(Math.min(size, this.max));
    grown.set(this.buf.subarray(0, this.length));
    this.buf = grown;
  }
}

/** Reads an LZ4 "length extension": bytes of 255 continue it, the first smaller byte ends it. */
function extendedLength(block: Uint8Array, pos: { at: number }, base: number, where: number): number {
  let n = base;
  for (;;) {
    if (pos.at >= block.length) throw new Lz4Error(where + pos.at, "length runs past the end of the block");
    const b = block[pos.at++]!;
    n += b;
    if (b !== 255) return n;
  }
}

/** Decodes one LZ4 block (`where`: its offset in the frame, for messages) onto `out`. */
function decodeBlock(block: Uint8Array, out: Output, where: number): void {
  const blockStart = out.length;
  const pos = { at: 0 };
  while (pos.at < block.length) {
    const token = block[pos.at++]!;
    let literals = token >>> 4;
    if (literals === 15) literals = extendedLength(block, pos, literals, where);
    if (pos.at + literals > block.length) throw new Lz4Error(where + pos.at, "literals run past the block");
    out.reserve(literals, where + pos.at);
    out.buf.set(block.subarray(pos.at, pos.at + literals), out.length);
    out.length += literals;
    pos.at += literals;
    // The last sequence of a block has literals only.
    if (pos.at === block.length) break;
    if (pos.at + 2 > block.length) throw new Lz4Error(where + pos.at, "match offset runs past the block");
    const distance = block[pos.at]! | (block[pos.at + 1]! << 8);
    pos.at += 2;
    if (distance === 0 || distance > out.length - blockStart) {
      throw new Lz4Error(where + pos.at - 2, `match offset ${distance} points outside the decoded block`);
    }
    let matchLength = token & 15;
    if (matchLength === 15) matchLength = extendedLength(block, pos, matchLength, where);
    matchLength += MIN_MATCH;
    out.reserve(matchLength, where + pos.at);
    // Byte by byte: a match may overlap the bytes it produces (distance < length repeats a pattern).
    const buf = out.buf;
    let from = out.length - distance;
    for (let i = 0; i < matchLength; i++) buf[out.length++] = buf[from++]!;
  }
  if (out.length - blockStart > LEGACY_BLOCK_MAX) {
    throw new Lz4Error(where, `block decodes to more than ${LEGACY_BLOCK_MAX} bytes`);
  }
}

/** Decodes a whole legacy frame (or several concatenated ones), producing at most `maxOutput` bytes. */
export function decodeLz4Legacy(input: Uint8Array, maxOutput: number): Uint8Array {
  if (input.length < 4 || le32(input, 0) !== LZ4_LEGACY_MAGIC) {
    throw new Lz4Error(0, "no legacy magic 0x184C2102");
  }
  const out = new Output(maxOutput);
  let at = 4;
  while (at < input.length) {
    if (at + 4 > input.length) throw new Lz4Error(at, "truncated block size");
    const size = le32(input, at);
    at += 4;
    if (size === LZ4_LEGACY_MAGIC) continue;
    if (size === 0 || at + size > input.length) throw new Lz4Error(at - 4, `block size ${size} is out of range`);
    decodeBlock(input.subarray(at, at + size), out, at);
    at += size;
  }
  return out.buf.slice(0, out.length);
}

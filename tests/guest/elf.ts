// Owns: reading what the dynamic loader needs from a 64-bit little-endian ELF file — its program
// interpreter (PT_INTERP) and the shared objects it names (DT_NEEDED) — so that the guest-image tests can
// check that every dynamically linked program in the initramfs finds its loader and libraries there.
// Must not: trust the file — every offset is bounds-checked and any inconsistency is an ElfError.
// Spec: System V ABI, "Object Files" (ELF header, program header, dynamic section) and its x86-64
// supplement; <elf.h> for the constants.

export class ElfError extends Error {
  override name = "ElfError";
}

export interface ElfDynamicInfo {
  /** PT_INTERP's path, or null for a file without one (a shared library, a static program). */
  readonly interpreter: string | null;
  /** DT_NEEDED entries in file order. */
  readonly needed: readonly string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

function cString(bytes: Uint8Array, at: number, end: number): string {
  let s = "";
  for (let i = at; i < end; i++) {
    if (bytes[i] === 0) return s;
    s += String.fromCharCode(bytes[i]!);
  }
  throw new ElfError(`string at ${at} is not NUL-terminated`);
}

export function readElfDynamic(bytes: Uint8Array): ElfDynamicInfo {
  if (!isElf(bytes) || bytes.length < 64) throw new ElfError("not an ELF file");
  if (bytes[4] !== ELFCLASS64 || bytes[5] !== ELFDATA2LSB) throw new ElfError("not 64-bit little-endian");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  if (phentsize < 56 || phoff + phnum * phentsize > bytes.length) throw new ElfError("program headers out of range");

  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let interpreter: string | null = null;
  let dynamic: { offset: number; size: number } | null = null;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = view.getUint32(at, true);
    const offset = Number(view.getBigUint64(at + 8, true));
    const vaddr = Number(view.getBigUint64(at + 16, true));
    const filesz = Number(view.getBigUint64(at + 32, true));
    if (offset + filesz > bytes.length) throw new ElfError(`segment ${i} runs past the end of the file`);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_INTERP) interpreter = cString(bytes, offset, offset + filesz);
    else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
  }
  if (dynamic === null) return { interpreter, needed: [] };

  const neededOffsets: number[] = [];
  let strtabAddress: number | null = null;
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = view.getBigInt64(at, true);
    const value = Number(view.getBigUint64(at + 8, true));
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(value);
    else if (tag === DT_STRTAB) strtabAddress = value;
  }
  if (neededOffsets.length === 0) return { interpreter, needed: [] };
  if (strtabAddress === null) throw new ElfError("DT_NEEDED without DT_STRTAB");
  // DT_STRTAB is a virtual address: the PT_LOAD segment holding it gives its place in the file.
  const segment = loads.find((l) => strtabAddress >= l.vaddr && strtabAddress < l.vaddr + l.filesz);
  if (!segment) throw new ElfError("DT_STRTAB lies in no loaded segment");
  const strtab = segment.offset + (strtabAddress - segment.vaddr);
  const segmentEnd = segment.offset + segment.filesz;
  const needed = neededOffsets.map((o) => {
    if (strtab + o >= segmentEnd) throw new ElfError(`DT_NEEDED string offset ${o} out of range`);
    return cString(bytes, strtab + o, segmentEnd);
  });
  return { interpreter, needed };
}

// Owns: the plain-data description of the processor state a boot loader hands a kernel (registers, control
// registers, segment caches, descriptor-table registers), shared by every loader in the firmware tier so the
// worker can apply any of them with one function.
// Must not: import a processor or touch guest memory; values are plain numbers the worker splits into
// (lo, hi) halves when it loads them.
// Spec: Intel SDM Vol. 3A 3.4.5 (segment descriptors), 2.5 (control registers), 9.8.5 (initializing IA-32e
// mode); Vol. 3C 24.4.1 (the access-rights layout used for `access`).

/** A segment register's selector and hidden descriptor cache; `access` uses the VMCS access-rights layout. */
export interface SegmentDescriptor {
  selector: number;
  base: number;
  /** Byte-granular limit (already scaled by G). */
  limit: number;
  access: number;
}

export interface DescriptorTableRegister {
  base: number;
  limit: number;
}

/** General-purpose registers a loader sets; those absent are zero. All values are non-negative and < 2^53. */
export interface EntryRegisters {
  rax?: number;
  rbx?: number;
  rcx?: number;
  rdx?: number;
  rsi?: number;
  rdi?: number;
  rbp?: number;
  rsp?: number;
}

/** A complete entry state: after applying it the processor runs at `rip` in the given mode. */
export interface EntryState {
  /** "protected32": CR0.PE, paging off. "long64": IA-32e mode with paging (CS.L = 1). */
  mode: "protected32" | "long64";
  rip: number;
  rflags: number;
  registers: EntryRegisters;
  cr0: number;
  cr3: number;
  cr4: number;
  /** IA32_EFER (MSR 0xC0000080), LMA included as the processor would report it after the mode switch. */
  efer: number;
  cs: SegmentDescriptor;
  ds: SegmentDescriptor;
  es: SegmentDescriptor;
  ss: SegmentDescriptor;
  fs: SegmentDescriptor;
  gs: SegmentDescriptor;
  gdtr: DescriptorTableRegister;
  idtr: DescriptorTableRegister;
}

// Access rights (Vol. 3C 24.4.1): type in bits 0-3, S bit 4, DPL 5-6, P 7, L 13, D/B 14, G 15.
/** Execute/read code, accessed, present, 32-bit (D=1), 4 KiB granular. */
export const ACCESS_CODE32 = 0xc09b;
/** Execute/read code, accessed, present, 64-bit (L=1, D=0), 4 KiB granular. */
export const ACCESS_CODE64 = 0xa09b;
/** Read/write data, accessed, present, big (B=1), 4 KiB granular. */
export const ACCESS_DATA = 0xc093;

/** A flat segment covering 4 GiB with the given selector and access rights. */
export function flatSegment(selector: number, access: number): SegmentDescriptor {
  return { selector, base: 0, limit: 0xffffffff, access };
}

// Owns: the layout of a processor-state slot in the WebAssembly-backed guest memory (GuestMemory.claimSlot):
// where the general-purpose registers, the software TLB and the exchange area sit, as byte offsets from
// the slot's start. The interpreter sees these bytes as its typed arrays (core.ts), translated code as
// memory; both read and write the same registers and TLB, so neither copies them.
// Must not: hold code; every offset is fixed for the life of a processor.
// Spec: docs/decisions/0005-wasm-tier.md (state shared through one memory).

import { STATE_SLOT_BYTES } from "../../memory/guest-memory.js";

/** GPR low halves (16 x i32) and high halves (16 x i32): CpuCore.rlo / CpuCore.rhi. */
export const REG_LO = 0;
export const REG_HI = 64;

/**
 * The exchange area (i32 slots from XCH): values the run loop and translated code hand each other at a
 * unit's entry and exit, and that helper calls from translated code pass (CpuCore.xch).
 */
export const XCH = 128;
export const enum X {
  /** RIP where a unit stopped (low, high). */
  RipLo = 0,
  RipHi = 1,
  /** Instructions a unit retired in this call. */
  Count = 2,
  /** Index (in the unit's instruction table) of the instruction a unit stopped at or calls a helper for. */
  Index = 3,
  /** An 8-byte value a helper returns (slow-path reads); 8-byte aligned. */
  ValLo = 4,
  ValHi = 5,
  /** The lazy flags (flags.ts FlagUnit): op, size, operands a/b and result r (lo, hi), carry-in, RFLAGS. */
  FOp = 6,
  FSize = 7,
  FaLo = 8,
  FaHi = 9,
  FbLo = 10,
  FbHi = 11,
  FrLo = 12,
  FrHi = 13,
  FCin = 14,
  Flags = 15,
  /** FS and GS bases (lo, hi) as of the unit's entry (they change only through instructions that end it). */
  FsLo = 16,
  FsHi = 17,
  GsLo = 18,
  GsHi = 19,
  /** Byte address of the TLB tag region for the current privilege (slot + TLB_TAG + CpuCore.tlbUser * 8). */
  Tlbu = 20,
  /** Set by the dispatcher before each unit call: the unit's table index, RIP base and the chain's count. */
  Unit = 21,
  BaseLo = 22,
  BaseHi = 23,
  Chain = 24,
  /**
   * Instructions a handler called from a unit retired beyond its own one (each iteration of a REP string
   * instruction retires, string-ops.ts); the unit adds them to its count after every helper call.
   */
  Extra = 25,
}
export const XCH_SLOTS = 32;

/** The software TLB (core.ts): tags then RAM offsets, each 9 regions x TLB_SIZE float64 entries. */
export const TLB_TAG = 1024;
export const TLB_ENTRIES = 9 * 512;
export const TLB_OFF = TLB_TAG + TLB_ENTRIES * 8;

/** The page map (u16 per RAM page: 1 + the table index of the page's unit, or 0) after the fixed state. */
export const UNIT_MAP = STATE_SLOT_BYTES;

if (TLB_OFF + TLB_ENTRIES * 8 > STATE_SLOT_BYTES) throw new Error("processor state does not fit its slot");

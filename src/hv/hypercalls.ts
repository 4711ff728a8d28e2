// Owns: the hypercall interface: decoding the hypercall input value (call code, fast, variable header size,
// rep count / start index, reserved bits), gathering the input block from guest memory or from registers
// (RDX/R8, and XMM0-5 when XMM fast input is offered; EDX:EAX, EBX:ECX, EDI:ESI for 32-bit callers), input
// validation with the documented status codes, the calls this hypervisor implements, and the result value.
// Must not: read or write memory outside the calling partition (`HypercallHost.memory` is the only memory it
// sees, and every access is range-checked against it first), advance RIP (the partition completes the
// VMCALL), or touch the processor beyond the registers of the calling convention.
// Spec: TLFS hypercall-interface.md ("Hypercall Inputs", "Hypercall Register Conventions", "XMM Fast
// Hypercall Input", "Variable Sized Hypercall Input Headers", "Alignment Requirements", "Hypercall Outputs",
// "Common Hypercall Status Codes", "Legal Hypercall Environments"); hypercalls/HvCallPostMessage.md,
// HvCallSignalEvent.md, HvCallFlushVirtualAddressSpace(Ex).md, HvCallFlushVirtualAddressList(Ex).md,
// HvCallSendSyntheticClusterIpi(Ex).md, HvCallNotifyLongSpinWait.md; datatypes/hv_vp_set.md.

import { type GuestMemory, PAGE_READ, PAGE_SIZE, ramPageOf } from "../memory/guest-memory.js";
import { Reg } from "../x86/processor.js";
import {
  FEATURE_XMM_HYPERCALL_INPUT,
  HV_STATUS_ACCESS_DENIED,
  HV_STATUS_INVALID_ALIGNMENT,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_INVALID_HYPERCALL_CODE,
  HV_STATUS_INVALID_HYPERCALL_INPUT,
  HV_STATUS_INVALID_PARAMETER,
  HV_STATUS_SUCCESS,
  HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST,
  HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX,
  HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE,
  HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX,
  HVCALL_NOTIFY_LONG_SPIN_WAIT,
  HVCALL_POST_MESSAGE,
  HVCALL_SEND_SYNTHETIC_CLUSTER_IPI,
  HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX,
  HVCALL_SIGNAL_EVENT,
  MESSAGE_PAYLOAD_MAX,
  PRIV_HIGH_POST_MESSAGES,
  PRIV_HIGH_SIGNAL_EVENTS,
} from "./tlfs.js";

/** What the hypercall code needs from its partition. */
export interface HypercallHost {
  readonly memory: GuestMemory;
  readonly vpCount: number;
  /** Privilege mask bits 63:32 (0x40000003.EBX) as offered to the guest. */
  readonly privilegesHigh: number;
  /** 0x40000003.EDX as offered to the guest. */
  readonly features: number;
  flushTlb(vpIndex: number, nonGlobalOnly: boolean): void;
  sendIpi(vpIndex: number, vector: number): void;
  /** Routes a posted message to the root port of `connectionId`; returns an HV_STATUS. */
  postMessage(fromVp: number, connectionId: number, messageType: number, payload: Uint8Array): number;
  /** Routes an event signal to the root port of `connectionId`; returns an HV_STATUS. */
  signalEvent(fromVp: number, connectionId: number, flagNumber: number): number;
}

/** The registers of the calling convention (src/x86/cpu.ts `Cpu` satisfies this). */
export interface HypercallRegisters {
  getReg(reg: Reg): { lo: number; hi: number };
  setReg(reg: Reg, lo: number, hi: number): void;
  /** XMM0-15 as 4 little-endian dwords each. */
  readonly xmm: Int32Array;
}

/** How a hypercall ended: #UD for the caller to inject, or a result written to the registers. */
export const enum HypercallOutcome {
  Completed = 0,
  InvalidOpcode = 1,
}

interface CallSpec {
  rep: boolean;
  varHeader: boolean;
  fast: boolean;
  /** Fixed header bytes. */
  header: number;
  /** Bytes per rep element. */
  element: number;
  /** Privilege bit in the high dword the call needs (0: none). */
  privilegeHigh: number;
}

const CALLS = new Map<number, CallSpec>([
  [HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, spec(false, false, true, 24, 0)],
  [HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, spec(true, false, true, 24, 8)],
  [HVCALL_NOTIFY_LONG_SPIN_WAIT, spec(false, false, true, 8, 0)],
  [HVCALL_SEND_SYNTHETIC_CLUSTER_IPI, spec(false, false, true, 16, 0)],
  [HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX, spec(false, true, true, 32, 0)],
  [HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX, spec(true, true, true, 32, 8)],
  [HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX, spec(false, true, true, 24, 0)],
  [HVCALL_POST_MESSAGE, spec(false, false, false, 16 + MESSAGE_PAYLOAD_MAX, 0, PRIV_HIGH_POST_MESSAGES)],
  [HVCALL_SIGNAL_EVENT, spec(false, false, true, 8, 0, PRIV_HIGH_SIGNAL_EVENTS)],
]);

function spec(
  rep: boolean,
  varHeader: boolean,
  fast: boolean,
  header: number,
  element: number,
  privilegeHigh = 0,
): CallSpec {
  return { rep, varHeader, fast, header, element, privilegeHigh };
}

/** The hypercall codes this hypervisor implements (everything else is INVALID_HYPERCALL_CODE). */
export const IMPLEMENTED_HYPERCALLS: readonly number[] = [...CALLS.keys()];

/** Largest register-passed input: RDX, R8 and XMM0-5 (hypercall-interface.md, XMM Fast Hypercall Input). */
const FAST_XMM_BYTES = 112;
const FAST_GPR_BYTES = 16;
/** Flush flags: ALL_PROCESSORS, ALL_VIRTUAL_ADDRESS_SPACES, NON_GLOBAL_MAPPINGS_ONLY. */
const FLUSH_ALL_PROCESSORS = 1;
const FLUSH_NON_GLOBAL_ONLY = 4;
const FLUSH_FLAGS_DEFINED = 7;

/** A decoded call, for tests and tracing. */
export interface HypercallInput {
  code: number;
  fast: boolean;
  varHeaderQwords: number;
  repCount: number;
  repStart: number;
  /** A reserved bit (27-31, 44-47, 60-63) is set. */
  reservedSet: boolean;
}

/** Splits the 64-bit hypercall input value (lo, hi) into its fields. */
export function decodeControl(lo: number, hi: number): HypercallInput {
  return {
    code: lo & 0xffff,
    fast: (lo & 0x10000) !== 0,
    varHeaderQwords: (lo >>> 17) & 0x3ff,
    repCount: hi & 0xfff,
    repStart: (hi >>> 16) & 0xfff,
    reservedSet: (lo & 0xf8000000) !== 0 || (hi & 0xf000f000) !== 0,
  };
}

/** Result value: status in 15:0, reps completed in 43:32. */
function setResult(regs: HypercallRegisters, is64: boolean, status: number, reps: number): void {
  if (is64) regs.setReg(Reg.RAX, status & 0xffff, reps & 0xfff);
  else {
    regs.setReg(Reg.RAX, status & 0xffff, 0);
    regs.setReg(Reg.RDX, reps & 0xfff, 0);
  }
}

function read64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
}

/**
 * Executes the hypercall of the processor whose registers are `regs`, issued by VP `vpIndex` in 64-bit mode
 * (`is64`) or 32-bit protected mode. The caller has checked the legal environment (CPL 0, protected mode,
 * hypercall page enabled); this writes the result into RAX (EDX:EAX) or returns InvalidOpcode for the XMM
 * convention used without it being offered.
 */
export function executeHypercall(
  host: HypercallHost,
  vpIndex: number,
  regs: HypercallRegisters,
  is64: boolean,
): HypercallOutcome {
  const pair = (a: Reg, b: Reg): { lo: number; hi: number } => {
    if (is64) return regs.getReg(a);
    return { lo: regs.getReg(b).lo >>> 0, hi: regs.getReg(a).lo >>> 0 };
  };
  // x64: RCX / RDX / R8; x86: EDX:EAX / EBX:ECX / EDI:ESI (high:low).
  const control = is64 ? regs.getReg(Reg.RCX) : pair(Reg.RDX, Reg.RAX);
  const inReg = is64 ? regs.getReg(Reg.RDX) : pair(Reg.RBX, Reg.RCX);
  const outReg = is64 ? regs.getReg(Reg.R8) : pair(Reg.RDI, Reg.RSI);
  const c = decodeControl(control.lo, control.hi);
  const call = CALLS.get(c.code);
  if (call === undefined) {
    setResult(regs, is64, HV_STATUS_INVALID_HYPERCALL_CODE, 0);
    return HypercallOutcome.Completed;
  }
  const fail = (status: number, reps = 0): HypercallOutcome => {
    setResult(regs, is64, status, reps);
    return HypercallOutcome.Completed;
  };
  // Privilege first: ACCESS_DENIED reveals nothing about the input (hypercall-interface.md, ordering).
  if (call.privilegeHigh !== 0 && (host.privilegesHigh & call.privilegeHigh) === 0) {
    return fail(HV_STATUS_ACCESS_DENIED);
  }
  if (c.reservedSet) return fail(HV_STATUS_INVALID_HYPERCALL_INPUT);
  if (call.rep) {
    if (c.repCount === 0 || c.repStart >= c.repCount) return fail(HV_STATUS_INVALID_HYPERCALL_INPUT);
  } else if (c.repCount !== 0 || c.repStart !== 0) return fail(HV_STATUS_INVALID_HYPERCALL_INPUT);
  if (c.varHeaderQwords !== 0 && !call.varHeader) return fail(HV_STATUS_INVALID_HYPERCALL_INPUT);
  if (c.fast && !call.fast) return fail(HV_STATUS_INVALID_HYPERCALL_INPUT);
  const size = call.header + c.varHeaderQwords * 8 + c.repCount * call.element;
  let input: DataView;
  if (c.fast) {
    if (size > FAST_GPR_BYTES) {
      // The XMM convention without the feature offered is #UD (hypercall-interface.md).
      if ((host.features & FEATURE_XMM_HYPERCALL_INPUT) === 0) return HypercallOutcome.InvalidOpcode;
      if (size > FAST_XMM_BYTES) return fail(HV_STATUS_INVALID_HYPERCALL_INPUT);
    }
    const buf = new DataView(new ArrayBuffer(FAST_XMM_BYTES));
    buf.setUint32(0, inReg.lo >>> 0, true);
    buf.setUint32(4, inReg.hi >>> 0, true);
    buf.setUint32(8, outReg.lo >>> 0, true);
    buf.setUint32(12, outReg.hi >>> 0, true);
    if (size > FAST_GPR_BYTES) for (let i = 0; i < 24; i++) buf.setInt32(16 + i * 4, regs.xmm[i]!, true);
    input = buf;
  } else {
    const gpa = (inReg.hi >>> 0) * 0x1_0000_0000 + (inReg.lo >>> 0);
    const status = checkInputBlock(host.memory, gpa, size);
    if (status !== HV_STATUS_SUCCESS) return fail(status);
    // A copy: the guest (another VP) cannot change the input while it is being validated and used.
    const copy = new Uint8Array(size);
    host.memory.read(gpa, copy);
    input = new DataView(copy.buffer);
  }
  return dispatch(host, vpIndex, c, call, input, (status, reps) => fail(status, reps));
}

/** Validates a memory input block: 8-byte aligned, within one page, RAM of this partition, readable. */
export function checkInputBlock(memory: GuestMemory, gpa: number, size: number): number {
  if (gpa % 8 !== 0) return HV_STATUS_INVALID_ALIGNMENT;
  if ((gpa % PAGE_SIZE) + size > PAGE_SIZE) return HV_STATUS_INVALID_ALIGNMENT;
  if (!Number.isSafeInteger(gpa) || !memory.isRam(gpa, size)) return HV_STATUS_INVALID_ALIGNMENT;
  if ((memory.rights[ramPageOf(memory.offsetOf(gpa))]! & PAGE_READ) === 0) return HV_STATUS_ACCESS_DENIED;
  return HV_STATUS_SUCCESS;
}

/** VP indexes named by a sparse HV_VP_SET (format 0) or all VPs (format 1); null if malformed. */
function vpSet(host: HypercallHost, input: DataView, at: number, varQwords: number): number[] | null {
  const format = read64(input, at);
  const banksLo = input.getUint32(at + 8, true);
  const banksHi = input.getUint32(at + 12, true);
  if (format === 1) return Array.from({ length: host.vpCount }, (_, i) => i);
  if (format !== 0) return null;
  const out: number[] = [];
  let bankIndex = 0;
  for (let bank = 0; bank < 64; bank++) {
    const present = bank < 32 ? (banksLo >>> bank) & 1 : (banksHi >>> (bank - 32)) & 1;
    if (present === 0) continue;
    if (bankIndex >= varQwords) return null;
    const p = at + 16 + bankIndex * 8;
    const words = [input.getUint32(p, true), input.getUint32(p + 4, true)];
    for (let b = 0; b < 64; b++) {
      if (((words[b >> 5]! >>> (b & 31)) & 1) !== 0) {
        const vp = bank * 64 + b;
        if (vp < host.vpCount) out.push(vp);
      }
    }
    bankIndex++;
  }
  // The variable header must hold exactly one qword per valid bank.
  return bankIndex === varQwords ? out : null;
}

function maskTargets(host: HypercallHost, lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let vp = 0; vp < Math.min(64, host.vpCount); vp++) {
    if ((((vp < 32 ? lo : hi) >>> (vp & 31)) & 1) !== 0) out.push(vp);
  }
  return out;
}

function dispatch(
  host: HypercallHost,
  vpIndex: number,
  c: HypercallInput,
  call: CallSpec,
  input: DataView,
  done: (status: number, reps: number) => HypercallOutcome,
): HypercallOutcome {
  switch (c.code) {
    case HVCALL_NOTIFY_LONG_SPIN_WAIT:
      // Advisory: nothing to yield to inside one run loop.
      return done(HV_STATUS_SUCCESS, 0);
    case HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE:
    case HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST:
    case HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX:
    case HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX: {
      const flagsLo = input.getUint32(8, true);
      const flagsHi = input.getUint32(12, true);
      const isList =
        c.code === HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST || c.code === HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX;
      if (flagsHi !== 0 || (flagsLo & ~FLUSH_FLAGS_DEFINED) !== 0)
        return done(HV_STATUS_INVALID_PARAMETER, 0);
      // NON_GLOBAL_MAPPINGS_ONLY "does not make sense" for the list forms and is invalid there.
      if (isList && (flagsLo & FLUSH_NON_GLOBAL_ONLY) !== 0) return done(HV_STATUS_INVALID_PARAMETER, 0);
      let targets: number[] | null;
      const ex =
        c.code === HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX || c.code === HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX;
      if ((flagsLo & FLUSH_ALL_PROCESSORS) !== 0) targets = Array.from({ length: host.vpCount }, (_, i) => i);
      else if (ex) targets = vpSet(host, input, 16, c.varHeaderQwords);
      else targets = maskTargets(host, input.getUint32(16, true), input.getUint32(20, true));
      if (targets === null) return done(HV_STATUS_INVALID_HYPERCALL_INPUT, 0);
      // Our TLB is per processor and cheap to refill: a list flush flushes everything it could name.
      for (const vp of targets) host.flushTlb(vp, (flagsLo & FLUSH_NON_GLOBAL_ONLY) !== 0);
      return done(HV_STATUS_SUCCESS, call.rep ? c.repCount : 0);
    }
    case HVCALL_SEND_SYNTHETIC_CLUSTER_IPI:
    case HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX: {
      const vector = input.getUint32(0, true);
      const vtl = input.getUint8(4);
      if (vector < 0x10 || vector > 0xff || vtl !== 0) return done(HV_STATUS_INVALID_PARAMETER, 0);
      const targets =
        c.code === HVCALL_SEND_SYNTHETIC_CLUSTER_IPI
          ? maskTargets(host, input.getUint32(8, true), input.getUint32(12, true))
          : vpSet(host, input, 8, c.varHeaderQwords);
      if (targets === null) return done(HV_STATUS_INVALID_HYPERCALL_INPUT, 0);
      for (const vp of targets) host.sendIpi(vp, vector);
      return done(HV_STATUS_SUCCESS, 0);
    }
    case HVCALL_POST_MESSAGE: {
      const connectionId = input.getUint32(0, true);
      const type = input.getUint32(8, true);
      const size = input.getUint32(12, true);
      if (type === 0 || (type & 0x80000000) !== 0 || size > MESSAGE_PAYLOAD_MAX) {
        return done(HV_STATUS_INVALID_PARAMETER, 0);
      }
      if ((connectionId & 0xff000000) !== 0) return done(HV_STATUS_INVALID_CONNECTION_ID, 0);
      const payload = new Uint8Array(input.buffer, input.byteOffset + 16, size).slice();
      return done(host.postMessage(vpIndex, connectionId, type, payload), 0);
    }
    case HVCALL_SIGNAL_EVENT: {
      const connectionId = input.getUint32(0, true);
      const flag = input.getUint16(4, true);
      if ((connectionId & 0xff000000) !== 0) return done(HV_STATUS_INVALID_CONNECTION_ID, 0);
      return done(host.signalEvent(vpIndex, connectionId, flag), 0);
    }
    default:
      return done(HV_STATUS_INVALID_HYPERCALL_CODE, 0);
  }
}

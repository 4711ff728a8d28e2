// Owns: one virtual processor's synthetic interrupt controller (SynIC): SCONTROL, SVERSION, SIEFP, SIMP, EOM
// and SINT0-15, message delivery into the SIM page with the message-pending / EOM protocol (a busy slot
// queues; EOM redelivers), event flags in the SIEF page, and asserting SINT vectors through the VP's
// interrupt controller (`VpInterruptTarget`, which the local APIC satisfies structurally).
// Must not: touch memory outside its own partition's GuestMemory (every page it writes is checked to be RAM
// of this partition with write rights when it is enabled), or know ports and connections (the partition
// routes those).
// Spec: TLFS inter-partition-communication.md ("SynIC", "SINTx Registers", "SIM Page", "SIEF Page",
// "EOM Register", message buffer layout HV_MESSAGE in datatypes/hv_message.md). A SINT with AutoEOI set is
// asserted with the target's AutoEOI acceptance (the local APIC retires the vector at acknowledge, never
// setting ISR); guests told "deprecating AutoEOI" (recommendation bit 9, the default) do not use it.

import { type GuestMemory, PAGE_SIZE, PAGE_WRITE, ramPageOf } from "../memory/guest-memory.js";
import { MSR_GP, MSR_OK, msrValue, type MsrResult } from "./msr-result.js";
import {
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_PARAMETER,
  HV_STATUS_INVALID_SYNIC_STATE,
  HV_STATUS_SUCCESS,
  MESSAGE_FLAG_PENDING,
  MESSAGE_PAYLOAD_MAX,
  MESSAGE_SIZE,
  MSR_EOM,
  MSR_SCONTROL,
  MSR_SIEFP,
  MSR_SIMP,
  MSR_SINT0,
  MSR_SINT15,
  MSR_SVERSION,
  SINT_AUTO_EOI,
  SINT_COUNT,
  SINT_MASKED,
  SINT_RESET,
  SYNIC_VERSION,
} from "./tlfs.js";

/** Where a VP's interrupts go: the local APIC (src/hv/local-apic.ts) satisfies this structurally. */
export interface VpInterruptTarget {
  /**
   * Accepts a fixed-delivery interrupt with this vector (edge-triggered unless `levelTriggered`); with
   * `autoEoi` the vector needs no EOI (SynIC AutoEOI).
   */
  acceptFixed(vector: number, levelTriggered: boolean, autoEoi?: boolean): void;
  /**
   * False while the controller is globally disabled (a local APIC with IA32_APIC_BASE[11] = 0): CPUID then
   * reports no APIC (CPUID.01H:EDX[9] = 0, SDM Vol. 3A 11.4.3). Absent: always enabled.
   */
  readonly enabled?: boolean;
}

/** Messages waiting for a SINT's slot, per SINT; beyond this the sender gets INSUFFICIENT_BUFFERS. */
export const MESSAGE_QUEUE_LIMIT = 16;

interface QueuedMessage {
  type: number;
  payload: Uint8Array;
  sender: number;
  /** Called when the message lands in the slot (e.g. a timer fills in its delivery time). */
  onDeliver: ((payload: Uint8Array) => void) | null;
}

/** A 64-bit MSR value as a guest-physical page base: bits 63:12 of (lo, hi). */
export function pageBase(lo: number, hi: number): number {
  return (hi >>> 0) * 0x1_0000_0000 + ((lo & ~0xfff) >>> 0);
}

/** Whether the hypervisor may place an overlay page at `gpa`: RAM of this partition the root lets it write. */
export function overlayPageUsable(memory: GuestMemory, gpa: number): boolean {
  if (!Number.isSafeInteger(gpa) || gpa % PAGE_SIZE !== 0 || !memory.isRam(gpa, PAGE_SIZE)) return false;
  return (memory.rights[ramPageOf(memory.offsetOf(gpa))]! & PAGE_WRITE) !== 0;
}

export class Synic {
  private readonly memory: GuestMemory;
  private readonly view: DataView;
  target: VpInterruptTarget | null = null;
  scontrolLo = 0;
  scontrolHi = 0;
  siefpLo = 0;
  siefpHi = 0;
  simpLo = 0;
  simpHi = 0;
  readonly sintLo = new Uint32Array(SINT_COUNT).fill(SINT_RESET);
  readonly sintHi = new Uint32Array(SINT_COUNT);
  private readonly queues: QueuedMessage[][] = Array.from({ length: SINT_COUNT }, () => []);
  /** Counters for inspection and tests. */
  delivered = 0;
  queuedTotal = 0;

  constructor(memory: GuestMemory) {
    this.memory = memory;
    this.view = memory.view;
  }

  get enabled(): boolean {
    return (this.scontrolLo & 1) !== 0;
  }

  private get simpGpa(): number {
    return (this.simpLo & 1) !== 0 ? pageBase(this.simpLo, this.simpHi) : -1;
  }

  private get siefpGpa(): number {
    return (this.siefpLo & 1) !== 0 ? pageBase(this.siefpLo, this.siefpHi) : -1;
  }

  reset(): void {
    this.scontrolLo = this.scontrolHi = 0;
    this.siefpLo = this.siefpHi = 0;
    this.simpLo = this.simpHi = 0;
    this.sintLo.fill(SINT_RESET);
    this.sintHi.fill(0);
    for (const q of this.queues) q.length = 0;
  }

  owns(msr: number): boolean {
    return (msr >= MSR_SCONTROL && msr <= MSR_EOM) || (msr >= MSR_SINT0 && msr <= MSR_SINT15);
  }

  readMsr(msr: number): MsrResult {
    switch (msr) {
      case MSR_SCONTROL:
        return msrValue(this.scontrolLo, this.scontrolHi);
      case MSR_SVERSION:
        return msrValue(SYNIC_VERSION, 0);
      case MSR_SIEFP:
        return msrValue(this.siefpLo, this.siefpHi);
      case MSR_SIMP:
        return msrValue(this.simpLo, this.simpHi);
      case MSR_EOM:
        return msrValue(0, 0);
      default: {
        const n = msr - MSR_SINT0;
        if (n < 0 || n >= SINT_COUNT) return MSR_GP;
        return msrValue(this.sintLo[n]!, this.sintHi[n]!);
      }
    }
  }

  /** MSR_GP for a write the TLFS refuses with #GP. */
  writeMsr(msr: number, lo: number, hi: number): MsrResult {
    lo >>>= 0;
    hi >>>= 0;
    switch (msr) {
      case MSR_SCONTROL: {
        const was = this.enabled;
        this.scontrolLo = lo;
        this.scontrolHi = hi;
        if (!was && this.enabled) this.redeliverAll();
        return MSR_OK;
      }
      case MSR_SVERSION:
        return MSR_GP;
      case MSR_SIEFP:
      case MSR_SIMP: {
        const isSimp = msr === MSR_SIMP;
        const oldLo = isSimp ? this.simpLo : this.siefpLo;
        const oldHi = isSimp ? this.simpHi : this.siefpHi;
        if ((lo & 1) !== 0) {
          const gpa = pageBase(lo, hi);
          if (!overlayPageUsable(this.memory, gpa)) return MSR_GP;
          // An overlay page appears zeroed when it is (re)mapped; rewriting the same value keeps it.
          if ((oldLo & 1) === 0 || pageBase(oldLo, oldHi) !== gpa) this.zeroPage(gpa);
        }
        if (isSimp) {
          this.simpLo = lo;
          this.simpHi = hi;
          if ((lo & 1) !== 0) this.redeliverAll();
        } else {
          this.siefpLo = lo;
          this.siefpHi = hi;
        }
        return MSR_OK;
      }
      case MSR_EOM:
        this.redeliverAll();
        return MSR_OK;
      default: {
        const n = msr - MSR_SINT0;
        if (n < 0 || n >= SINT_COUNT) return MSR_GP;
        // Vectors 0-15 are architecturally reserved; an unmasked SINT may not use them.
        if ((lo & 0xff) < 16 && (lo & SINT_MASKED) === 0) return MSR_GP;
        this.sintLo[n] = lo;
        this.sintHi[n] = hi;
        return MSR_OK;
      }
    }
  }

  private zeroPage(gpa: number): void {
    this.memory.fill(gpa, PAGE_SIZE, 0);
  }

  /** Asserts SINT n's vector on this VP if the SynIC is enabled and the SINT unmasked. */
  private assertSint(n: number): void {
    const v = this.sintLo[n]!;
    if (!this.enabled || (v & SINT_MASKED) !== 0 || (v & 0xff) < 16) return;
    this.target?.acceptFixed(v & 0xff, false, (v & SINT_AUTO_EOI) !== 0);
  }

  /**
   * Posts a message to SINT `sint`: into its SIM slot if free, else queued (message-pending set in the busy
   * slot). Returns an HV_STATUS: INVALID_SYNIC_STATE when the SynIC or SIM page is off, INSUFFICIENT_BUFFERS
   * when the queue is full.
   */
  postMessage(
    sint: number,
    type: number,
    payload: Uint8Array,
    sender = 0,
    onDeliver: ((payload: Uint8Array) => void) | null = null,
  ): number {
    if (!Number.isInteger(sint) || sint < 0 || sint >= SINT_COUNT) return HV_STATUS_INVALID_PARAMETER;
    if (payload.length > MESSAGE_PAYLOAD_MAX || type === 0) return HV_STATUS_INVALID_PARAMETER;
    if (!this.enabled || this.simpGpa < 0) return HV_STATUS_INVALID_SYNIC_STATE;
    const q = this.queues[sint]!;
    if (q.length >= MESSAGE_QUEUE_LIMIT) return HV_STATUS_INSUFFICIENT_BUFFERS;
    q.push({ type: type >>> 0, payload: payload.slice(), sender, onDeliver });
    this.queuedTotal++;
    this.redeliver(sint);
    return HV_STATUS_SUCCESS;
  }

  /** Whether SINT `sint` has messages that did not fit in its slot yet. */
  pendingCount(sint: number): number {
    return this.queues[sint]?.length ?? 0;
  }

  private redeliverAll(): void {
    for (let n = 0; n < SINT_COUNT; n++) if (this.queues[n]!.length > 0) this.redeliver(n);
  }

  /** Moves the head of SINT n's queue into its slot if the slot is free; marks the slot pending otherwise. */
  private redeliver(n: number): void {
    const q = this.queues[n]!;
    const base = this.simpGpa;
    if (q.length === 0 || !this.enabled || base < 0) return;
    const slotGpa = base + n * MESSAGE_SIZE;
    const slot = this.memory.offsetOf(slotGpa);
    const v = this.view;
    if (v.getUint32(slot, true) !== 0) {
      v.setUint8(slot + 5, v.getUint8(slot + 5) | MESSAGE_FLAG_PENDING);
      this.memory.noteWrite(slot + 5, 1);
      return;
    }
    const m = q.shift()!;
    m.onDeliver?.(m.payload);
    // The body first (type still 0 in RAM), then the header fields, then the type below.
    const body = new Uint8Array(MESSAGE_SIZE - 16);
    body.set(m.payload);
    this.memory.write(slotGpa + 16, body);
    v.setUint8(slot + 4, m.payload.length);
    v.setUint8(slot + 5, q.length > 0 ? MESSAGE_FLAG_PENDING : 0);
    v.setUint8(slot + 6, 0);
    v.setUint8(slot + 7, 0);
    v.setUint32(slot + 8, m.sender >>> 0, true);
    v.setUint32(slot + 12, 0, true);
    // The type goes last: a guest polling the slot sees a complete message once it is nonzero.
    v.setUint32(slot, m.type, true);
    this.memory.noteWrite(slot, MESSAGE_SIZE);
    this.delivered++;
    this.assertSint(n);
  }

  /**
   * Sets event flag `flag` of SINT `sint` in the SIEF page; asserts the SINT when the flag was clear.
   * Returns an HV_STATUS.
   */
  signalEvent(sint: number, flag: number): number {
    if (!Number.isInteger(sint) || sint < 0 || sint >= SINT_COUNT) return HV_STATUS_INVALID_PARAMETER;
    if (!Number.isInteger(flag) || flag < 0 || flag >= MESSAGE_SIZE * 8) return HV_STATUS_INVALID_PARAMETER;
    const base = this.siefpGpa;
    if (!this.enabled || base < 0) return HV_STATUS_INVALID_SYNIC_STATE;
    const at = this.memory.offsetOf(base) + sint * MESSAGE_SIZE + (flag >>> 3);
    const bit = 1 << (flag & 7);
    const old = this.view.getUint8(at);
    if ((old & bit) === 0) {
      this.view.setUint8(at, old | bit);
      this.memory.noteWrite(at, 1);
      this.assertSint(sint);
    }
    return HV_STATUS_SUCCESS;
  }

  /** Plain data for state hashes and inspection. */
  state(): number[] {
    const out = [this.scontrolLo, this.scontrolHi, this.siefpLo, this.siefpHi, this.simpLo, this.simpHi];
    for (let n = 0; n < SINT_COUNT; n++) out.push(this.sintLo[n]!, this.sintHi[n]!, this.queues[n]!.length);
    out.push(this.delivered, this.queuedTotal);
    return out;
  }
}

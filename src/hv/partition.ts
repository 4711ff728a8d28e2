// Owns: a guest partition, the isolation boundary: its guest-physical memory (RAM, the MMIO hole, the per-page
// rights that supersede the guest's page tables), its privilege mask, its virtual processors (each built and
// wired by `VirtualProcessor`: processor, local APIC, SynIC, synthetic timers; `addVp` adds one), the APIC
// bus joining their APICs, its one virtual clock (wall, deterministic or external) with the reference counter
// and reference TSC page derived from it, the hypervisor CPUID leaves, the synthetic MSRs, the hypercall page
// and hypercall dispatch, the guest-crash report, the root-side message/event ports, the intercept table
// through which the root registers the port, MMIO and MSR ranges it answers (the one path an access the
// hypervisor does not own takes), and the one entry point the worker calls for every VM exit (`handleExit` /
// `runVp`) plus `nextDeadlineNs` / `tick` (synthetic timers and APIC timers). Exits that are nobody's to
// handle here (HLT, triple fault, the end of a batch, access violations) go back to the caller as "forward".
// Must not: reach any other partition's memory (there is no API taking a second partition or its memory; all
// guest addresses are checked against this partition's GuestMemory), import chipset or worker code, or
// throw on guest input (a hostile guest gets #GP, #UD or an HV_STATUS).
// Spec: TLFS feature-discovery.md (CPUID 0x40000000-0x4000000A, partition privileges), hypercall-interface.md
// ("Reporting the Guest OS Identity", "Establishing the Hypercall Interface", "Legal Hypercall
// Environments"), timers.md (reference counter, reference TSC page, TSC/APIC frequency MSRs), the TLFS
// "Guest Crash Enlightenment" (HV_X64_MSR_CRASH_P0-P4, CRASH_CTL), virtual-processor index/run time MSRs,
// vp assist page (datatypes/hv_vp_assist_page.md); ARCHITECTURE.md "Time" and "Security model";
// ../shared/research/hyperv-linux-guest-checklist.md sections 1-4 for what Linux 6.1 needs.

import type { ApicMessageSink, Clock } from "../contracts/platform.js";
import { GuestMemory, PAGE_SIZE, ramPageOf } from "../memory/guest-memory.js";
import { Reg } from "../x86/processor.js";
import { ExitReason } from "../x86/vm-exit.js";
import { executeHypercall, HypercallOutcome, type HypercallHost } from "./hypercalls.js";
import { InterceptTable, type MmioHandler, type MsrHandler, type PortHandler } from "./intercepts.js";
import { ApicBus, LocalApic } from "./local-apic.js";
import { MSR_GP, MSR_OK, msrValue, msrWritten, type MsrResult } from "./msr-result.js";
import { PartitionClock, ReferenceTime, type TimeSource } from "./reference-time.js";
import { overlayPageUsable, pageBase } from "./synic.js";
import * as T from "./tlfs.js";
import {
  ExitHandling,
  type PlatformInterrupts,
  VirtualProcessor,
  type VpInterruptController,
} from "./virtual-processor.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export { ExitHandling, VirtualProcessor };

const VECTOR_UD = 6;
const VECTOR_GP = 13;
const CR0_PE = 1;
const RFLAGS_VM = 1 << 17;
const CR4_OSXSAVE = 1 << 18;
const TWO32 = 0x1_0000_0000;
/** Most bytes of a guest crash message the host reads (one page, as Linux's kmsg dump page). */
const CRASH_MESSAGE_MAX = PAGE_SIZE;
/** Processors per partition (CPUID 0x40000005 reports it; APIC IDs stay below the xAPIC broadcast 0xFF). */
const MAX_VPS = 64;

/** Privileges this hypervisor implements; a configuration may offer fewer, never more. */
export const SUPPORTED_PRIVILEGES_LOW =
  T.PRIV_VP_RUNTIME |
  T.PRIV_PARTITION_REFERENCE_COUNTER |
  T.PRIV_SYNIC_REGS |
  T.PRIV_SYNTHETIC_TIMER_REGS |
  T.PRIV_HYPERCALL_MSRS |
  T.PRIV_VP_INDEX |
  T.PRIV_PARTITION_REFERENCE_TSC |
  T.PRIV_FREQUENCY_REGS;
export const SUPPORTED_PRIVILEGES_HIGH = T.PRIV_HIGH_POST_MESSAGES | T.PRIV_HIGH_SIGNAL_EVENTS;
export const SUPPORTED_FEATURES =
  T.FEATURE_XMM_HYPERCALL_INPUT |
  T.FEATURE_FREQUENCY_MSRS |
  T.FEATURE_GUEST_CRASH_MSRS |
  T.FEATURE_DIRECT_SYNTHETIC_TIMERS;
export const SUPPORTED_HINTS =
  T.HINT_REMOTE_TLB_FLUSH |
  T.HINT_RELAXED_TIMING |
  T.HINT_DEPRECATE_AUTO_EOI |
  T.HINT_CLUSTER_IPI |
  T.HINT_EX_PROCESSOR_MASKS;

/** The defaults Linux 6.1 needs (checklist section 1.3), with the crash MSRs. */
export const DEFAULT_PRIVILEGES_LOW = 0x00000a6e;
export const DEFAULT_PRIVILEGES_HIGH = 0x00000030;
export const DEFAULT_FEATURES = 0x00080500;
export const DEFAULT_HINTS = 0x00000220;

/** Viridian's version as reported in CPUID 0x40000002 (build, major.minor). */
export const VIRIDIAN_BUILD = 1;
export const VIRIDIAN_MAJOR = 0;
export const VIRIDIAN_MINOR = 1;

export interface GuestCrashReport {
  vpIndex: number;
  /** CRASH_P0..P4 as 16-digit hex strings (Linux: error code, guest OS id, RIP, RAX/message GPA, RSP/length). */
  parameters: string[];
  /** The guest's panic text when it used CrashMessage (CRASH_CTL bit 62), else null. */
  message: string | null;
}

export interface PartitionOptions {
  /** Guest RAM in bytes (a fresh GuestMemory) or an existing GuestMemory this partition takes over. */
  memory: number | GuestMemory;
  vpCount?: number;
  /** Partition privilege flags from the VM configuration (bits 31:0 and 63:32). */
  privilegesLow?: number;
  privilegesHigh?: number;
  /** 0x40000003.EDX and 0x40000004.EAX requests; masked by what is supported. */
  features?: number;
  hints?: number;
  /**
   * The partition clock's source: host time ("wall", default), retired instructions ("deterministic"), or a
   * source the worker chooses (its pacing policy), read relative to the partition's creation.
   */
  time?: Exclude<TimeSource, "external"> | Clock;
  /** Deterministic mode: virtual nanoseconds per retired instruction (default 10). */
  nsPerInstruction?: number;
  /** TSC frequency in Hz (default 1 GHz). */
  tscHz?: number;
  /** The processors' translation threshold (CpuOptions.jitThreshold; default the processor's own). */
  jitThreshold?: number;
  /** Local APIC timer input frequency in Hz (HV_X64_MSR_APIC_FREQUENCY; default 200 MHz as Hyper-V). */
  apicHz?: number;
  /** Host monotonic time in ns for wall mode (default performance.now()). */
  hostNowNs?: () => number;
  /**
   * Give every VP a local APIC (default true). Without them the root connects its own controller per VP
   * (`setInterruptController`; the hypervisor's microkernel tests use a minimal one).
   */
  localApic?: boolean;
  /** Start the APICs as an MP-spec BIOS leaves them (virtual wire, as the PC machine wants); default false. */
  apicVirtualWire?: boolean;
  onGuestCrash?: (report: GuestCrashReport) => void;
}

export type MessagePortHandler = (vpIndex: number, messageType: number, payload: Uint8Array) => number;
export type EventPortHandler = (vpIndex: number, flagNumber: number) => void;

export class PartitionError extends Error {
  override name = "PartitionError";
}

export class Partition implements HypercallHost {
  readonly memory: GuestMemory;
  readonly vps: VirtualProcessor[] = [];
  readonly clock: PartitionClock;
  readonly time: ReferenceTime;
  readonly apicHz: number;
  readonly privilegesLow: number;
  readonly privilegesHigh: number;
  readonly features: number;
  readonly hints: number;
  /** The root's port, MMIO and MSR ranges (registerPorts / registerMmio / registerMsrs). */
  readonly intercepts = new InterceptTable();
  /** Every VP's local APIC; the platform's I/O APIC delivers its messages here. */
  readonly apicBus: ApicBus & ApicMessageSink = new ApicBus();
  /** The platform's 8259 and EOI sink (connectPlatform); the VPs' APICs read this holder. */
  private readonly platform: PlatformInterrupts = { extInt: null, onEoi: null };
  private readonly jitThreshold: number | undefined;
  private readonly localApic: boolean;
  private readonly apicVirtualWire: boolean;
  onGuestCrash: ((report: GuestCrashReport) => void) | null;
  /** The first crash the guest reported through CRASH_CTL, if any. */
  crash: GuestCrashReport | null = null;
  private guestOsIdLo = DOUBLE_ZERO;
  private guestOsIdHi = DOUBLE_ZERO;
  private hypercallLo = 0;
  private hypercallHi = 0;
  private refTscLo = 0;
  private refTscHi = 0;
  private tscSequence = 0;
  private readonly crashP = new Uint32Array(10);
  private readonly messagePorts = new Map<number, MessagePortHandler>();
  private readonly eventPorts = new Map<number, { handler: EventPortHandler; flagCount: number }>();
  private readonly view: DataView;
  private readonly cpuidOut = new Uint32Array(4);

  constructor(options: PartitionOptions) {
    this.memory = typeof options.memory === "number" ? new GuestMemory(options.memory) : options.memory;
    this.view = this.memory.view;
    const vpCount = options.vpCount ?? 1;
    if (!Number.isInteger(vpCount) || vpCount < 1 || vpCount > MAX_VPS) {
      throw new PartitionError(`vpCount must be 1..64, got ${vpCount}`);
    }
    this.privilegesLow = (options.privilegesLow ?? DEFAULT_PRIVILEGES_LOW) & SUPPORTED_PRIVILEGES_LOW;
    this.privilegesHigh = (options.privilegesHigh ?? DEFAULT_PRIVILEGES_HIGH) & SUPPORTED_PRIVILEGES_HIGH;
    let features = (options.features ?? DEFAULT_FEATURES) & SUPPORTED_FEATURES;
    if ((this.privilegesLow & T.PRIV_FREQUENCY_REGS) === 0) features &= ~T.FEATURE_FREQUENCY_MSRS;
    this.features = features;
    this.hints = (options.hints ?? DEFAULT_HINTS) & SUPPORTED_HINTS;
    this.time = new ReferenceTime(options.tscHz ?? 1_000_000_000);
    this.apicHz = options.apicHz ?? 200_000_000;
    if (!(this.apicHz >= 1 && this.apicHz <= 1e11))
      throw new PartitionError(`bad APIC frequency ${this.apicHz}`);
    this.clock = new PartitionClock(
      options.time ?? "wall",
      options.nsPerInstruction ?? 10,
      options.hostNowNs,
    );
    this.onGuestCrash = options.onGuestCrash ?? null;
    this.jitThreshold = options.jitThreshold;
    this.localApic = options.localApic ?? true;
    this.apicVirtualWire = options.apicVirtualWire ?? false;
    // Built before the clock starts, so every processor's TSC origin is partition time 0.
    for (let i = 0; i < vpCount; i++) this.addVp();
    this.clock.retired = (): number => {
      let n = 0;
      for (const vp of this.vps) n += vp.cpu.retired + (vp.running ? vp.cpu.count : 0);
      return n;
    };
    this.clock.start();
  }

  /**
   * Adds a virtual processor, built and wired by itself (processor, local APIC on this partition's APIC bus,
   * SynIC, synthetic timers, intercepts, TSC aligned with the partition's); the first is the BSP.
   */
  addVp(): VirtualProcessor {
    if (this.vps.length >= MAX_VPS) throw new PartitionError(`a partition has at most ${MAX_VPS} processors`);
    const vp = new VirtualProcessor(this.vps.length, {
      memory: this.memory,
      clock: this.clock,
      tscHz: this.time.tscHz,
      apicHz: this.apicHz,
      jitThreshold: this.jitThreshold,
      directTimers: (this.features & T.FEATURE_DIRECT_SYNTHETIC_TIMERS) !== 0,
      apicBus: this.apicBus,
      intercepts: this.intercepts,
      platform: this.platform,
      localApic: this.localApic,
      virtualWire: this.apicVirtualWire,
    });
    this.vps.push(vp);
    return vp;
  }

  /**
   * Connects the platform's interrupt hardware (the root calls it once): the 8259 pair to the BSP's LINT0,
   * and the I/O APIC's EOI input to every APIC's EOI broadcast. The I/O APIC itself sends to `apicBus`.
   */
  connectPlatform(platform: Partial<PlatformInterrupts>): void {
    if (platform.extInt !== undefined) this.platform.extInt = platform.extInt;
    if (platform.onEoi !== undefined) this.platform.onEoi = platform.onEoi;
  }

  /** Root-side intercepts: ports [base, base + count) are answered by `handler`. */
  registerPorts(base: number, count: number, handler: PortHandler, name: string): void {
    this.intercepts.registerPorts(base, count, handler, name);
  }

  /** Root-side intercepts: guest-physical [base, base + length) outside RAM is answered by `handler`. */
  registerMmio(base: number, length: number, handler: MmioHandler, name: string): void {
    this.intercepts.registerMmio(base, length, handler, name);
  }

  /** Root-side intercepts: MSRs first..last (not the hypervisor's own) are answered by `handler`. */
  registerMsrs(first: number, last: number, handler: MsrHandler, name: string): void {
    this.intercepts.registerMsrs(first, last, handler, name);
  }

  /** True once the guest wrote a non-zero HV_X64_MSR_GUEST_OS_ID (it knows this hypervisor). */
  guestOsIdentified(): boolean {
    return this.guestOsIdLo !== 0 || this.guestOsIdHi !== 0;
  }

  /** Instructions retired by every VP, including the batch a VP is running now (for pacing policies). */
  retiredInstructions(): number {
    return this.clock.retired();
  }

  get vpCount(): number {
    return this.vps.length;
  }

  private vp(index: number): VirtualProcessor {
    const vp = this.vps[index];
    if (vp === undefined) throw new PartitionError(`no virtual processor ${index}`);
    return vp;
  }

  /**
   * Replaces VP `vpIndex`'s interrupt controller (its local APIC) with `controller`: the processor's interrupt
   * source and the target of its SINTs, direct-mode timers and synthetic IPIs (tests' minimal controllers).
   */
  setInterruptController(vpIndex: number, controller: VpInterruptController | null): void {
    this.vp(vpIndex).setInterruptController(controller);
  }

  /** Root-side: sets the rights of guest-physical pages [gpa, gpa + length) (RAM only). */
  setPageRights(gpa: number, length: number, rights: number): void {
    if (gpa % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 || !this.memory.isRam(gpa, length)) {
      throw new PartitionError(`page rights: 0x${gpa.toString(16)}+${length} is not page-aligned RAM`);
    }
    const first = ramPageOf(this.memory.offsetOf(gpa));
    this.memory.rights.fill(rights & 7, first, first + length / PAGE_SIZE);
  }

  /**
   * Platform reset (the guest's reboot): every synthetic register returns to its creation value and every
   * processor to its reset state; pending messages and armed timers are dropped. The partition clock keeps
   * running, so the TSC and the reference counter never go backwards across a reboot.
   */
  reset(): void {
    this.guestOsIdLo = this.guestOsIdHi = 0;
    this.hypercallLo = this.hypercallHi = 0;
    this.refTscLo = this.refTscHi = 0;
    this.crashP.fill(0);
    this.crash = null;
    for (const vp of this.vps) vp.reset();
  }

  // ---------------------------------------------------------------- time

  /** The reference counter (100 ns units) now. */
  referenceCounter(): number {
    return this.time.referenceAt(this.clock.nowNs());
  }

  /** The partition time (ns) of the next synthetic-timer or APIC-timer expiry, Infinity when none is armed. */
  nextDeadlineNs(): number {
    let due = Infinity;
    for (const vp of this.vps) due = Math.min(due, vp.timers.nextDue());
    let ns = due === Infinity ? Infinity : this.time.nsForReference(due);
    for (const vp of this.vps) if (vp.apic !== null) ns = Math.min(ns, vp.apic.nextDeadlineNs());
    return ns;
  }

  /** Fires the synthetic timers and APIC timers that are due at partition time `nowNs`. */
  tick(nowNs: number): void {
    const ref = this.time.referenceAt(Math.max(nowNs, this.clock.nowNs()));
    for (const vp of this.vps) {
      vp.timers.lastRef = ref;
      vp.timers.tick(ref);
      if (vp.apic !== null && nowNs >= vp.apic.nextDeadlineNs()) vp.apic.tick(nowNs);
    }
  }

  // ---------------------------------------------------------------- ports (root side)

  /** The root (e.g. the VMBus server) receives HvPostMessage calls to `connectionId`. */
  registerMessagePort(connectionId: number, handler: MessagePortHandler): void {
    this.checkConnectionId(connectionId, this.messagePorts.has(connectionId));
    this.messagePorts.set(connectionId, handler);
  }

  unregisterMessagePort(connectionId: number): void {
    this.messagePorts.delete(connectionId);
  }

  /** The root receives HvSignalEvent calls to `connectionId` with flag numbers below `flagCount`. */
  registerEventPort(connectionId: number, handler: EventPortHandler, flagCount = 1): void {
    this.checkConnectionId(connectionId, this.eventPorts.has(connectionId));
    if (!Number.isInteger(flagCount) || flagCount < 1 || flagCount > 2048) {
      throw new PartitionError(`event port flag count must be 1..2048, got ${flagCount}`);
    }
    this.eventPorts.set(connectionId, { handler, flagCount });
  }

  unregisterEventPort(connectionId: number): void {
    this.eventPorts.delete(connectionId);
  }

  private checkConnectionId(id: number, taken: boolean): void {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffff) throw new PartitionError(`bad connection id ${id}`);
    if (taken) throw new PartitionError(`connection id ${id} is already registered`);
  }

  /** Root -> guest: a SynIC message to SINT `sint` of VP `vpIndex`. Returns an HV_STATUS. */
  postMessageToGuest(vpIndex: number, sint: number, messageType: number, payload: Uint8Array): number {
    const vp = this.vps[vpIndex];
    if (vp === undefined) return T.HV_STATUS_INVALID_VP_INDEX;
    return vp.synic.postMessage(sint, messageType, payload);
  }

  /** Root -> guest: sets event flag `flag` of SINT `sint` on VP `vpIndex`. Returns an HV_STATUS. */
  signalGuestEvent(vpIndex: number, sint: number, flag: number): number {
    const vp = this.vps[vpIndex];
    if (vp === undefined) return T.HV_STATUS_INVALID_VP_INDEX;
    return vp.synic.signalEvent(sint, flag);
  }

  // HypercallHost
  postMessage(fromVp: number, connectionId: number, messageType: number, payload: Uint8Array): number {
    const port = this.messagePorts.get(connectionId);
    if (port === undefined) return T.HV_STATUS_INVALID_CONNECTION_ID;
    return port(fromVp, messageType, payload);
  }

  signalEvent(fromVp: number, connectionId: number, flagNumber: number): number {
    const port = this.eventPorts.get(connectionId);
    if (port === undefined) return T.HV_STATUS_INVALID_CONNECTION_ID;
    if (flagNumber >= port.flagCount) return T.HV_STATUS_INVALID_PARAMETER;
    port.handler(fromVp, flagNumber);
    return T.HV_STATUS_SUCCESS;
  }

  flushTlb(vpIndex: number, nonGlobalOnly: boolean): void {
    this.vps[vpIndex]?.cpu.flushTlb(nonGlobalOnly);
  }

  sendIpi(vpIndex: number, vector: number): void {
    this.vps[vpIndex]?.interruptTarget?.acceptFixed(vector, false);
  }

  // ---------------------------------------------------------------- running

  /**
   * Runs VP `vpIndex` for up to `budget` instructions and handles the exit if the hypervisor owns it.
   * Returns the VP's preallocated result: `handling` Forward means the caller must handle `reason`.
   */
  runVp(vpIndex: number, budget: number): VirtualProcessor["last"] {
    const vp = this.vp(vpIndex);
    const start = this.clock.nowNs();
    vp.running = true;
    let reason: ExitReason;
    try {
      reason = vp.cpu.run(budget);
    } finally {
      vp.running = false;
    }
    vp.runtimeNs += this.clock.nowNs() - start;
    vp.last.reason = reason;
    vp.last.handling = this.handleExit(vpIndex, reason);
    return vp.last;
  }

  /** Handles the exit `reason` that VP `vpIndex`'s processor just reported. */
  handleExit(vpIndex: number, reason: ExitReason): ExitHandling {
    const vp = this.vp(vpIndex);
    const cpu = vp.cpu;
    const x = cpu.exit;
    switch (reason) {
      case ExitReason.Cpuid:
        this.cpuid(vp, x.cpuidLeaf, x.cpuidSubleaf);
        return ExitHandling.Handled;
      case ExitReason.Rdmsr: {
        const r = this.rdmsr(vp, x.msr);
        if (r.ok) cpu.completeRdmsr(r.lo | 0, r.hi | 0);
        else cpu.injectException(VECTOR_GP, 0);
        return ExitHandling.Handled;
      }
      case ExitReason.Wrmsr: {
        if (this.wrmsr(vp, x.msr, x.valueLo >>> 0, x.valueHi >>> 0).ok) cpu.completeWrmsr();
        else cpu.injectException(VECTOR_GP, 0);
        return ExitHandling.Handled;
      }
      case ExitReason.Vmcall:
        this.hypercall(vp);
        return ExitHandling.Handled;
      default:
        return ExitHandling.Forward;
    }
  }

  /**
   * RDMSR of an MSR the processor does not own: the hypervisor's synthetic MSRs, then the VP's local APIC,
   * then a range the root registered; nobody's is #GP(0), as a processor does for an MSR it does not have.
   */
  private rdmsr(vp: VirtualProcessor, msr: number): MsrResult {
    if (isSynthetic(msr)) return this.readMsr(vp, msr);
    if (vp.apic !== null && LocalApic.ownsMsr(msr)) return vp.apic.readMsr(msr);
    return this.intercepts.msrHandler(msr)?.read(vp.index, msr) ?? MSR_GP;
  }

  private wrmsr(vp: VirtualProcessor, msr: number, lo: number, hi: number): MsrResult {
    if (isSynthetic(msr)) return this.writeMsr(vp, msr, lo, hi);
    if (vp.apic !== null && LocalApic.ownsMsr(msr)) return vp.apic.writeMsr(msr, lo, hi);
    return this.intercepts.msrHandler(msr)?.write(vp.index, msr, lo, hi) ?? MSR_GP;
  }

  // ---------------------------------------------------------------- CPUID

  private cpuid(vp: VirtualProcessor, leaf: number, subleaf: number): void {
    const cpu = vp.cpu;
    const o = this.cpuidOut;
    leaf >>>= 0;
    if (leaf >= T.CPUID_VENDOR && leaf <= 0x4000ffff) this.hypervisorLeaf(leaf, o);
    else {
      const q = cpu.cpuid.query(leaf, subleaf);
      for (let i = 0; i < 4; i++) o[i] = q[i]! >>> 0;
      if (leaf === 1) {
        // ECX[31]: a hypervisor is present; ECX[27] mirrors CR4.OSXSAVE as the processor's own CPUID does.
        o[2] = (o[2]! | 0x80000000) >>> 0;
        if ((cpu.getControl("cr4").lo & CR4_OSXSAVE) !== 0) o[2] = (o[2]! | (1 << 27)) >>> 0;
        // EDX[9]: the VP's local APIC, as long as it is not globally disabled (SDM Vol. 3A 11.4.3).
        if (vp.interruptTarget?.enabled === false) o[3] = (o[3]! & ~(1 << 9)) >>> 0;
      }
    }
    cpu.completeCpuid(o[0]! | 0, o[1]! | 0, o[2]! | 0, o[3]! | 0);
  }

  /** CPUID 0x40000000-0x4000FFFF (feature-discovery.md); leaves above the maximum read as zero. */
  hypervisorLeaf(leaf: number, o: Uint32Array): void {
    o.fill(0);
    switch (leaf) {
      case T.CPUID_VENDOR:
        o[0] = T.CPUID_MAX_LEAF;
        o[1] = 0x7263694d; // "Micr"
        o[2] = 0x666f736f; // "osof"
        o[3] = 0x76482074; // "t Hv"
        break;
      case T.CPUID_INTERFACE:
        o[0] = T.INTERFACE_HV1;
        break;
      case T.CPUID_VERSION:
        o[0] = VIRIDIAN_BUILD;
        o[1] = ((VIRIDIAN_MAJOR << 16) | VIRIDIAN_MINOR) >>> 0;
        break;
      case T.CPUID_FEATURES:
        o[0] = this.privilegesLow >>> 0;
        o[1] = this.privilegesHigh >>> 0;
        o[3] = this.features >>> 0;
        break;
      case T.CPUID_RECOMMENDATIONS:
        o[0] = this.hints >>> 0;
        o[1] = 0xffffffff; // spin-wait retries before notifying: never
        break;
      case T.CPUID_LIMITS:
        o[0] = this.vps.length;
        o[1] = this.vps.length;
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- synthetic MSRs

  private hasPriv(bit: number): boolean {
    return (this.privilegesLow & bit) !== 0;
  }

  /** Reads synthetic MSR `msr` as VP `vp` (a #GP result for unknown MSRs or ones outside the privileges). */
  readMsr(vp: VirtualProcessor, msr: number): MsrResult {
    if (vp.synic.owns(msr)) return this.hasPriv(T.PRIV_SYNIC_REGS) ? vp.synic.readMsr(msr) : MSR_GP;
    if (vp.timers.owns(msr))
      return this.hasPriv(T.PRIV_SYNTHETIC_TIMER_REGS) ? vp.timers.readMsr(msr) : MSR_GP;
    if (msr >= T.MSR_CRASH_P0 && msr <= T.MSR_CRASH_CTL) {
      if ((this.features & T.FEATURE_GUEST_CRASH_MSRS) === 0) return MSR_GP;
      if (msr === T.MSR_CRASH_CTL) return msrValue(0, T.CRASH_CTL_NOTIFY_HI | T.CRASH_CTL_MESSAGE_HI);
      const i = (msr - T.MSR_CRASH_P0) * 2;
      return msrValue(this.crashP[i]!, this.crashP[i + 1]!);
    }
    switch (msr) {
      case T.MSR_GUEST_OS_ID:
        return this.hasPriv(T.PRIV_HYPERCALL_MSRS) ? msrValue(this.guestOsIdLo, this.guestOsIdHi) : MSR_GP;
      case T.MSR_HYPERCALL:
        return this.hasPriv(T.PRIV_HYPERCALL_MSRS) ? msrValue(this.hypercallLo, this.hypercallHi) : MSR_GP;
      case T.MSR_VP_INDEX:
        return this.hasPriv(T.PRIV_VP_INDEX) ? msrValue(vp.index, 0) : MSR_GP;
      case T.MSR_VP_RUNTIME: {
        if (!this.hasPriv(T.PRIV_VP_RUNTIME)) return MSR_GP;
        const units = Math.floor(vp.runtimeNs / 100);
        return msrValue(units % TWO32, Math.floor(units / TWO32));
      }
      case T.MSR_TIME_REF_COUNT: {
        if (!this.hasPriv(T.PRIV_PARTITION_REFERENCE_COUNTER)) return MSR_GP;
        const ref = this.referenceCounter();
        return msrValue(ref % TWO32, Math.floor(ref / TWO32));
      }
      case T.MSR_REFERENCE_TSC:
        return this.hasPriv(T.PRIV_PARTITION_REFERENCE_TSC) ? msrValue(this.refTscLo, this.refTscHi) : MSR_GP;
      case T.MSR_TSC_FREQUENCY:
        return this.hasPriv(T.PRIV_FREQUENCY_REGS)
          ? msrValue(this.time.tscHz % TWO32, Math.floor(this.time.tscHz / TWO32))
          : MSR_GP;
      case T.MSR_APIC_FREQUENCY:
        return this.hasPriv(T.PRIV_FREQUENCY_REGS)
          ? msrValue(this.apicHz % TWO32, Math.floor(this.apicHz / TWO32))
          : MSR_GP;
      case T.MSR_VP_ASSIST_PAGE:
        return msrValue(vp.assistLo, vp.assistHi);
      default:
        return MSR_GP;
    }
  }

  /** Writes synthetic MSR `msr` as VP `vp` (MSR_GP: #GP). */
  writeMsr(vp: VirtualProcessor, msr: number, lo: number, hi: number): MsrResult {
    lo >>>= 0;
    hi >>>= 0;
    if (vp.synic.owns(msr)) return this.hasPriv(T.PRIV_SYNIC_REGS) ? vp.synic.writeMsr(msr, lo, hi) : MSR_GP;
    if (vp.timers.owns(msr)) {
      return this.hasPriv(T.PRIV_SYNTHETIC_TIMER_REGS)
        ? vp.timers.writeMsr(msr, lo, hi, this.referenceCounter())
        : MSR_GP;
    }
    if (msr >= T.MSR_CRASH_P0 && msr <= T.MSR_CRASH_CTL) {
      if ((this.features & T.FEATURE_GUEST_CRASH_MSRS) === 0) return MSR_GP;
      if (msr === T.MSR_CRASH_CTL) {
        if ((hi & T.CRASH_CTL_NOTIFY_HI) !== 0)
          this.reportCrash(vp.index, (hi & T.CRASH_CTL_MESSAGE_HI) !== 0);
        return MSR_OK;
      }
      const i = (msr - T.MSR_CRASH_P0) * 2;
      this.crashP[i] = lo;
      this.crashP[i + 1] = hi;
      return MSR_OK;
    }
    switch (msr) {
      case T.MSR_GUEST_OS_ID:
        if (!this.hasPriv(T.PRIV_HYPERCALL_MSRS)) return MSR_GP;
        this.guestOsIdLo = lo;
        this.guestOsIdHi = hi;
        // Zeroing the identity disables the hypercall page (hypercall-interface.md).
        if (lo === 0 && hi === 0) this.hypercallLo &= ~1;
        return MSR_OK;
      case T.MSR_HYPERCALL:
        return msrWritten(this.hasPriv(T.PRIV_HYPERCALL_MSRS) && this.writeHypercallMsr(lo, hi));
      case T.MSR_REFERENCE_TSC:
        if (!this.hasPriv(T.PRIV_PARTITION_REFERENCE_TSC)) return MSR_GP;
        this.refTscLo = lo;
        this.refTscHi = hi;
        if ((lo & 1) !== 0) this.fillTscPage();
        return MSR_OK;
      case T.MSR_VP_ASSIST_PAGE: {
        if ((lo & 1) !== 0) {
          const gpa = pageBase(lo, hi);
          if (!overlayPageUsable(this.memory, gpa)) return MSR_GP;
          if ((vp.assistLo & 1) === 0 || pageBase(vp.assistLo, vp.assistHi) !== gpa) this.zeroPage(gpa);
        }
        vp.assistLo = lo;
        vp.assistHi = hi;
        return MSR_OK;
      }
      default:
        // Read-only registers (VP_INDEX, VP_RUNTIME, TIME_REF_COUNT, frequencies) and unknown MSRs.
        return MSR_GP;
    }
  }

  private writeHypercallMsr(lo: number, hi: number): boolean {
    // Locked: immutable until reset; the write is dropped.
    if ((this.hypercallLo & 2) !== 0) return true;
    if ((lo & 1) !== 0) {
      if (this.guestOsIdLo === 0 && this.guestOsIdHi === 0) {
        // No guest identity yet: the enable bit stays clear.
        lo &= ~1;
      } else {
        const gpa = pageBase(lo, hi);
        if (!overlayPageUsable(this.memory, gpa)) return false;
        this.fillHypercallPage(gpa);
      }
    }
    this.hypercallLo = lo >>> 0;
    this.hypercallHi = hi >>> 0;
    return true;
  }

  /** VMCALL; RET, then INT3 filler (GenuineIntel form, as KVM and OpenVMM write it into guest RAM). */
  private fillHypercallPage(gpa: number): void {
    const page = new Uint8Array(PAGE_SIZE).fill(0xcc);
    page.set([0x0f, 0x01, 0xc1, 0xc3]);
    this.memory.write(gpa, page);
  }

  /** Reference TSC page: sequence, scale, offset (timers.md). Inaccessible pages are left alone. */
  private fillTscPage(): void {
    const gpa = pageBase(this.refTscLo, this.refTscHi);
    if (!overlayPageUsable(this.memory, gpa)) return;
    const off = this.memory.offsetOf(gpa);
    // 0 means "invalid" and 0xFFFFFFFF is avoided as Hyper-V does; any other value changes on each refill.
    this.tscSequence = this.tscSequence >= 0xfffffffe ? 1 : this.tscSequence + 1;
    const v = this.view;
    v.setUint32(off, this.tscSequence, true);
    v.setUint32(off + 4, 0, true);
    v.setBigUint64(off + 8, this.time.scale, true);
    v.setBigInt64(off + 16, this.time.offset, true);
    this.memory.noteWrite(off, 24);
  }

  private zeroPage(gpa: number): void {
    this.memory.fill(gpa, PAGE_SIZE, 0);
  }

  private reportCrash(vpIndex: number, withMessage: boolean): void {
    const hex = (i: number): string =>
      this.crashP[2 * i + 1]!.toString(16).padStart(8, "0") +
      this.crashP[2 * i]!.toString(16).padStart(8, "0");
    const parameters = [0, 1, 2, 3, 4].map(hex);
    let message: string | null = null;
    if (withMessage) {
      const gpa = this.crashP[7]! * TWO32 + this.crashP[6]!;
      const len = Math.min(this.crashP[8]!, CRASH_MESSAGE_MAX);
      if (this.crashP[9] === 0 && len > 0 && Number.isSafeInteger(gpa) && this.memory.isRam(gpa, len)) {
        const raw = new Uint8Array(len);
        this.memory.read(gpa, raw);
        const text = new TextDecoder("utf-8", { fatal: false }).decode(raw);
        message = text.replace(/\0+$/, "");
      }
    }
    const report: GuestCrashReport = { vpIndex, parameters, message };
    if (this.crash === null) this.crash = report;
    this.onGuestCrash?.(report);
  }

  // ---------------------------------------------------------------- hypercalls

  private hypercall(vp: VirtualProcessor): void {
    const cpu = vp.cpu;
    // Legal environment: protected mode, CPL 0, not virtual-8086, hypercall page enabled; else #UD.
    const legal =
      (cpu.getControl("cr0").lo & CR0_PE) !== 0 &&
      (cpu.getRflags() & RFLAGS_VM) === 0 &&
      cpu.cpl === 0 &&
      (this.hypercallLo & 1) !== 0;
    if (!legal) {
      cpu.injectException(VECTOR_UD);
      return;
    }
    if (executeHypercall(this, vp.index, cpu, cpu.long64) === HypercallOutcome.InvalidOpcode) {
      cpu.injectException(VECTOR_UD);
      return;
    }
    cpu.completeVmcall();
  }

  // ---------------------------------------------------------------- inspection

  /** A readable summary of the hypervisor state (failure reports and `viridian run --state`). */
  inspect(): string {
    const hex = (hi: number, lo: number): string =>
      "0x" +
      (hi === 0
        ? (lo >>> 0).toString(16)
        : (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, "0"));
    const lines = [
      `hypervisor: guest OS id ${hex(this.guestOsIdHi, this.guestOsIdLo)}, hypercall MSR ` +
        `${hex(this.hypercallHi, this.hypercallLo)}, reference TSC MSR ${hex(this.refTscHi, this.refTscLo)} ` +
        `(sequence ${this.tscSequence}), reference counter ${this.referenceCounter()}, ` +
        `crash ${this.crash === null ? "none" : "reported"}`,
    ];
    for (const vp of this.vps) {
      const s = vp.synic;
      const armed: string[] = [];
      for (let i = 0; i < 4; i++) {
        const w = vp.timers.readMsr(T.MSR_STIMER0_CONFIG + 2 * i);
        const c = vp.timers.readMsr(T.MSR_STIMER0_CONFIG + 2 * i + 1);
        if (w.ok && c.ok && w.lo !== 0) {
          armed.push(
            `stimer${i} config 0x${(w.lo >>> 0).toString(16)} count ${hex(c.hi, c.lo)} fired ${vp.timers.firedCount(i)}`,
          );
        }
      }
      lines.push(
        `  vp${vp.index}: SCONTROL 0x${(s.scontrolLo >>> 0).toString(16)} SIMP ${hex(s.simpHi, s.simpLo)} ` +
          `SIEFP ${hex(s.siefpHi, s.siefpLo)} messages delivered ${s.delivered}; ` +
          (armed.length > 0 ? armed.join("; ") : "no synthetic timer configured"),
      );
      if (vp.apic !== null) lines.push(vp.apic.inspect());
    }
    lines.push(`intercepts: ${this.intercepts.describe().join(", ") || "none"}`);
    return lines.join("\n");
  }

  /** Partition and VP hypervisor state as numbers (for reproducibility hashes and failure messages). */
  stateWords(): number[] {
    const out = [
      this.guestOsIdLo,
      this.guestOsIdHi,
      this.hypercallLo,
      this.hypercallHi,
      this.refTscLo,
      this.refTscHi,
      this.tscSequence,
      ...this.crashP,
      this.clock.nowNs(),
    ];
    for (const vp of this.vps) {
      out.push(vp.index, vp.assistLo, vp.assistHi, vp.cpu.retired, ...vp.synic.state(), ...vp.timers.state());
      for (let r = 0; r < 16; r++) {
        const v = vp.cpu.getReg(r as Reg);
        out.push(v.lo, v.hi);
      }
    }
    return out;
  }
}

function isSynthetic(msr: number): boolean {
  return msr >= T.MSR_SYNTHETIC_FIRST && msr <= T.MSR_SYNTHETIC_LAST;
}

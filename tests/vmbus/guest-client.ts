// Owns (tests only): a guest-side VMBus client that drives the root's VMBus server through the real partition
// paths, as Linux's hv_vmbus does: a 32-bit protected-mode guest whose processor executes WRMSR / RDMSR /
// VMCALL stubs (SynIC MSRs, the hypercall page, HvPostMessage with its input block in guest RAM,
// HvSignalEvent as a fast call), reads its messages from the SIMP page and its channel flags from the SIEF
// page in guest RAM (EOM when message-pending is set), builds GPADLs from GPADL_HEADER/BODY messages and
// reads and writes ring buffers laid out as Linux lays them out. It also offers the raw primitives (any
// message bytes, any ring header value) that the hostile tests use.
// Must not: reach into the server's state (it only sees what a guest sees: its RAM, its registers, hypercall
// status codes), or be used outside tests.
// Spec: ../shared/research/hyperv-linux-guest-checklist.md sections 3, 4 and 6; Linux 6.1 drivers/hv
// (connection.c, channel.c, channel_mgmt.c, ring_buffer.c, hv.c).

import { GuestMemory, PAGE_SIZE } from "../../src/memory/guest-memory.js";
import { Partition } from "../../src/hv/partition.js";
import * as T from "../../src/hv/tlfs.js";
import * as P from "../../src/vmbus/protocol.js";
import { Msg } from "../../src/vmbus/protocol.js";
import { ExitHandling } from "../../src/hv/partition.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import { Reg, Seg } from "../../src/x86/processor.js";

/** The SINT2 vector Linux programs (HYPERVISOR_CALLBACK_VECTOR). */
export const VMBUS_VECTOR = 0xf3;

/** Guest-physical layout of the test guest's fixed pages (low RAM). */
const CODE = 0x1000;
const IDT = 0x2000;
const GDT = 0x3000;
const HYPERCALL_PAGE = 0x4000;
const SIMP = 0x5000;
const SIEF = 0x6000;
const INPUT = 0x7000;
const HEAP_START = 0x10_0000;

/** Vectors the guest counts (it runs with interrupts disabled and polls, as Linux's SynIC code could). */
class PendingVectors {
  readonly count = new Uint32Array(256);
  acceptFixed(vector: number): void {
    this.count[vector & 0xff] = this.count[vector & 0xff]! + 1;
  }
  hasInterrupt(): boolean {
    return false;
  }
  acknowledge(): number {
    return 0;
  }
}

export interface GuestOptions {
  /** RAM bytes (default 32 MiB). */
  ram?: number;
  /** Start of the MMIO hole (default: the guest-memory default); RAM beyond it goes above 4 GiB. */
  mmioHoleStart?: number;
  vpCount?: number;
}

/** A partition whose VP 0 the test drives instruction stub by instruction stub. */
export class TestGuest {
  readonly partition: Partition;
  readonly memory: GuestMemory;
  readonly vectors = new PendingVectors();
  private readonly view: DataView;
  private heap = HEAP_START;
  /** Faults the stubs took (#GP from WRMSR, #UD from VMCALL). */
  faults = 0;

  constructor(options: GuestOptions = {}) {
    this.memory = new GuestMemory(options.ram ?? 32 << 20, options.mmioHoleStart);
    this.partition = new Partition({
      memory: this.memory,
      vpCount: options.vpCount ?? 1,
      time: "deterministic",
    });
    this.view = new DataView(this.memory.buffer);
    for (let vp = 0; vp < this.partition.vpCount; vp++) {
      this.partition.setInterruptTarget(vp, this.vectors);
      this.partition.vps[vp]!.cpu.interrupts = this.vectors;
    }
    this.enterProtectedMode();
  }

  private enterProtectedMode(): void {
    const cpu = this.partition.vps[0]!.cpu;
    // GDT: null, flat 32-bit code (0x08), flat data (0x10).
    this.view.setUint32(GDT + 8, 0x0000ffff, true);
    this.view.setUint32(GDT + 12, 0x00cf9b00, true);
    this.view.setUint32(GDT + 16, 0x0000ffff, true);
    this.view.setUint32(GDT + 20, 0x00cf9300, true);
    // Every exception vector lands on "mov esi, vector; hlt" so a fault is visible and ends the stub.
    for (let v = 0; v < 32; v++) {
      const handler = CODE + 0x800 + v * 8;
      this.memory.bytes.set([0xbe, v, 0, 0, 0, 0xf4], handler);
      this.view.setUint32(IDT + v * 8, (0x08 << 16) | (handler & 0xffff), true);
      this.view.setUint32(IDT + v * 8 + 4, (handler & 0xffff0000) | 0x8e00, true);
    }
    cpu.setDescriptorTable("gdtr", GDT, 23);
    cpu.setDescriptorTable("idtr", IDT, 32 * 8 - 1);
    cpu.setControl("cr0", 0x11, 0);
    const flat = (selector: number, access: number) => ({ selector, base: 0, limit: 0xffffffff, access });
    cpu.setSegment(Seg.CS, flat(0x08, 0xc09b));
    for (const s of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) cpu.setSegment(s, flat(0x10, 0xc093));
    cpu.setRflags(0x2);
    cpu.setReg(Reg.RSP, 0x8000, 0);
  }

  /** Runs `code` (ending in HLT) at CODE on VP 0 with the given registers; returns the fault vector or -1. */
  private runStub(code: number[], regs: Array<[Reg, number]>): number {
    const cpu = this.partition.vps[0]!.cpu;
    this.memory.bytes.set(code, CODE);
    this.memory.noteWrite(CODE, code.length);
    cpu.setReg(Reg.RSI, 0xffffffff, 0);
    cpu.setReg(Reg.RSP, 0x8000, 0);
    for (const [r, v] of regs) cpu.setReg(r, v >>> 0, 0);
    cpu.setRip(CODE, 0);
    for (let turns = 0; turns < 16; turns++) {
      const r = this.partition.runVp(0, 8);
      if (r.handling === ExitHandling.Handled) continue;
      if (r.reason === ExitReason.Hlt) break;
      if (r.reason !== ExitReason.BudgetExhausted) throw new Error(`stub stopped with exit ${r.reason}`);
    }
    const rip = cpu.getRip().lo >>> 0;
    if (rip >= CODE + 0x800) {
      this.faults++;
      return cpu.getReg(Reg.RSI).lo & 0xff;
    }
    return -1;
  }

  /** WRMSR from ring 0; false when it faulted (#GP). */
  wrmsr(msr: number, lo: number, hi = 0): boolean {
    return (
      this.runStub(
        [0x0f, 0x30, 0xf4],
        [
          [Reg.RCX, msr],
          [Reg.RAX, lo],
          [Reg.RDX, hi],
        ],
      ) < 0
    );
  }

  rdmsr(msr: number): { lo: number; hi: number } | null {
    if (this.runStub([0x0f, 0x32, 0xf4], [[Reg.RCX, msr]]) >= 0) return null;
    const cpu = this.partition.vps[0]!.cpu;
    return { lo: cpu.getReg(Reg.RAX).lo >>> 0, hi: cpu.getReg(Reg.RDX).lo >>> 0 };
  }

  /** VMCALL with the 32-bit convention; returns the HV_STATUS (or -1 for #UD). */
  hypercall(control: number, inLo: number, inHi = 0, outLo = 0, outHi = 0): number {
    const fault = this.runStub(
      [0x0f, 0x01, 0xc1, 0xf4],
      [
        [Reg.RAX, control],
        [Reg.RDX, 0],
        [Reg.RCX, inLo],
        [Reg.RBX, inHi],
        [Reg.RSI, outLo],
        [Reg.RDI, outHi],
      ],
    );
    if (fault >= 0) return -1;
    return this.partition.vps[0]!.cpu.getReg(Reg.RAX).lo & 0xffff;
  }

  /** Hands out zeroed, page-aligned guest RAM from the test heap. */
  alloc(pages: number): number {
    const gpa = this.heap;
    this.heap += pages * PAGE_SIZE;
    if (this.heap > this.memory.lowTop) throw new Error("test guest out of low RAM");
    this.memory.bytes.fill(0, gpa, gpa + pages * PAGE_SIZE);
    return gpa;
  }

  u32(gpa: number): number {
    return this.view.getUint32(this.memory.offsetOf(gpa), true);
  }

  setU32(gpa: number, value: number): void {
    this.view.setUint32(this.memory.offsetOf(gpa), value >>> 0, true);
  }

  /** Linux's SynIC bring-up: guest OS id, hypercall page, SIMP, SIEFP, SINT2 -> VMBUS_VECTOR, SCONTROL. */
  enableSynic(): void {
    const ok =
      this.wrmsr(T.MSR_GUEST_OS_ID, 0x01c00000, 0x81000006) &&
      this.wrmsr(T.MSR_HYPERCALL, HYPERCALL_PAGE | 1) &&
      this.wrmsr(T.MSR_SIMP, SIMP | 1) &&
      this.wrmsr(T.MSR_SIEFP, SIEF | 1) &&
      this.wrmsr(T.MSR_SINT0 + P.VMBUS_SINT, VMBUS_VECTOR) &&
      this.wrmsr(T.MSR_SCONTROL, 1);
    if (!ok) throw new Error("SynIC bring-up faulted");
  }

  /** HvPostMessage(connectionId, type 1, bytes) with the input block in guest RAM; returns the HV_STATUS. */
  postMessage(connectionId: number, bytes: Uint8Array, messageType = P.VMBUS_HV_MESSAGE_TYPE): number {
    this.memory.bytes.fill(0, INPUT, INPUT + 256);
    this.setU32(INPUT, connectionId);
    this.setU32(INPUT + 8, messageType);
    this.setU32(INPUT + 12, bytes.length);
    this.memory.bytes.set(bytes.subarray(0, Math.min(bytes.length, 240)), INPUT + 16);
    return this.hypercall(T.HVCALL_POST_MESSAGE, INPUT);
  }

  /** HvSignalEvent(connectionId, flag) as a fast hypercall (input in EBX:ECX). */
  signalEvent(connectionId: number, flag = 0): number {
    return this.hypercall(T.HVCALL_SIGNAL_EVENT | (1 << 16), connectionId, flag & 0xffff);
  }

  /** Takes the message in SINT2's SIMP slot, if any, as Linux does (copy, clear, EOM if pending). */
  takeMessage(): Uint8Array | null {
    const slot = SIMP + P.VMBUS_SINT * T.MESSAGE_SIZE;
    if (this.u32(slot) === 0) return null;
    const size = Math.min(this.memory.bytes[slot + 4]!, T.MESSAGE_PAYLOAD_MAX);
    const payload = this.memory.bytes.slice(slot + 16, slot + 16 + size);
    const pending = (this.memory.bytes[slot + 5]! & T.MESSAGE_FLAG_PENDING) !== 0;
    this.setU32(slot, 0);
    if (pending) this.wrmsr(T.MSR_EOM, 0);
    return payload;
  }

  /** Test-and-clears SIEF flag `flag` of SINT2. */
  takeEvent(flag: number): boolean {
    const at = SIEF + P.VMBUS_SINT * T.MESSAGE_SIZE + (flag >>> 3);
    const bit = 1 << (flag & 7);
    const was = (this.memory.bytes[at]! & bit) !== 0;
    this.memory.bytes[at] = this.memory.bytes[at]! & ~bit;
    return was;
  }
}

/** A ring as the guest sees it: `pages` pages from `gpa`, header page first. */
export class GuestRing {
  readonly gpa: number;
  readonly dataSize: number;
  private readonly guest: TestGuest;
  /** The guest's private read index (published after each read, as hv_pkt_iter_close does). */
  private readIndex = 0;

  constructor(guest: TestGuest, gpa: number, pages: number) {
    this.guest = guest;
    this.gpa = gpa;
    this.dataSize = (pages - 1) * PAGE_SIZE;
  }

  /** Linux's ring init: header zeroed, feature bit pending_send_sz set. */
  init(): void {
    this.guest.memory.bytes.fill(0, this.gpa, this.gpa + PAGE_SIZE);
    this.guest.setU32(this.gpa + P.RING_FEATURE_BITS, P.RING_FEATURE_PENDING_SEND_SZ);
    this.readIndex = 0;
  }

  header(field: number): number {
    return this.guest.u32(this.gpa + field);
  }

  setHeader(field: number, value: number): void {
    this.guest.setU32(this.gpa + field, value);
  }

  private copyIn(pos: number, src: Uint8Array): void {
    const bytes = this.guest.memory.bytes;
    const data = this.gpa + PAGE_SIZE;
    const first = Math.min(src.length, this.dataSize - pos);
    bytes.set(src.subarray(0, first), data + pos);
    if (first < src.length) bytes.set(src.subarray(first), data);
  }

  private copyOut(pos: number, length: number): Uint8Array {
    const bytes = this.guest.memory.bytes;
    const data = this.gpa + PAGE_SIZE;
    const out = new Uint8Array(length);
    const first = Math.min(length, this.dataSize - pos);
    out.set(bytes.subarray(data + pos, data + pos + first));
    if (first < length) out.set(bytes.subarray(data, data + length - first), first);
    return out;
  }

  /**
   * Writes a packet (the guest as writer: hv_ringbuffer_write). Returns "full" when it does not fit, else
   * whether the host needs a signal (the ring was empty and the host does not mask interrupts).
   */
  write(packet: Uint8Array): "full" | { signal: boolean } {
    const w = this.header(P.RING_WRITE_INDEX);
    const r = this.header(P.RING_READ_INDEX);
    const used = w >= r ? w - r : this.dataSize - r + w;
    const total = packet.length + 8;
    if (this.dataSize - used <= total) return "full";
    this.copyIn(w, packet);
    const trailer = new Uint8Array(8);
    new DataView(trailer.buffer).setUint32(4, w, true);
    this.copyIn((w + packet.length) % this.dataSize, trailer);
    this.setHeader(P.RING_WRITE_INDEX, (w + total) % this.dataSize);
    return { signal: this.header(P.RING_INTERRUPT_MASK) === 0 && used === 0 };
  }

  /** Reads the next packet (the guest as reader), or null when empty; `signal`: the host waits for space. */
  read(): { packet: Uint8Array; signal: boolean } | null {
    const w = this.header(P.RING_WRITE_INDEX);
    const avail = w >= this.readIndex ? w - this.readIndex : this.dataSize - this.readIndex + w;
    if (avail === 0) return null;
    const desc = new DataView(this.copyOut(this.readIndex, 16).buffer);
    const length = desc.getUint16(4, true) * 8;
    const packet = this.copyOut(this.readIndex, length);
    const freeBefore = this.dataSize - avail;
    this.readIndex = (this.readIndex + length + 8) % this.dataSize;
    this.setHeader(P.RING_READ_INDEX, this.readIndex);
    const pending = this.header(P.RING_PENDING_SEND_SZ);
    const signal = pending !== 0 && freeBefore <= pending && freeBefore + length + 8 > pending;
    return { packet, signal };
  }
}

export interface Offer {
  relid: number;
  classId: Uint8Array;
  instanceId: Uint8Array;
  connectionId: number;
  flags: number;
  dedicatedInterrupt: boolean;
  monitorAllocated: boolean;
}

/** An open channel from the guest's side. */
export interface GuestChannel {
  offer: Offer;
  gpadl: number;
  /** Guest-to-host ring. */
  send: GuestRing;
  /** Host-to-guest ring. */
  recv: GuestRing;
}

/**
 * The VMBus client: connects, collects offers, creates GPADLs, opens channels and moves packets, waiting for
 * answers by letting the host run (`hostTurn`, the run loop's work between guest instructions).
 */
export class VmbusClient {
  readonly guest: TestGuest;
  private readonly hostTurn: () => void;
  /** Messages taken from the SIMP slot and not yet consumed by a wait. */
  readonly inbox: Uint8Array[] = [];
  readonly offers = new Map<number, Offer>();
  version = 0;
  private nextGpadl = 0xe1e10;

  constructor(guest: TestGuest, hostTurn: () => void = () => undefined) {
    this.guest = guest;
    this.hostTurn = hostTurn;
  }

  /** Posts a channel message on connection id `connectionId` (default 1, as after a 5.x contact). */
  post(bytes: Uint8Array, connectionId = P.MESSAGE_CONNECTION_ID): number {
    const status = this.guest.postMessage(connectionId, bytes);
    this.pump();
    return status;
  }

  /** Lets the host run and moves every delivered message into the inbox. */
  pump(): void {
    for (let i = 0; i < 64; i++) {
      this.hostTurn();
      const m = this.guest.takeMessage();
      if (m === null) return;
      this.inbox.push(m);
    }
  }

  /** Removes and returns the first inbox message of `type`, or null. */
  take(type: Msg): Uint8Array | null {
    this.pump();
    const i = this.inbox.findIndex((m) => new DataView(m.buffer).getUint32(0, true) === type);
    return i < 0 ? null : this.inbox.splice(i, 1)[0]!;
  }

  expect(type: Msg): DataView {
    const m = this.take(type);
    if (m === null)
      throw new Error(`expected ${P.MESSAGE_NAMES[type]} from the host, inbox: ${this.inboxTypes()}`);
    return new DataView(m.buffer);
  }

  inboxTypes(): string {
    return this.inbox.map((m) => P.MESSAGE_NAMES[new DataView(m.buffer).getUint32(0, true)] ?? "?").join(",");
  }

  /** INITIATE_CONTACT for `version` (on connection id 4 for >= 5.0, as Linux); true when supported. */
  connect(version = P.VERSION_WIN10_V5_3, targetVcpu = 0): boolean {
    const m = P.newMessage(Msg.InitiateContact, 40);
    m.view.setUint32(P.IC_VERSION, version, true);
    m.view.setUint32(P.IC_TARGET_VCPU, targetVcpu, true);
    if (version >= P.VERSION_WIN10_V5) m.view.setUint8(P.IC_MSG_SINT, P.VMBUS_SINT);
    this.post(m.bytes, version >= P.VERSION_WIN10_V5 ? P.MESSAGE_CONNECTION_ID_4 : P.MESSAGE_CONNECTION_ID);
    const r = this.expect(Msg.VersionResponse);
    if (r.getUint8(P.VR_SUPPORTED) !== 1) return false;
    this.version = version;
    return true;
  }

  /** Linux's version walk: newest first until the host accepts one. */
  negotiate(): number {
    for (const v of P.SUPPORTED_VERSIONS) if (this.connect(v)) return v;
    throw new Error("no version accepted");
  }

  requestOffers(): Offer[] {
    this.post(P.newMessage(Msg.RequestOffers, 8).bytes);
    this.expect(Msg.AllOffersDelivered);
    const out: Offer[] = [];
    let m: Uint8Array | null;
    while ((m = this.take(Msg.OfferChannel)) !== null) {
      const o = parseOffer(m);
      this.offers.set(o.relid, o);
      out.push(o);
    }
    return out;
  }

  /** Creates a GPADL over `pfns` (one range, offset 0) for `relid`; returns its handle and the creation status. */
  createGpadl(
    relid: number,
    pfns: readonly number[],
    handle = this.nextGpadl++,
  ): { handle: number; status: number } {
    for (const msg of gpadlMessages(relid, handle, pfns)) this.post(msg);
    const r = this.expect(Msg.GpadlCreated);
    return { handle: r.getUint32(12, true), status: r.getUint32(16, true) };
  }

  teardownGpadl(relid: number, handle: number): boolean {
    const m = P.newMessage(Msg.GpadlTeardown, 16);
    m.view.setUint32(8, relid, true);
    m.view.setUint32(12, handle, true);
    this.post(m.bytes);
    const r = this.take(Msg.GpadlTorndown);
    return r !== null && new DataView(r.buffer).getUint32(8, true) === handle;
  }

  /**
   * Linux's vmbus_open: one GPADL holding both rings (`sendPages` guest-to-host first), OPENCHANNEL, wait
   * for OPENCHANNEL_RESULT. Returns the channel or the failing status.
   */
  open(
    relid: number,
    sendPages = 4,
    recvPages = 4,
    targetVp = 0,
    userData?: Uint8Array,
  ): GuestChannel | number {
    const offer = this.offers.get(relid);
    if (offer === undefined) throw new Error(`no offer ${relid}`);
    const gpa = this.guest.alloc(sendPages + recvPages);
    const send = new GuestRing(this.guest, gpa, sendPages);
    const recv = new GuestRing(this.guest, gpa + sendPages * PAGE_SIZE, recvPages);
    send.init();
    recv.init();
    const pfns = Array.from({ length: sendPages + recvPages }, (_, i) => gpa / PAGE_SIZE + i);
    const g = this.createGpadl(relid, pfns);
    if (g.status !== 0) return g.status;
    const m = P.newMessage(Msg.OpenChannel, 148);
    m.view.setUint32(P.OC_RELID, relid, true);
    m.view.setUint32(P.OC_OPENID, relid, true);
    m.view.setUint32(P.OC_GPADL, g.handle, true);
    m.view.setUint32(P.OC_TARGET_VP, targetVp, true);
    m.view.setUint32(P.OC_DOWNSTREAM_OFFSET, sendPages, true);
    if (userData !== undefined) m.bytes.set(userData.subarray(0, 120), P.OC_USER_DATA);
    this.post(m.bytes);
    const r = this.expect(Msg.OpenChannelResult);
    const status = r.getUint32(16, true);
    if (r.getUint32(8, true) !== relid || status !== 0) return status;
    return { offer, gpadl: g.handle, send, recv };
  }

  close(ch: GuestChannel): void {
    const m = P.newMessage(Msg.CloseChannel, 12);
    m.view.setUint32(8, ch.offer.relid, true);
    this.post(m.bytes);
    if (!this.teardownGpadl(ch.offer.relid, ch.gpadl)) throw new Error("ring GPADL not torn down");
  }

  /** Sends a packet on `ch` and signals the host as Linux does (only on the empty-to-non-empty transition). */
  sendPacket(ch: GuestChannel, packet: Uint8Array, alwaysSignal = false): boolean {
    const r = ch.send.write(packet);
    if (r === "full") return false;
    if (r.signal || alwaysSignal) this.guest.signalEvent(ch.offer.connectionId);
    this.pump();
    return true;
  }

  /** Reads every waiting host-to-guest packet of `ch` (clearing its SIEF flag first, as vmbus_chan_sched). */
  receivePackets(ch: GuestChannel): Uint8Array[] {
    this.pump();
    this.guest.takeEvent(ch.offer.relid);
    const out: Uint8Array[] = [];
    let r: ReturnType<GuestRing["read"]>;
    while ((r = ch.recv.read()) !== null) {
      out.push(r.packet);
      if (r.signal) this.guest.signalEvent(ch.offer.connectionId);
    }
    this.pump();
    return out;
  }

  unload(): boolean {
    this.post(P.newMessage(Msg.Unload, 8).bytes);
    return this.take(Msg.UnloadResponse) !== null;
  }
}

export function parseOffer(m: Uint8Array): Offer {
  const v = new DataView(m.buffer, m.byteOffset, m.length);
  return {
    relid: v.getUint32(P.OFFER_RELID, true),
    classId: m.slice(P.OFFER_CLASS, P.OFFER_CLASS + 16),
    instanceId: m.slice(P.OFFER_INSTANCE, P.OFFER_INSTANCE + 16),
    connectionId: v.getUint32(P.OFFER_CONNECTION_ID, true),
    flags: v.getUint16(P.OFFER_FLAGS, true),
    dedicatedInterrupt: (v.getUint16(P.OFFER_DEDICATED_INTERRUPT, true) & 1) !== 0,
    monitorAllocated: (v.getUint8(P.OFFER_MONITOR_ALLOCATED) & 1) !== 0,
  };
}

/** GPADL_HEADER (up to 26 PFNs) and GPADL_BODY messages (up to 28 PFNs each) for one range, as Linux builds them. */
export function gpadlMessages(
  relid: number,
  handle: number,
  pfns: readonly number[],
  byteCount?: number,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  const inHeader = Math.min(pfns.length, 26);
  const h = P.newMessage(Msg.GpadlHeader, 28 + inHeader * 8);
  h.view.setUint32(P.GH_RELID, relid, true);
  h.view.setUint32(P.GH_GPADL, handle, true);
  h.view.setUint16(P.GH_RANGE_BUFLEN, 8 + pfns.length * 8, true);
  h.view.setUint16(P.GH_RANGE_COUNT, 1, true);
  h.view.setUint32(20, byteCount ?? pfns.length * PAGE_SIZE, true);
  h.view.setUint32(24, 0, true);
  for (let i = 0; i < inHeader; i++) setU64(h.view, 28 + i * 8, pfns[i]!);
  out.push(h.bytes);
  for (let at = inHeader; at < pfns.length; at += 28) {
    const n = Math.min(28, pfns.length - at);
    const b = P.newMessage(Msg.GpadlBody, 16 + n * 8);
    b.view.setUint32(P.GB_GPADL, handle, true);
    for (let i = 0; i < n; i++) setU64(b.view, 16 + i * 8, pfns[at + i]!);
    out.push(b.bytes);
  }
  return out;
}

export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** A packet as the guest builds it: descriptor (type, offsets, flags, transaction id), extra, payload. */
export function guestPacket(
  type: number,
  payload: Uint8Array,
  transLo = 0,
  transHi = 0,
  completionRequested = false,
  extra: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const dataOffset = 16 + extra.length;
  const length = (dataOffset + payload.length + 7) & ~7;
  const bytes = new Uint8Array(length);
  const v = new DataView(bytes.buffer);
  v.setUint16(0, type, true);
  v.setUint16(2, dataOffset / 8, true);
  v.setUint16(4, length / 8, true);
  v.setUint16(6, completionRequested ? 1 : 0, true);
  v.setUint32(8, transLo, true);
  v.setUint32(12, transHi, true);
  bytes.set(extra, 16);
  bytes.set(payload, dataOffset);
  return bytes;
}

/** GPA-direct extras: {u32 reserved, u32 range count} then each {u32 len, u32 offset, u64 pfn[]}. */
export function gpaDirectExtra(
  ranges: ReadonlyArray<{ length: number; offset: number; pfns: readonly number[] }>,
): Uint8Array {
  const size = 8 + ranges.reduce((n, r) => n + 8 + r.pfns.length * 8, 0);
  const extra = new Uint8Array(size);
  const v = new DataView(extra.buffer);
  v.setUint32(4, ranges.length, true);
  let at = 8;
  for (const r of ranges) {
    v.setUint32(at, r.length, true);
    v.setUint32(at + 4, r.offset, true);
    at += 8;
    for (const p of r.pfns) {
      setU64(v, at, p);
      at += 8;
    }
  }
  return extra;
}

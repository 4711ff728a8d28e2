// Owns: the virtual switch: a learning L2 switch with one port per endpoint (a VM's NIC, the NAT, a TAP
// device, a QEMU VM), MAC ageing, flooding of broadcast, multicast and unknown destinations, an optional VLAN
// id per port (ports only see frames of their own VLAN), a bounded output queue per port that drops on
// overflow and counts the drops, per-port statistics, and packet capture of any port in pcap format.
// Must not: block or wait for a port (a slow or dead endpoint loses its own frames, never stalls the
// others), parse above the Ethernet header, trust a frame's contents (every frame comes from a guest), grow
// without bound (the MAC table and every queue have a size limit), or read a clock of its own.
// Spec: IEEE 802.1D clause 7/8 (learning, filtering, ageing; 300 s default ageing time), IEEE 802.1Q (VLAN
// membership of access ports), pcap.ts for the capture format.

import {
  destinationOf,
  ETHERTYPE_VLAN,
  etherTypeOf,
  formatMac,
  isGroup,
  sourceOf,
  type Mac,
} from "./ethernet.js";
import { ETHERNET_HEADER, MAX_FRAME } from "./frame-stream.js";
import { NetError } from "./net-error.js";
import { pcapHeader, pcapRecord } from "./pcap.js";

/** 802.1D's recommended ageing time. */
export const DEFAULT_AGEING_MS = 300_000;
export const DEFAULT_MAC_TABLE_SIZE = 4096;
export const DEFAULT_QUEUE_FRAMES = 512;
export const DEFAULT_QUEUE_BYTES = 4 * 1024 * 1024;

export interface PortOptions {
  name: string;
  /** 802.1Q VLAN id 1..4094; a port without one belongs to the untagged default segment. */
  vlan?: number;
  /** What the endpoint is ("vm", "nat", "tap", "stream"): shown in listings, not used for forwarding. */
  kind?: string;
  queueFrames?: number;
  queueBytes?: number;
}

export interface PortStats {
  /** Frames the endpoint sent into the switch. */
  rxFrames: number;
  rxBytes: number;
  /** Frames from the endpoint the switch refused (malformed, group source, tagged on a VLAN port). */
  rxDropped: number;
  /** Frames the switch queued for the endpoint. */
  txFrames: number;
  txBytes: number;
  /** Frames for the endpoint lost because its queue was full. */
  txDropped: number;
}

export interface SwitchStats {
  /** Frames sent to every port of a segment because their unicast destination was not in the table. */
  unknownFloods: number;
  /** Source addresses not learnt because the MAC table was full. */
  learnRefused: number;
}

export interface MacEntry {
  mac: string;
  vlan: number;
  port: number;
  ageMs: number;
}

type CaptureSink = (bytes: Uint8Array) => void;

export class SwitchPort {
  readonly stats: PortStats = {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
  };
  /** Called when the queue goes from empty to non-empty: the host then drains it with take(). */
  onQueued: (() => void) | null = null;
  private readonly queue: Uint8Array[] = [];
  private head = 0;
  private queuedBytes = 0;
  private readonly queueFrames: number;
  private readonly queueBytes: number;
  /** @internal the switch's captures of this port. */
  readonly captures = new Set<CaptureSink>();

  constructor(
    readonly id: number,
    readonly name: string,
    readonly vlan: number,
    readonly kind: string,
    options: PortOptions,
  ) {
    this.queueFrames = options.queueFrames ?? DEFAULT_QUEUE_FRAMES;
    this.queueBytes = options.queueBytes ?? DEFAULT_QUEUE_BYTES;
  }

  /** Frames waiting for the endpoint. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** The oldest frame waiting for the endpoint, removed from the queue. */
  take(): Uint8Array | undefined {
    if (this.head === this.queue.length) return undefined;
    const f = this.queue[this.head]!;
    this.queue[this.head++] = EMPTY;
    this.queuedBytes -= f.length;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return f;
  }

  /** @internal queues a frame, or drops and counts it when the queue is full. */
  offer(frame: Uint8Array): boolean {
    if (this.queued >= this.queueFrames || this.queuedBytes + frame.length > this.queueBytes) {
      this.stats.txDropped++;
      return false;
    }
    const wasEmpty = this.queued === 0;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.stats.txFrames++;
    this.stats.txBytes += frame.length;
    if (wasEmpty) this.onQueued?.();
    return true;
  }
}

const EMPTY = new Uint8Array(0);

interface Learnt {
  port: SwitchPort;
  seenMs: number;
}

export interface SwitchOptions {
  /** Milliseconds since the Unix epoch (capture timestamps, MAC ageing); the host's clock. */
  clock: () => number;
  ageingMs?: number;
  macTableSize?: number;
}

export class VirtualSwitch {
  readonly stats: SwitchStats = { unknownFloods: 0, learnRefused: 0 };
  private readonly portsById = new Map<number, SwitchPort>();
  /** Learnt stations by `vlan/mac` (a number key would need 60 bits, more than a double holds exactly). */
  private readonly table = new Map<string, Learnt>();
  private nextId = 1;
  private readonly clock: () => number;
  private readonly ageingMs: number;
  private readonly macTableSize: number;

  constructor(options: SwitchOptions) {
    this.clock = options.clock;
    this.ageingMs = options.ageingMs ?? DEFAULT_AGEING_MS;
    this.macTableSize = options.macTableSize ?? DEFAULT_MAC_TABLE_SIZE;
  }

  addPort(options: PortOptions): SwitchPort {
    const vlan = options.vlan ?? 0;
    if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4094) {
      throw new NetError("invalid-argument", `VLAN id ${vlan} is outside 1..4094`);
    }
    const port = new SwitchPort(this.nextId++, options.name, vlan, options.kind ?? "stream", options);
    this.portsById.set(port.id, port);
    return port;
  }

  /** Removes a port: its learnt addresses and captures go with it; queued frames are discarded. */
  removePort(port: SwitchPort): void {
    if (this.portsById.get(port.id) !== port) return;
    this.portsById.delete(port.id);
    for (const [k, e] of this.table) if (e.port === port) this.table.delete(k);
    port.captures.clear();
    port.onQueued = null;
    while (port.take()) {
      // discard
    }
  }

  ports(): SwitchPort[] {
    return [...this.portsById.values()];
  }

  port(id: number): SwitchPort {
    const p = this.portsById.get(id);
    if (!p) throw new NetError("not-found", `no port ${id} on this switch`);
    return p;
  }

  /** A frame from the endpoint of `port`: learn its source, then forward, flood or filter it. */
  input(port: SwitchPort, frame: Uint8Array): void {
    if (this.portsById.get(port.id) !== port) return;
    port.stats.rxFrames++;
    port.stats.rxBytes += frame.length;
    if (frame.length < ETHERNET_HEADER || frame.length > MAX_FRAME) {
      port.stats.rxDropped++;
      return;
    }
    this.captured(port, frame);
    const source = sourceOf(frame);
    // A group source address is invalid (802.3) and must never be learnt; a tag on an access port would
    // let a guest step into another VLAN.
    if (isGroup(source) || (port.vlan !== 0 && etherTypeOf(frame) === ETHERTYPE_VLAN)) {
      port.stats.rxDropped++;
      return;
    }
    const now = this.clock();
    this.learn(port, source, now);
    const destination = destinationOf(frame);
    if (!isGroup(destination)) {
      const known = this.lookup(port.vlan, destination, now);
      if (known) {
        if (known !== port) this.deliver(known, frame);
        return;
      }
      this.stats.unknownFloods++;
    }
    for (const other of this.portsById.values()) {
      if (other !== port && other.vlan === port.vlan) this.deliver(other, frame);
    }
  }

  /**
   * Captures the frames a port's endpoint sends and receives: `sink` gets the pcap header now and one
   * record per frame. Returns the function that stops the capture.
   */
  capture(port: SwitchPort, sink: CaptureSink): () => void {
    if (this.portsById.get(port.id) !== port) throw new NetError("not-found", `no port ${port.id}`);
    sink(pcapHeader());
    port.captures.add(sink);
    return () => port.captures.delete(sink);
  }

  macTable(): MacEntry[] {
    const now = this.clock();
    const out: MacEntry[] = [];
    for (const [k, e] of this.table) {
      if (now - e.seenMs >= this.ageingMs) continue;
      const [vlan, mac] = k.split("/") as [string, string];
      out.push({ mac: formatMac(Number(mac)), vlan: Number(vlan), port: e.port.id, ageMs: now - e.seenMs });
    }
    return out;
  }

  private deliver(port: SwitchPort, frame: Uint8Array): void {
    if (port.offer(frame)) this.captured(port, frame);
  }

  private captured(port: SwitchPort, frame: Uint8Array): void {
    if (port.captures.size === 0) return;
    const record = pcapRecord(frame, this.clock());
    for (const sink of port.captures) sink(record);
  }

  private learn(port: SwitchPort, mac: Mac, now: number): void {
    const k = key(port.vlan, mac);
    const e = this.table.get(k);
    if (e) {
      // A station that moved (a VM migrated, a NIC re-plugged) is found on its new port at once.
      e.port = port;
      e.seenMs = now;
      return;
    }
    if (this.table.size >= this.macTableSize) this.expire(now);
    if (this.table.size >= this.macTableSize) {
      // A guest spraying source addresses fills the table; the rest keep working, by flooding.
      this.stats.learnRefused++;
      return;
    }
    this.table.set(k, { port, seenMs: now });
  }

  private lookup(vlan: number, mac: Mac, now: number): SwitchPort | undefined {
    const k = key(vlan, mac);
    const e = this.table.get(k);
    if (!e) return undefined;
    if (now - e.seenMs >= this.ageingMs) {
      this.table.delete(k);
      return undefined;
    }
    return e.port;
  }

  private expire(now: number): void {
    for (const [k, e] of this.table) if (now - e.seenMs >= this.ageingMs) this.table.delete(k);
  }
}

function key(vlan: number, mac: Mac): string {
  return `${vlan}/${mac}`;
}

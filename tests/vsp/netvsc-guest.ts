// Owns: a guest-side netvsc for tests: hv_netvsc's handshake on a real VMBus channel (NVSP INIT, NDIS
// configuration and version, receive and send buffers as GPADLs), RNDIS requests sent through GPA-direct
// page buffers or send-buffer sections, data frames out, and the host's transfer-page packets read from the
// receive buffer and completed as Linux completes them.
// Must not: hide what the host sent (every host packet is parsed and returned), or complete anything the
// test did not ask it to.
// Spec: Linux 6.1 drivers/net/hyperv/netvsc.c, rndis_filter.c (what the guest sends, in this order).

import { PAGE_SIZE } from "../../src/memory/guest-memory.js";
import * as P from "../../src/vmbus/protocol.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import { guidEquals } from "../../src/support/ms-guid.js";
import { NetVsp, type NicPort } from "../../src/vsp/netvsp/netvsp.js";
import { NETVSC_CLASS, NvspType, RndisType } from "../../src/vsp/netvsp/nvsp-protocol.js";
import {
  type GuestChannel,
  gpaDirectExtra,
  guestPacket,
  TestGuest,
  VmbusClient,
} from "../vmbus/guest-client.js";

export const RECV_PAGES = 64;
export const SEND_PAGES = 8;

/** A host-to-guest packet as the guest sees it. */
export interface HostPacket {
  type: number;
  transLo: number;
  completionRequested: boolean;
  payload: Uint8Array;
  /** Transfer-page packets: the set id and the messages the ranges point at (copied from the receive buffer). */
  setId: number;
  messages: Uint8Array[];
  ranges: { count: number; offset: number }[];
}

export function nvsp(type: number, ...fields: number[]): Uint8Array {
  const b = new Uint8Array(40);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  fields.forEach((f, i) => v.setUint32(4 + i * 4, f >>> 0, true));
  return b;
}

export function rndisMessage(
  type: number,
  body: number[],
  extra: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const b = new Uint8Array(8 + body.length * 4 + extra.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, b.length, true);
  body.forEach((f, i) => v.setUint32(8 + i * 4, f >>> 0, true));
  b.set(extra, 8 + body.length * 4);
  return b;
}

/** An RNDIS_MSG_PACKET carrying `frame` right after the rndis_packet (no PPIs). */
export function rndisPacket(frame: Uint8Array): Uint8Array {
  return rndisMessage(RndisType.Packet, [36, frame.length, 0, 0, 0, 0, 0, 0, 0], frame);
}

/** An RNDIS_MSG_PACKET with per-packet informations `ppis` ([type, u32 value] each) before `frame`. */
export function rndisPacketWithPpis(frame: Uint8Array, ppis: [number, number][]): Uint8Array {
  const info = new Uint8Array(ppis.length * 16);
  const v = new DataView(info.buffer);
  ppis.forEach(([type, value], i) => {
    v.setUint32(i * 16, 16, true);
    v.setUint32(i * 16 + 4, type, true);
    v.setUint32(i * 16 + 8, 12, true);
    v.setUint32(i * 16 + 12, value >>> 0, true);
  });
  const extra = new Uint8Array(info.length + frame.length);
  extra.set(info);
  extra.set(frame, info.length);
  return rndisMessage(
    RndisType.Packet,
    [36 + info.length, frame.length, 0, 0, 0, 36, info.length, 0, 0],
    extra,
  );
}

export function frame(dst: number[], src: number[], payload: number, length = 64): Uint8Array {
  const f = new Uint8Array(length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (let i = 14; i < length; i++) f[i] = (payload + i) & 0xff;
  return f;
}

/** A port that records frames. */
export class RecordingPort implements NicPort {
  readonly frames: Uint8Array[] = [];
  full = false;
  send(f: Uint8Array): boolean {
    this.frames.push(f);
    return !this.full;
  }
}

export class NetvscGuest {
  readonly guest: TestGuest;
  readonly server: VmbusServer;
  readonly client: VmbusClient;
  readonly vsps: NetVsp[] = [];
  ch!: GuestChannel;
  recvGpa = 0;
  sendGpa = 0;
  /** A page for GPA-direct RNDIS requests. */
  scratch = 0;
  private trans = 0x100;

  constructor(ports: NicPort[], macs: number[][]) {
    this.guest = new TestGuest();
    this.server = new VmbusServer({ partition: this.guest.partition });
    ports.forEach((port, i) =>
      this.vsps.push(
        new NetVsp(this.server, {
          instanceId: new Uint8Array(16).fill(0x40 + i),
          mac: Uint8Array.from(macs[i]!),
          port,
          name: `netvsp${i}`,
        }),
      ),
    );
    this.guest.enableSynic();
    this.client = new VmbusClient(this.guest, () => this.server.poll());
    this.client.negotiate();
  }

  /** Opens NIC `index`'s channel and allocates its buffers (not yet announced to the host). */
  open(index: number): GuestChannel {
    const offers = this.client.requestOffers().filter((o) => guidEquals(o.classId, NETVSC_CLASS));
    const offer = offers.find((o) => o.relid === this.vsps[index]!.channel.relid)!;
    const ch = this.client.open(offer.relid, 16, 16);
    if (typeof ch === "number") throw new Error(`open failed: ${ch}`);
    this.ch = ch;
    this.recvGpa = this.guest.alloc(RECV_PAGES);
    this.sendGpa = this.guest.alloc(SEND_PAGES);
    this.scratch = this.guest.alloc(18); // a 64 KiB large send fits
    return ch;
  }

  nextTrans(): number {
    return this.trans++;
  }

  sendInband(payload: Uint8Array, completion = true, ch = this.ch): number {
    const t = this.nextTrans();
    if (!this.client.sendPacket(ch, guestPacket(P.PacketType.Inband, payload, t, 0, completion)))
      throw new Error("guest ring full");
    return t;
  }

  /** NVSP 107 with the RNDIS bytes in GPA-direct ranges over the scratch pages. */
  sendRndisDirect(msg: Uint8Array, channelType = 1, ch = this.ch): number {
    const off = 0x10;
    this.guest.memory.bytes.set(msg, this.guest.memory.offsetOf(this.scratch) + off);
    const pages = Math.ceil((off + msg.length) / PAGE_SIZE);
    const pfns = Array.from({ length: pages }, (_, i) => this.scratch / PAGE_SIZE + i);
    const extra = gpaDirectExtra([{ length: msg.length, offset: off, pfns }]);
    const t = this.nextTrans();
    const payload = nvsp(NvspType.SendRndisPacket, channelType, 0xffff_ffff, 0);
    if (!this.client.sendPacket(ch, guestPacket(P.PacketType.GpaDirect, payload, t, 0, true, extra)))
      throw new Error("guest ring full");
    return t;
  }

  /** NVSP 107 with `msgs` batched into send-buffer section `index` (8-byte aligned, as Linux pads). */
  sendRndisSection(msgs: Uint8Array[], index: number, channelType = 0, ch = this.ch): number {
    const base = this.guest.memory.offsetOf(this.sendGpa) + index * 6144;
    let at = 0;
    for (const m of msgs) {
      this.guest.memory.bytes.set(m, base + at);
      at += m.length;
    }
    const t = this.nextTrans();
    const payload = nvsp(NvspType.SendRndisPacket, channelType, index, at);
    if (!this.client.sendPacket(ch, guestPacket(P.PacketType.Inband, payload, t, 0, true)))
      throw new Error("ring full");
    return t;
  }

  /** Every packet the host sent on `ch`, parsed. */
  take(ch = this.ch): HostPacket[] {
    const out: HostPacket[] = [];
    for (const raw of this.client.receivePackets(ch)) {
      const v = new DataView(raw.buffer, raw.byteOffset, raw.length);
      const type = v.getUint16(0, true);
      const dataOffset = v.getUint16(2, true) * 8;
      const p: HostPacket = {
        type,
        transLo: v.getUint32(8, true),
        completionRequested: (v.getUint16(6, true) & 1) !== 0,
        payload: raw.slice(dataOffset),
        setId: 0,
        messages: [],
        ranges: [],
      };
      if (type === P.PacketType.TransferPages) {
        p.setId = v.getUint16(16, true);
        const count = v.getUint32(20, true);
        for (let i = 0; i < count; i++) {
          const byteCount = v.getUint32(24 + i * 8, true);
          const byteOffset = v.getUint32(28 + i * 8, true);
          p.ranges.push({ count: byteCount, offset: byteOffset });
          const at = this.guest.memory.offsetOf(this.recvGpa) + byteOffset;
          p.messages.push(this.guest.memory.bytes.slice(at, at + byteCount));
        }
      }
      out.push(p);
    }
    return out;
  }

  /** Completes a transfer-page packet as Linux does (8 bytes: SEND_RNDIS_PKT_COMPLETE, status). */
  completeReceive(transLo: number, ch = this.ch): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, NvspType.SendRndisPacketComplete, true);
    new DataView(b.buffer).setUint32(4, 1, true);
    this.client.sendPacket(ch, guestPacket(P.PacketType.Completion, b, transLo, 0, false));
  }

  /** Linux 6.1's bring-up up to an open interface: NVSP, buffers, RNDIS INIT, the queries, the filter. */
  bringUp(ch = this.ch): { responses: Uint8Array[]; completions: HostPacket[] } {
    const responses: Uint8Array[] = [];
    const completions: HostPacket[] = [];
    const collect = (): void => {
      for (const p of this.take(ch)) {
        if (p.type === P.PacketType.TransferPages) {
          responses.push(...p.messages);
          this.completeReceive(p.transLo, ch);
        } else completions.push(p);
      }
    };
    this.sendInband(nvsp(NvspType.Init, 0x60001, 0x60001), true, ch);
    this.sendInband(nvsp(NvspType.SendNdisConfig, 1514, 0, 0x21, 0), false, ch);
    this.sendInband(nvsp(NvspType.SendNdisVersion, 6, 30), false, ch);
    const pfns = (gpa: number, n: number) => Array.from({ length: n }, (_, i) => gpa / PAGE_SIZE + i);
    const recv = this.client.createGpadl(ch.offer.relid, pfns(this.recvGpa, RECV_PAGES));
    this.sendInband(nvsp(NvspType.SendReceiveBuffer, recv.handle, 0xcafe), true, ch);
    const send = this.client.createGpadl(ch.offer.relid, pfns(this.sendGpa, SEND_PAGES));
    this.sendInband(nvsp(NvspType.SendSendBuffer, send.handle, 0), true, ch);
    collect();
    let req = 1;
    const control = (m: Uint8Array): void => {
      this.sendRndisDirect(m, 1, ch);
      collect();
    };
    control(rndisMessage(RndisType.Init, [req++, 1, 0, 0x4000]));
    for (const oid of [0x01010101, 0x00010106, 0xfc01020d, 0x00010114, 0x00010107, 0x00010203, 0x00020216])
      control(rndisMessage(RndisType.Query, [req++, oid, 0, 20, 0]));
    control(rndisMessage(RndisType.Set, [req++, 0xfc01020c, 4, 20, 0], new Uint8Array([0xa8, 1, 4, 0])));
    control(rndisMessage(RndisType.Set, [req++, 0x0001010e, 4, 20, 0], new Uint8Array([0x0b, 0, 0, 0])));
    return { responses, completions };
  }
}

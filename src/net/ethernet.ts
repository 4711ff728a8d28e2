// Owns: reading the Ethernet header fields the switch forwards on (destination, source, 802.1Q tag), and
// MAC address text (aa:bb:cc:dd:ee:ff).
// Must not: look past the Ethernet header (the switch is L2: it never parses IP).
// Spec: IEEE 802.3 clause 3.2 (frame format; the group bit is bit 0 of the first octet), IEEE 802.1Q
// (TPID 0x8100).

import { NetError } from "./net-error.js";

export const ETHERTYPE_VLAN = 0x8100;

/** A MAC address as a 48-bit integer (fits a double exactly; usable as a Map key). */
export type Mac = number;

export const BROADCAST: Mac = 0xffff_ffff_ffff;

export function macAt(frame: Uint8Array, offset: number): Mac {
  let v = 0;
  for (let i = 0; i < 6; i++) v = v * 256 + frame[offset + i]!;
  return v;
}

export const destinationOf = (frame: Uint8Array): Mac => macAt(frame, 0);
export const sourceOf = (frame: Uint8Array): Mac => macAt(frame, 6);

/** Group addresses (multicast and broadcast) have bit 0 of the first octet set. */
export function isGroup(mac: Mac): boolean {
  return Math.floor(mac / 2 ** 40) % 2 === 1;
}

export function etherTypeOf(frame: Uint8Array): number {
  return (frame[12]! << 8) | frame[13]!;
}

export function formatMac(mac: Mac): string {
  const parts: string[] = [];
  let v = mac;
  for (let i = 0; i < 6; i++) {
    parts.unshift((v % 256).toString(16).padStart(2, "0"));
    v = Math.floor(v / 256);
  }
  return parts.join(":");
}

export function parseMac(text: string): Mac {
  const m = /^([0-9a-f]{2})(?:[:-]([0-9a-f]{2})){5}$/i.test(text) ? text.split(/[:-]/) : null;
  if (!m) throw new NetError("invalid-argument", `'${text}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return m.reduce((v, p) => v * 256 + parseInt(p, 16), 0);
}

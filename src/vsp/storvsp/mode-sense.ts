// Owns: MODE SENSE(6) and MODE SENSE(10) framing for any logical unit: the mode parameter header (with the
// unit's device-specific parameter, e.g. WP and DPOFUA for a disk), page selection (one page or 3Fh for all),
// page control (current, changeable, default; saved values are not supported), and the allocation length.
// Must not: define pages (the logical units supply them) or return block descriptors (allowed by SPC: the
// device server may return none).
// Spec: SPC-4 6.11 and 6.12 (MODE SENSE(6)/(10): DBD, PC, PAGE CODE, SUBPAGE CODE), 7.5.4/7.5.5 (mode
// parameter headers), 7.5.7 (page format: PS, SPF, page code, page length); 39h/00h for saved values.

import { be16, check, invalidFieldInCdb, putBe16, SENSE, type Outcome, type ScsiCommand } from "./scsi.js";

/** Page control (SPC-4 table 187). */
export type PageControl = "current" | "changeable" | "default";

/** A mode page: its bytes (page code and length included) for a page control value. */
export type ModePage = (pc: PageControl) => Uint8Array;

export function modeSense(
  cmd: ScsiCommand,
  deviceSpecific: number,
  pages: ReadonlyMap<number, ModePage>,
): Outcome {
  const c = cmd.cdb;
  const ten = c[0] === 0x5a;
  const pcBits = c[2]! >> 6;
  const code = c[2]! & 0x3f;
  const subpage = c[3]!;
  const allocation = ten ? be16(c, 7) : c[4]!;
  if (pcBits === 3) return check(SENSE.savingNotSupported);
  const pc: PageControl = pcBits === 0 ? "current" : pcBits === 1 ? "changeable" : "default";
  // Subpages: only "page 3Fh, all subpages" (FFh) is understood, and it means the same as subpage 0.
  if (subpage !== 0 && !(code === 0x3f && subpage === 0xff)) return check(invalidFieldInCdb(3));
  let selected: Uint8Array[];
  if (code === 0x3f) {
    selected = [...pages.keys()].sort((a, b) => a - b).map((k) => pages.get(k)!(pc));
  } else {
    const page = pages.get(code);
    if (!page) return check(invalidFieldInCdb(2, 5));
    selected = [page(pc)];
  }
  const headerLength = ten ? 8 : 4;
  const total = headerLength + selected.reduce((n, p) => n + p.length, 0);
  const b = new Uint8Array(total);
  if (ten) {
    putBe16(b, 0, total - 2);
    b[3] = deviceSpecific;
  } else {
    b[0] = Math.min(0xff, total - 1);
    b[2] = deviceSpecific;
  }
  let at = headerLength;
  for (const p of selected) {
    b.set(p, at);
    at += p.length;
  }
  return cmd.dataIn(b, allocation);
}

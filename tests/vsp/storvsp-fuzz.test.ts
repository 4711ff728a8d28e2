// Hostile storvsc traffic through the real partition and VMBus server: EXECUTE_SRBs built from the random CDB
// generator, with page lists that are valid, beyond RAM, mis-sized or split, SRB fields (direction, CDB
// length, transfer length, address) mutated, short packets and unknown operations. Every packet must get one
// well-formed 80-byte completion; the channel must stay up; the controller must report no internal error;
// guest RAM outside the data pages must not change; the raw disk must equal the shadow that only successful
// writes change; read-only media must stay identical; and two runs must end in the same state hash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PAGE_SIZE } from "../../src/memory/guest-memory.js";
import * as P from "../../src/vmbus/protocol.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import { guidEquals } from "../../src/support/ms-guid.js";
import { ScsiController } from "../../src/vsp/storvsp/scsi-controller.js";
import { StorageVsp } from "../../src/vsp/storvsp/storvsp.js";
import { Operation, SCSI_CONTROLLER_CLASS } from "../../src/vsp/storvsp/vstor-protocol.js";
import { rng } from "../storage/memory-disks.js";
import {
  type GuestChannel,
  gpaDirectExtra,
  guestPacket,
  TestGuest,
  VmbusClient,
} from "../vmbus/guest-client.js";
import { applyToShadow, type FuzzUnit, randomCommand, WRITE_OPCODES } from "./cdb-generator.js";
import { isoDisk, memoryImage, SpyDisk } from "./scsi-fixtures.js";

const PACKETS = 3_000;
const RAW_BYTES = 256 * 1024;
const DATA_PAGES = 80;
const UNITS: FuzzUnit[] = [
  { kind: "disk", blockSize: 512, blocks: RAW_BYTES / 512, weight: 6 },
  { kind: "disk", blockSize: 512, blocks: 128, weight: 1 },
  { kind: "dvd", blockSize: 2048, blocks: 32, weight: 2 },
  { kind: null, blockSize: 512, blocks: 0, weight: 1 },
];
const SRB_STATUSES = new Set([0x01, 0x04, 0x05, 0x06, 0x12, 0x20, 0x84, 0x86]);

async function fuzz(seed: number): Promise<string> {
  const r = rng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const fill = (b: Uint8Array): void => b.forEach((_, i) => (b[i] = (i * 131 + (i >> 9)) & 0xff));
  const guest = new TestGuest();
  const server = new VmbusServer({ partition: guest.partition });
  const controller = new ScsiController({ maxInFlight: 4 });
  const raw = new SpyDisk((await memoryImage("raw", RAW_BYTES, { fill })).disk);
  const readOnly = new SpyDisk((await memoryImage("raw", 64 * 1024, { fill, readOnly: true })).disk);
  const { bytes: isoBytes, disk: iso } = await isoDisk(32);
  controller.attachDisk(0, raw);
  controller.attachDisk(1, readOnly);
  controller.attachDvd(2, iso);
  const vsp = new StorageVsp(server, controller, { instanceId: new Uint8Array(16).fill(7) });
  guest.enableSynic();
  const client = new VmbusClient(guest, () => server.poll());
  client.negotiate();
  const offer = client.requestOffers().find((o) => guidEquals(o.classId, SCSI_CONTROLLER_CLASS))!;
  const ch = client.open(offer.relid, 16, 16) as GuestChannel;
  assert.equal(typeof ch, "object");
  const data = guest.alloc(DATA_PAGES);
  const guard = guest.alloc(1); // the rest of RAM from here must never change
  const shadow = new Uint8Array(RAW_BYTES);
  fill(shadow);
  const hash = createHash("sha256");

  const send = async (payload: Uint8Array, trans: number, extra?: Uint8Array): Promise<Uint8Array | null> => {
    const type = extra ? P.PacketType.GpaDirect : P.PacketType.Inband;
    assert.ok(client.sendPacket(ch, guestPacket(type, payload, trans, 0, true, extra)), "ring has room");
    for (let turn = 0; turn < 50; turn++) {
      const got = client.receivePackets(ch);
      if (got.length > 0) {
        assert.equal(got.length, 1, "one completion per packet");
        return got[0]!;
      }
      await new Promise((res) => setImmediate(res));
    }
    return null;
  };
  const vstor = (op: number): Uint8Array => {
    const b = new Uint8Array(64);
    new DataView(b.buffer).setUint32(0, op, true);
    return b;
  };
  const initialize = async (): Promise<void> => {
    for (const op of [
      Operation.BeginInitialization,
      Operation.QueryProtocolVersion,
      Operation.EndInitialization,
    ]) {
      const b = vstor(op);
      new DataView(b.buffer).setUint16(12, 0x0602, true);
      assert.ok(await send(b, 1));
    }
  };
  await initialize();

  let srbsWritten = 0;
  for (let i = 0; i < PACKETS; i++) {
    const cmd = randomCommand(r, UNITS);
    const srb = vstor(Operation.ExecuteSrb);
    const v = new DataView(srb.buffer);
    srb[17] = cmd.address.path;
    srb[18] = cmd.address.target;
    srb[19] = cmd.address.lun;
    srb[20] = Math.min(16, Math.max(1, cmd.cdb.length));
    srb[21] = 20;
    srb[22] = cmd.direction === "in" ? 1 : cmd.direction === "out" ? 0 : 2;
    srb.set(cmd.cdb.subarray(0, 16), 28);
    const offset = int(8) === 0 ? int(PAGE_SIZE) : 0;
    const length = Math.min(cmd.bytes.length, DATA_PAGES * PAGE_SIZE - offset);
    v.setUint32(24, length, true);
    guest.memory.bytes.fill(0, data, data + DATA_PAGES * PAGE_SIZE);
    guest.memory.bytes.set(cmd.bytes.subarray(0, length), data + offset);
    let extra: Uint8Array | undefined;
    let validList = false;
    let damage = -1;
    if (length > 0) {
      const pages = Math.ceil((offset + length) / PAGE_SIZE);
      const pfns = Array.from({ length: pages }, (_, k) => data / PAGE_SIZE + k);
      damage = int(10);
      if (damage === 0)
        pfns[int(pages)] = guest.memory.lowTop / PAGE_SIZE + int(1 << 20); // beyond RAM
      else if (damage === 1)
        pfns.pop(); // PFN count disagrees
      else if (damage === 2)
        v.setUint32(24, length + 1 + int(4096), true); // transfer beyond the list
      else validList = true;
      extra = pfns.length > 0 ? gpaDirectExtra([{ length, offset, pfns }]) : undefined;
    } else {
      validList = true;
    }
    // A few packets are mangled outright.
    const mangle = int(40);
    let payload = srb;
    if (mangle === 0) payload = srb.subarray(0, int(64));
    else if (mangle === 1) v.setUint32(0, int(16), true);
    else if (mangle === 2) srb[20] = int(256);
    else if (mangle === 3) srb[22] = int(256);
    const before = [raw, readOnly].map((d) => d.writes.length + d.trims.length);
    const answer = await send(payload, 100 + i, extra);
    if (damage === 1 && extra !== undefined) {
      // A PFN array that disagrees with its range is dropped by the VMBus layer: no completion, no I/O.
      assert.equal(answer, null);
      assert.deepEqual(
        [raw, readOnly].map((d, k) => d.writes.length + d.trims.length - before[k]!),
        [0, 0],
      );
      continue;
    }
    assert.ok(answer, `a completion for packet ${i}`);
    const reply = answer;
    const rv = new DataView(reply.buffer, reply.byteOffset, reply.length);
    assert.equal(reply.length, 80);
    assert.equal(rv.getUint16(0, true), P.PacketType.Completion);
    assert.equal(rv.getUint32(8, true), 100 + i);
    assert.equal(rv.getUint32(16, true), Operation.CompleteIo);
    const status = rv.getUint32(16 + 8, true);
    const srbStatus = reply[16 + 14]!;
    const isSrb = payload.length >= 12 && v.getUint32(0, true) === Operation.ExecuteSrb;
    // (Other operations' replies carry their own fields, e.g. QUERY_PROPERTIES's max_transfer_bytes, here.)
    const moved = isSrb ? rv.getUint32(16 + 24, true) : 0;
    if (isSrb) {
      assert.ok(SRB_STATUSES.has(srbStatus), `SRB status ${srbStatus}`);
      assert.ok(moved <= length, "transfer within the buffer");
    }
    hash.update(`${status}:${srbStatus}:${reply[16 + 15]}:${moved};`);
    const changed = [raw, readOnly].map((d, k) => d.writes.length + d.trims.length - before[k]!);
    const ok = srbStatus === 0x01 && status === 0;
    if (!ok) assert.deepEqual(changed, [0, 0], `a failed packet ${i} wrote`);
    if (changed[0]! > 0) {
      assert.ok(WRITE_OPCODES.has(cmd.cdb[0]!) && validList && mangle >= 4, `packet ${i} wrote`);
      srbsWritten++;
    }
    // A mangled operation may have restarted the handshake (as a guest may): finish it again.
    if (mangle === 1 && (vsp.inspect() as { phase: string }).phase !== "ready") await initialize();
    if (
      ok &&
      mangle >= 4 &&
      isSrb &&
      cmd.address.lun === 0 &&
      cmd.address.path === 0 &&
      cmd.address.target === 0
    ) {
      applyToShadow(shadow, cmd.cdb, guest.memory.bytes.subarray(data + offset, data + offset + length));
    }
  }
  assert.equal(controller.counters.internalErrors, 0, controller.lastInternalError ?? "");
  assert.equal((vsp.inspect() as { phase: string }).phase, "ready", "the channel stayed up");
  assert.equal(server.inspect().channels[0]!.lastFault, null);
  const image = async (d: SpyDisk, n: number): Promise<Uint8Array> => {
    const b = new Uint8Array(n);
    await d.inner.read(0, b);
    return b;
  };
  assert.ok(Buffer.from(await image(raw, RAW_BYTES)).equals(Buffer.from(shadow)), "raw image = shadow");
  const ro = new Uint8Array(64 * 1024);
  fill(ro);
  assert.deepEqual(await image(readOnly, ro.length), ro);
  const isoNow = new Uint8Array(isoBytes.length);
  await iso.read(0, isoNow);
  assert.deepEqual(isoNow, isoBytes);
  const rest = guest.memory.bytes.subarray(guard, guest.memory.lowTop);
  assert.ok(
    rest.every((b) => b === 0),
    "guest RAM beyond the data pages is untouched",
  );
  assert.deepEqual(raw.outOfBounds, []);
  const refused = (vsp.inspect().counters as { refused: Record<string, number> }).refused;
  console.log(
    `storvsp fuzz seed ${seed}: ${PACKETS} packets, ${srbsWritten} wrote the disk, ` +
      `${controller.counters.commands} reached the target, refused: ${JSON.stringify(refused)}`,
  );
  hash.update(shadow);
  return hash.digest("hex");
}

test("hostile storvsc packets through the partition: one well-formed completion each, RAM and images safe", async () => {
  const first = await fuzz(0x570f);
  const second = await fuzz(0x570f);
  assert.equal(first, second, "the same seed ends in the same state");
});

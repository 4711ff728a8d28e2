import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory, PAGE_READ, PAGE_SIZE, RAM_WINDOW_SIZE } from "./guest-memory.js";
import { GuestPageList, pagesSpanned } from "./page-list.js";

// 8 MiB of RAM: 4 MiB below a hole at 4 MiB, 4 MiB above 4 GiB.
const memory = (): GuestMemory => new GuestMemory(8 << 20, 4 << 20);
const HIGH_PFN = 0x100000;

test("pagesSpanned counts the pages an offset and length cover", () => {
  assert.equal(pagesSpanned(0, 1), 1);
  assert.equal(pagesSpanned(0, PAGE_SIZE), 1);
  assert.equal(pagesSpanned(1, PAGE_SIZE), 2);
  assert.equal(pagesSpanned(4095, 2), 2);
  assert.equal(pagesSpanned(100, 9000), 3);
});

test("refusals: empty, offset, count, not-ram (beyond RAM, MMIO hole, 2^53, negative), too-long", () => {
  const m = memory();
  assert.equal(GuestPageList.build(m, []), "empty");
  assert.equal(GuestPageList.build(m, [{ pfns: [1], offset: 0, length: 0 }]), "empty");
  assert.equal(GuestPageList.build(m, [{ pfns: [1], offset: PAGE_SIZE, length: 1 }]), "offset");
  assert.equal(GuestPageList.build(m, [{ pfns: [1], offset: 1, length: PAGE_SIZE }]), "count");
  assert.equal(GuestPageList.build(m, [{ pfns: [1, 2, 3], offset: 0, length: 10 }]), "count");
  for (const pfn of [0x400, 0xfee00, HIGH_PFN + 0x400, 2 ** 41, 2 ** 52, -1, 1.5]) {
    assert.equal(
      GuestPageList.build(m, [{ pfns: [2, pfn], offset: 0, length: 2 * PAGE_SIZE }]),
      "not-ram",
      `${pfn}`,
    );
  }
  assert.equal(GuestPageList.build(m, [{ pfns: [1, 2], offset: 0, length: 8000 }], 7999), "too-long");
});

test("reads and writes cross pages, ranges and the hole; nothing outside the list is touched", () => {
  const m = memory();
  const list = GuestPageList.build(m, [
    { pfns: [0x3ff, HIGH_PFN], offset: 4000, length: 200 },
    { pfns: [7], offset: 10, length: 20 },
  ]);
  assert.ok(typeof list !== "string");
  assert.equal(list.length, 220);
  const src = Uint8Array.from({ length: 220 }, (_, i) => i + 1);
  assert.ok(list.write(0, src));
  assert.equal(m.bytes[0x3ff * PAGE_SIZE + 3999], 0);
  assert.equal(m.bytes[0x3ff * PAGE_SIZE + 4000], 1);
  assert.equal(
    m.bytes[m.offsetOf(HIGH_PFN * PAGE_SIZE)],
    97,
    "byte 96 of the list is the first of the high page",
  );
  assert.equal(m.bytes[m.offsetOf(HIGH_PFN * PAGE_SIZE) + 104], 0);
  assert.equal(m.bytes[7 * PAGE_SIZE + 10], 201);
  assert.equal(m.bytes[7 * PAGE_SIZE + 30], 0);
  const back = new Uint8Array(220);
  assert.ok(list.read(0, back));
  assert.deepEqual(back, src);
  const mid = new Uint8Array(30);
  assert.ok(list.read(90, mid));
  assert.deepEqual(mid, src.subarray(90, 120));
  assert.equal(list.read(200, new Uint8Array(21)), false);
  assert.equal(list.write(-1, new Uint8Array(1)), false);
  assert.equal(list.read(0.5, new Uint8Array(1)), false);
  assert.ok(list.zero(95, 3));
  assert.equal(m.bytes[m.offsetOf(HIGH_PFN * PAGE_SIZE)], 0);
  assert.equal(list.pageCount(), 3);
});

test("contiguous pages merge; u32 helpers straddle page boundaries; detach makes every access fail", () => {
  const m = memory();
  const list = GuestPageList.build(m, [{ pfns: [10, 11, 12], offset: 0, length: 3 * PAGE_SIZE }]);
  assert.ok(typeof list !== "string");
  assert.equal(list.pageCount(), 3);
  assert.ok(list.writeU32(PAGE_SIZE - 2, 0xa1b2c3d4));
  assert.equal(list.readU32(PAGE_SIZE - 2), 0xa1b2c3d4);
  assert.equal(list.readU32(3 * PAGE_SIZE - 3), -1);
  list.detach();
  assert.equal(list.length, 0);
  assert.equal(list.read(0, new Uint8Array(1)), false);
  assert.equal(list.readU32(0), -1);
});

test("writes keep instruction caches coherent", () => {
  const m = memory();
  const dropped: number[] = [];
  m.onCodeWrite = (p) => dropped.push(p);
  m.codePages[5] = 1;
  const list = GuestPageList.build(m, [{ pfns: [5], offset: 0, length: 16 }]);
  assert.ok(typeof list !== "string");
  list.write(0, new Uint8Array(4));
  assert.deepEqual(dropped, [5]);
});

test("page rights: an unreadable page refuses the list, a read-only page makes it read-only", () => {
  const m = memory();
  m.rights[20] = 0;
  m.rights[21] = PAGE_READ;
  assert.equal(GuestPageList.build(m, [{ pfns: [19, 20], offset: 0, length: 2 * PAGE_SIZE }]), "protected");
  const ro = GuestPageList.build(m, [{ pfns: [19, 21], offset: 0, length: 2 * PAGE_SIZE }]);
  assert.ok(typeof ro !== "string");
  assert.equal(ro.writable, false);
  assert.ok(ro.read(0, new Uint8Array(10)));
  assert.equal(ro.write(0, new Uint8Array(1)), false, "not even the writable first page");
  assert.equal(ro.zero(0, 1), false);
  assert.equal(m.bytes[21 * PAGE_SIZE], 0);
});

test("a list that crosses a 1 GiB RAM window boundary copies through both windows", () => {
  // Address space only: the host commits the pages touched.
  const m = new GuestMemory(RAM_WINDOW_SIZE + 2 * PAGE_SIZE, RAM_WINDOW_SIZE + 2 * PAGE_SIZE);
  const last = RAM_WINDOW_SIZE / PAGE_SIZE - 1;
  const list = GuestPageList.build(m, [{ pfns: [last, last + 1], offset: 4000, length: 200 }]);
  assert.ok(typeof list !== "string");
  assert.equal(list.pageCount(), 2);
  const src = Uint8Array.from({ length: 200 }, (_, i) => i + 1);
  assert.ok(list.write(0, src));
  assert.equal(m.view.getUint8(RAM_WINDOW_SIZE - 96), 1);
  assert.equal(m.view.getUint8(RAM_WINDOW_SIZE), 97);
  const back = new Uint8Array(200);
  assert.ok(list.read(0, back));
  assert.deepEqual(back, src);
  assert.ok(list.writeU32(94, 0xdeadbeef));
  assert.equal(list.readU32(94), 0xdeadbeef);
});

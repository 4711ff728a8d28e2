// Integration: the real emulated processor takes PC interrupts from the chipset through the 8259 master's
// INTR/INTA interface (no local APIC). A real-mode guest programs the PIC and the PIT, reads the RTC, and
// counts timer interrupts while a run loop drives deterministic time from the chipset's deadlines.
// Spec: Intel SDM Vol. 3A 6.9 and 20.1.4 (maskable interrupts through the real-mode IVT), 8259A and 8254
// datasheets (see src/chipset).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import type { InterruptSource } from "../../src/contracts/platform.js";
import { Chipset } from "../../src/chipset/pc-chipset.js";
import { ManualClock } from "../../src/chipset/clock.js";

const SEGMENT = 0x1000;
const DONE_PORT = 0xf4;

const GUEST = `
bits 16
org 0
    cli
    xor ax, ax
    mov ds, ax
    mov word [0x500], 0                ; tick counter
    mov word [0x20*4], isr_timer       ; IVT vector 0x20 -> isr_timer
    mov word [0x20*4+2], ${SEGMENT}
    mov word [0x27*4], isr_spurious
    mov word [0x27*4+2], ${SEGMENT}
    mov al, 0x11                       ; ICW1: edge, cascade, ICW4
    out 0x20, al
    mov al, 0x20                       ; ICW2: vectors 0x20-0x27
    out 0x21, al
    mov al, 0x04                       ; ICW3: slave on IR2
    out 0x21, al
    mov al, 0x01                       ; ICW4: 8086 mode
    out 0x21, al
    mov al, 0xfe                       ; only IRQ0
    out 0x21, al
    mov al, 0x34                       ; PIT counter 0, lo/hi, mode 2
    out 0x43, al
    mov al, 0xa9                       ; 1193 = 1 kHz
    out 0x40, al
    mov al, 0x04
    out 0x40, al
    mov al, 0x00                       ; CMOS seconds register
    out 0x70, al
    in al, 0x71
    mov [0x502], al
    sti
idle:
    hlt
    cmp word [0x500], 250
    jb idle
    cli
    mov al, 0x00
    out 0x70, al
    in al, 0x71
    mov ah, [0x502]
    mov [0x504], ax                    ; AH = seconds at start, AL = seconds now
    mov ax, [0x500]
    out ${DONE_PORT}, ax
    hlt
isr_timer:
    inc word [0x500]
    push ax
    mov al, 0x20                       ; non-specific EOI
    out 0x20, al
    pop ax
    iret
isr_spurious:
    iret
`;

function assemble(src: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "viridian-chipset-"));
  try {
    writeFileSync(join(dir, "g.asm"), src);
    execFileSync("nasm", ["-f", "bin", "-o", join(dir, "g.bin"), join(dir, "g.asm")], { stdio: "pipe" });
    return new Uint8Array(readFileSync(join(dir, "g.bin")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a real-mode guest counts 250 PIT interrupts taken through the 8259 in 250 ms of virtual time", () => {
  const mem = new GuestMemory(2 * 1024 * 1024);
  mem.write(SEGMENT * 16, assemble(GUEST));
  const cpu = new Cpu(mem, { deterministic: true });
  cpu.setSegment(1, { selector: SEGMENT, base: SEGMENT * 16, limit: 0xffff, access: 0x9b });
  for (const s of [0, 2, 3, 4, 5] as const)
    cpu.setSegment(s, { selector: 0, base: 0, limit: 0xffff, access: 0x93 });
  cpu.setRip(0, 0);
  cpu.setReg(4, 0x7000, 0);

  const clock = new ManualClock(0);
  const cs = new Chipset({
    clock,
    hostSeconds: () => Date.UTC(2026, 0, 1, 12, 0, 30) / 1000,
    com1: () => undefined,
    onPowerOff: () => assert.fail("unexpected power-off"),
    onReset: () => assert.fail("unexpected reset"),
  });
  // The 8259 master is the x86 tier's interrupt source, structurally.
  const source: InterruptSource = cs.interruptSource;
  cpu.interrupts = source;
  cpu.controls.ioBitmap.fill(0xff);
  cpu.controls.hltExiting = true;
  let done = -1;
  cpu.ports = {
    read: (port, size) => cs.ports.read(port, size),
    write: (port, size, value) => {
      if (port === DONE_PORT) done = value & 0xffff;
      else cs.ports.write(port, size, value);
    },
  };

  let exits = 0;
  while (done < 0 && exits++ < 1_000_000) {
    const before = cpu.retired;
    const r = cpu.run(10_000);
    if (r === ExitReason.Hlt) {
      // Idle: jump virtual time to the next device deadline.
      const d = cs.nextDeadlineNs();
      assert.ok(Number.isFinite(d), "the guest halted with no timer armed");
      clock.set(d);
      cs.tick(d);
    } else if (r === ExitReason.BudgetExhausted) {
      clock.advance(cpu.retired - before); // 1 ns per instruction while running
      cs.tick(clock.nowNs());
    } else {
      assert.fail(`unexpected exit ${r}`);
    }
  }
  assert.equal(done, 250);
  const ms = clock.nowNs() / 1e6;
  assert.ok(ms > 249 && ms < 251, `virtual time ${ms} ms`);
  const secs = new Uint8Array(mem.buffer, 0x504, 2);
  assert.deepEqual([secs[1], secs[0]], [0x30, 0x30], "BCD seconds: 250 ms did not cross a second boundary");
  assert.match(cs.inspect(), /master PIC: base=0x20 irr=00 isr=00 imr=fe/);
});

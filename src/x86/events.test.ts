// Tests that a pending event is taken at the first instruction boundary where it becomes deliverable, even
// in the middle of a run batch and inside translated code: an NMI raised while NMIs are blocked, right after
// the IRET that unblocks them; an interrupt held back by CR8, right after MOV CR8 lowers the priority; an
// interrupt a device raises while it answers an IN (an intercept), right after the IN.
// Spec: Intel SDM Vol. 3A 6.7.1 (NMI blocking until the next IRET), 6.8.3 (interrupt shadows), 6.9 (events
// are recognized at instruction boundaries), 11.8.3.1 / 11.8.6 (TPR, CR8 and interrupt acceptance).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest-memory.js";
import { Cpu } from "./cpu.js";
import { assemble, IDT64, reg64, setupMode } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

/** Loop iterations after the event: far more than one batch step, so a late delivery shows in r8. */
const SPIN = 100_000;

/**
 * IDT64 plus: GATE points an IDT entry at a handler; LOGGED records, per event taken (r9 counts them),
 * the spin counter r8 and the interrupted RIP at 0x30000 + 16 * r9; NOTE_AFTER stores the address of the
 * body's label `after` (the instruction following the one that makes the event deliverable) at 0x2fff0.
 */
const PRELUDE = `
%macro GATE 2
  lea rax, [rel %2]
  lea rdi, [rel idt + %1 * 16]
  mov [rdi], ax
  shr rax, 16
  mov [rdi + 6], ax
  shr rax, 16
  mov [rdi + 8], eax
%endmacro
%macro LOGGED 0
  push rax
  push rbx
  inc r9
  mov rax, r9
  shl rax, 4
  mov [0x30000 + rax], r8
  mov rbx, [rsp + 16]
  mov [0x30008 + rax], rbx
  pop rbx
  pop rax
%endmacro
%macro NOTE_AFTER 0
  lea rax, [rel after]
  mov [0x2fff0], rax
%endmacro
${IDT64}
`;

const SPIN_LOOP = `
spin:
  inc r8
  cmp r8, ${SPIN}
  jne spin
done:
  hlt
  jmp done
`;

interface Logged {
  counter: bigint;
  rip: bigint;
}

function logged(mem: GuestMemory, n: number): Logged {
  const v = new DataView(mem.buffer);
  return {
    counter: v.getBigUint64(0x30000 + 16 * n, true),
    rip: v.getBigUint64(0x30008 + 16 * n, true),
  };
}

/** Interpreter only, translation on first execution, and the default threshold. */
const THRESHOLDS = [-1, 0, 16];

/** Builds a long-mode processor running `body` after PRELUDE, then the spin loop. */
function build(body: string, jitThreshold: number): { cpu: Cpu; mem: GuestMemory } {
  const code = assemble(PRELUDE + body + SPIN_LOOP, 64);
  const mem = new GuestMemory(8 * 1024 * 1024);
  const cpu = new Cpu(mem, { deterministic: true, jitThreshold });
  setupMode(cpu, mem, "long64", code);
  // HLT idles (as on the PC machine): an event still pending at the end is taken there, and shows late.
  cpu.controls.hltExiting = false;
  return { cpu, mem };
}

/** The address the guest noted with NOTE_AFTER. */
function after(mem: GuestMemory): bigint {
  return new DataView(mem.buffer).getBigUint64(0x2fff0, true);
}

/**
 * Runs to HLT with every port intercepted; `onPort` sees each access (writes and reads alike) while the
 * instruction executes, as a device would, and returns the value of a read.
 */
function drive(cpu: Cpu, onPort: (port: number, isWrite: boolean) => number | void): void {
  cpu.controls.ioBitmap.fill(0xff);
  cpu.ports = {
    read: (port) => onPort(port, false) ?? 0xff,
    write: (port) => void onPort(port, true),
  };
  for (let guard = 0; guard < 100; guard++) {
    const r = cpu.run(1_000_000);
    if (r === ExitReason.Hlt) return;
    assert.equal(r, ExitReason.BudgetExhausted, `unexpected exit ${r}`);
  }
  assert.fail("the guest never reached HLT");
}

test("an NMI raised while NMIs are blocked is taken right after the IRET that unblocks them", () => {
  for (const t of THRESHOLDS) {
    const { cpu, mem } = build(
      `
  GATE 2, nmi
  NOTE_AFTER
  cli                 ; the interrupted code runs with IF = 0, so the IRET does not change IF
  xor r8, r8
  xor r9, r9
  out 0x80, al        ; the test raises the first NMI here
after:
  jmp spin
nmi:
  LOGGED
  cmp r9, 1
  jne .out
  out 0x81, al        ; the test raises a second NMI while this one is handled (blocked until IRET)
.out:
  iretq
`,
      t,
    );
    drive(cpu, (port) => {
      assert.ok(port === 0x80 || port === 0x81);
      cpu.raiseNmi();
    });
    assert.equal(reg64(cpu, 9), 2n, `threshold ${t}: both NMIs taken`);
    const first = logged(mem, 1);
    const second = logged(mem, 2);
    assert.equal(first.rip, after(mem), `threshold ${t}: the first NMI comes right after the OUT`);
    assert.equal(
      second.counter,
      0n,
      `threshold ${t}: the second NMI comes right after the IRET, not ${second.counter} iterations later`,
    );
    assert.equal(
      second.rip,
      first.rip,
      `threshold ${t}: and interrupts the instruction the IRET returned to`,
    );
    assert.equal(reg64(cpu, 8), BigInt(SPIN));
  }
});

test("an interrupt held back by CR8 is taken right after MOV CR8 lowers the priority", () => {
  for (const t of THRESHOLDS) {
    const { cpu, mem } = build(
      `
  GATE 32, isr
  NOTE_AFTER
  mov eax, 15
  mov cr8, rax
  xor r8, r8
  xor r9, r9
  sti
  out 0x80, al        ; the test makes vector 32 (priority class 2) pending; CR8 = 15 holds it back
  mov r10, 1
  xor eax, eax
  mov cr8, rax        ; CR8 = 0: deliverable at the next boundary
after:
  jmp spin
isr:
  LOGGED
  iretq
`,
      t,
    );
    let pending = false;
    cpu.interrupts = {
      // An interrupt controller whose priority threshold is CR8 (SDM 11.8.6): class 2 needs CR8 < 2.
      hasInterrupt: () => pending && cpu.getControl("cr8").lo < 2,
      acknowledge: () => {
        pending = false;
        return 32;
      },
    };
    drive(cpu, () => {
      pending = true;
    });
    assert.equal(reg64(cpu, 9), 1n, `threshold ${t}: the interrupt was taken`);
    const taken = logged(mem, 1);
    assert.equal(
      taken.counter,
      0n,
      `threshold ${t}: taken right after MOV CR8, not ${taken.counter} iterations later`,
    );
    assert.equal(taken.rip, after(mem), `threshold ${t}: it interrupts the instruction after MOV CR8`);
  }
});

test("an interrupt a device raises while it answers an IN is taken right after the IN", () => {
  for (const t of THRESHOLDS) {
    const { cpu, mem } = build(
      `
  GATE 32, isr
  NOTE_AFTER
  xor r8, r8
  xor r9, r9
  sti
  nop
  in al, 0x60         ; the intercept makes vector 32 pending while it answers the read
after:
  jmp spin
isr:
  LOGGED
  iretq
`,
      t,
    );
    let pending = false;
    cpu.interrupts = {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 32;
      },
    };
    drive(cpu, (port, isWrite) => {
      assert.equal(port, 0x60);
      assert.equal(isWrite, false);
      pending = true;
      return 0x5a;
    });
    assert.equal(reg64(cpu, 0) & 0xffn, 0x5an, `threshold ${t}: the IN completed with the device's value`);
    assert.equal(reg64(cpu, 9), 1n, `threshold ${t}: the interrupt was taken`);
    const taken = logged(mem, 1);
    assert.equal(
      taken.counter,
      0n,
      `threshold ${t}: taken right after the IN, not ${taken.counter} iterations later`,
    );
    assert.equal(taken.rip, after(mem), `threshold ${t}: it interrupts the instruction after the IN`);
  }
});

test("an interrupt a device raises while it answers an MMIO read is taken right after the read", () => {
  // At threshold 0 the read runs inside a translation unit (an inline load whose TLB probe misses: the
  // slow path reaches the intercept); the unit must stop after it as the interpreter does (decision 0004).
  for (const t of THRESHOLDS) {
    const { cpu, mem } = build(
      `
  GATE 32, isr
  NOTE_AFTER
  xor r8, r8
  xor r9, r9
  mov rbx, 0x1000000  ; beyond RAM, inside the identity map: MMIO
  mov ecx, 4
  sti
  nop
again:
  mov eax, [rbx]      ; the intercept makes vector 32 pending while it answers the 4th read
after:
  dec ecx
  jnz again           ; (a loop, so that later reads run inside the unit compiled at the first)
  jmp spin
isr:
  LOGGED
  iretq
`,
      t,
    );
    let pending = false;
    cpu.interrupts = {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 32;
      },
    };
    let reads = 0;
    cpu.mmio = {
      hi: 0,
      read: (gpa) => {
        assert.equal(gpa, 0x1000000);
        if (++reads === 4) pending = true;
        return 0x5a;
      },
      write: () => assert.fail("no MMIO write expected"),
    };
    drive(cpu, () => assert.fail("no port access expected"));
    assert.equal(reads, 4, `threshold ${t}: four reads`);
    if (t === 0) assert.ok(cpu.translatedBlocks > 0, "threshold 0: the loop ran translated");
    assert.equal(reg64(cpu, 9), 1n, `threshold ${t}: the interrupt was taken`);
    const taken = logged(mem, 1);
    assert.equal(
      taken.counter,
      0n,
      `threshold ${t}: taken right after the read, not ${taken.counter} iterations later`,
    );
    assert.equal(taken.rip, after(mem), `threshold ${t}: it interrupts the instruction after the read`);
  }
});

test("an interrupt raised while CLI masks it is taken right after the POPF that unmasks it, CLI and STI inside a hot loop", () => {
  // CLI does not end a run batch or a translation unit (no event becomes deliverable by it); a later
  // POPF that sets IF again (no shadow, no device access) must still make the run loop look.
  for (const t of THRESHOLDS) {
    const { cpu, mem } = build(
      `
  GATE 32, isr
  NOTE_AFTER
  xor r8, r8
  xor r9, r9
  xor r10, r10
  mov ecx, 200
loop:
  cli
  add r10, rcx
  sti
  dec ecx
  jnz loop
  pushfq
  cli
  in al, 0x60         ; the intercept makes vector 32 pending while interrupts are masked
  add r10, 1
  add r10, 2
  popfq               ; IF set again, without a shadow
after:
  jmp spin
isr:
  LOGGED
  iretq
`,
      t,
    );
    let pending = false;
    cpu.interrupts = {
      hasInterrupt: () => pending,
      acknowledge: () => {
        pending = false;
        return 32;
      },
    };
    drive(cpu, () => {
      pending = true;
      return 0x5a;
    });
    assert.equal(reg64(cpu, 10), 20100n + 3n, `threshold ${t}: the masked code ran`);
    assert.equal(reg64(cpu, 9), 1n, `threshold ${t}: the interrupt was taken`);
    const taken = logged(mem, 1);
    assert.equal(
      taken.counter,
      0n,
      `threshold ${t}: taken before the spin loop, not ${taken.counter} iterations in`,
    );
    assert.equal(taken.rip, after(mem), `threshold ${t}: it interrupts the instruction after the POPF`);
  }
});

// Chipset device-path throughput: how fast the board answers the port traffic a booting Linux generates
// most: the polled console (LSR read + THR write per byte, Linux's serial8250_console_write), timer
// interrupts (PIT deadline -> tick -> INTA -> EOI through the 8259), and RTC reads (index + data).
// Numbers are host operations per second of the device layer alone, without the processor.
import { performance } from "node:perf_hooks";
import { Chipset } from "../src/chipset/pc-chipset.js";
import { ManualClock } from "../src/chipset/clock.js";

export interface ChipsetBenchResult {
  name: string;
  perSecond: number;
}

function board(): { cs: Chipset; clock: ManualClock; sent: () => number } {
  const clock = new ManualClock(0);
  let sent = 0;
  const cs = new Chipset({
    clock,
    hostSeconds: () => 0,
    com1: () => sent++,
    onPowerOff: () => undefined,
    onReset: () => undefined,
  });
  return { cs, clock, sent: () => sent };
}

function measure(name: string, count: number, body: () => void): ChipsetBenchResult {
  const start = performance.now();
  body();
  const s = (performance.now() - start) / 1000;
  return { name, perSecond: count / s };
}

export function benchChipset(): ChipsetBenchResult[] {
  const results: ChipsetBenchResult[] = [];
  {
    const { cs, sent } = board();
    const n = 2_000_000;
    results.push(
      measure("console byte (LSR poll + THR write)", n, () => {
        for (let i = 0; i < n; i++) {
          while (!(cs.ports.read(0x3fd, 1) & 0x20));
          cs.ports.write(0x3f8, 1, 0x41);
        }
      }),
    );
    if (sent() !== n) throw new Error("console bench lost bytes");
  }
  {
    const { cs, clock } = board();
    const p = cs.ports;
    for (const [port, v] of [
      [0x20, 0x11],
      [0x21, 0x30],
      [0x21, 0x04],
      [0x21, 0x01],
      [0x21, 0x00],
      [0x43, 0x34],
      [0x40, 0xa9],
      [0x40, 0x04],
    ] as const)
      p.write(port, 1, v);
    const n = 500_000;
    let taken = 0;
    results.push(
      measure("timer interrupt (deadline, tick, INTA, EOI)", n, () => {
        for (let i = 0; i < n; i++) {
          const d = cs.nextDeadlineNs();
          clock.set(d);
          cs.tick(d);
          if (cs.interruptSource.hasInterrupt()) {
            cs.interruptSource.acknowledge();
            p.write(0x20, 1, 0x20);
            taken++;
          }
        }
      }),
    );
    if (taken < n / 2) throw new Error(`timer bench took only ${taken} interrupts`);
  }
  {
    const { cs } = board();
    const n = 1_000_000;
    results.push(
      measure("RTC register read (index + data)", n, () => {
        for (let i = 0; i < n; i++) {
          cs.ports.write(0x70, 1, i & 1 ? 0x00 : 0x0a);
          cs.ports.read(0x71, 1);
        }
      }),
    );
  }
  return results;
}

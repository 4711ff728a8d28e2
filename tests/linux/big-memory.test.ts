// Owns: issue 9 item 10's acceptance test of guests with more than 2 GiB: the bundled guest boots under
// `viridian run --memory 3G` (RAM offsets past 2^31, below the PCI hole) and `--memory 16G` (13 GiB above
// 4 GiB, RAM offsets past 2^32), `free -m` in the guest shows the size, and the
// emulator's resident memory at the prompt stays far below the guest's size (RAM is committed by the
// host only where the guest wrote).
// Must not: assert timings, or fail on a host that cannot reserve the address space (it skips, saying so).
// Spec: issue 9 item 10; Linux /proc/meminfo MemTotal as `free -m` prints it (RAM less what the kernel
// reserves: its image and the page array, 64 bytes per 4 KiB page); proc(5) VmHWM (peak resident set).

import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { limits, skipReason, startGuest } from "./guest-console.js";

/** Peak and current resident set of a process in MiB, from /proc (null where there is none). */
function resident(pid: number | undefined): { hwm: number; rss: number } | null {
  const path = `/proc/${pid}/status`;
  if (pid === undefined || !existsSync(path)) return null;
  const status = readFileSync(path, "utf8");
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { hwm: kib("VmHWM") / 1024, rss: kib("VmRSS") / 1024 };
}

const lim = limits("viridian");
const skip = skipReason("viridian");

describe("guests with more than 2 GiB of RAM on viridian", { skip }, () => {
  // One at a time: each is a whole boot, and two large reservations at once are not needed.
  for (const sizeMiB of [3 * 1024, 16 * 1024]) {
    it(
      `--memory ${sizeMiB / 1024}G: boots, free -m shows the size, the host commits far less`,
      {
        timeout: 2 * lim.bootMs + lim.commandMs + lim.stopMs,
      },
      async (t) => {
        const guest = await startGuest({ emulator: "viridian", memoryMiB: sizeMiB }, lim);
        t.after(() => guest.close());
        await guest.step(async () => {
          try {
            await guest.waitForPrompt(lim.bootMs);
          } catch (e) {
            if (/host refused to reserve/.test(guest.stderr)) {
              t.skip(`this host cannot reserve ${sizeMiB} MiB: ${guest.stderr.trim()}`);
              return;
            }
            throw e;
          }
          const atPrompt = resident(guest.pid);
          const free = await guest.run("free -m");
          const total = Number(/^Mem:\s+(\d+)\s/m.exec(free)?.[1]);
          assert.ok(Number.isFinite(total), `no Mem: line in ${JSON.stringify(free)}`);
          t.diagnostic(`free -m: total ${total} MiB`);
          // The kernel keeps its image and the page array (1.6 % of RAM) out of MemTotal; nothing else.
          assert.ok(
            total <= sizeMiB && total >= sizeMiB * 0.95,
            `free -m total ${total} MiB for ${sizeMiB} MiB`,
          );
          if (atPrompt !== null) {
            t.diagnostic(
              `resident at the prompt: VmHWM ${atPrompt.hwm.toFixed(0)} MiB, VmRSS ${atPrompt.rss.toFixed(0)} MiB`,
            );
            // Zero-filling or walking all of RAM would commit all of it; the guest itself touches a few
            // hundred MiB (its page array, the unpacked initramfs).
            assert.ok(
              atPrompt.hwm < sizeMiB / 4 + 512,
              `VmHWM ${atPrompt.hwm.toFixed(0)} MiB at the prompt for a ${sizeMiB} MiB guest`,
            );
          }
          guest.type("poweroff");
          assert.equal(
            await guest.waitExit(lim.bootMs),
            0,
            `exit status after poweroff (${guest.exitText()})`,
          );
        });
      },
    );
  }
});

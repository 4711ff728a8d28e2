// Issue 10's VMBus acceptance on the bundled Linux guest through `viridian run`, as a user runs it: hv_vmbus
// connects (`Vmbus version:`), hv_utils binds every offered integration service (its `IC version` lines),
// /sys/bus/vmbus/devices lists them, the boot log is clean, a clock set wrong with `date -s` is corrected by
// the time-sync service (the guest re-probes it: unbind + bind, which opens the channel again and gets a
// SYNC), and SIGTERM shuts the guest down through the shutdown service with exit status 0.
// Must not: assert timings; QEMU has no VMBus, so there is no reference variant.
// Spec: issue 10 acceptance 1 (VMBus/hv_utils part) and 6; checklist 9.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import {
  forbiddenLines,
  limits,
  skipReason,
  startGuest,
  type GuestConsole,
  withoutControlSequences,
} from "../linux/guest-console.js";
import { formatGuid } from "../../src/support/ms-guid.js";
import { SHUTDOWN_CLASS, SHUTDOWN_INSTANCE } from "../../src/vsp/ic/shutdown.js";
import { HEARTBEAT_CLASS, HEARTBEAT_INSTANCE } from "../../src/vsp/ic/heartbeat.js";
import { TIMESYNC_CLASS, TIMESYNC_INSTANCE } from "../../src/vsp/ic/timesync.js";
import { KVP_CLASS, KVP_INSTANCE } from "../../src/vsp/ic/kvp.js";

const lim = limits("viridian");
const skip = skipReason("viridian");
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;

describe("VMBus and the integration services on the bundled guest (viridian run)", { skip }, () => {
  const holder: { g?: GuestConsole } = {};
  before(async () => {
    holder.g = await startGuest({ emulator: "viridian" }, lim);
  });
  after(async () => holder.g?.close());
  const step = (name: string, body: (g: GuestConsole) => Promise<void>, afterFailureToo = false) =>
    it(name, { timeout: STEP_MS }, async () => {
      const g = holder.g;
      assert.ok(g, "the guest was not started");
      await g.step(() => body(g), afterFailureToo);
    });

  step(
    "hv_vmbus connects with version 5.3 and hv_utils negotiates shutdown 3.2, heartbeat 3.0, timesync 4.0",
    async (g) => {
      await g.waitForPrompt();
      const log = g.consoleLog().join("\n");
      assert.match(log, /hv_vmbus: Vmbus version:5\.3/);
      assert.match(log, /hv_utils: Shutdown IC version 3\.2/);
      assert.match(log, /hv_utils: Heartbeat IC version 3\.0/);
      assert.match(log, /hv_utils: TimeSync IC version 4\.0/);
    },
  );

  step("/sys/bus/vmbus/devices lists every offered integration service", async (g) => {
    const ids = withoutControlSequences(await g.run("cat /sys/bus/vmbus/devices/*/class_id"))
      .trim()
      .split("\n");
    const want = [SHUTDOWN_CLASS, HEARTBEAT_CLASS, TIMESYNC_CLASS, KVP_CLASS].map(
      (c) => `{${formatGuid(c)}}`,
    );
    assert.deepEqual([...ids].sort(), [...want].sort());
    const names = withoutControlSequences(await g.run("ls /sys/bus/vmbus/drivers/hv_utils")).split(/\s+/);
    for (const instance of [SHUTDOWN_INSTANCE, HEARTBEAT_INSTANCE, TIMESYNC_INSTANCE, KVP_INSTANCE]) {
      assert.ok(
        names.includes(formatGuid(instance)),
        `hv_utils bound ${formatGuid(instance)}: ${names.join(" ")}`,
      );
    }
  });

  step(
    "time sync corrects a clock set wrong with date -s (a SYNC when the channel opens again)",
    async (g) => {
      const wrong = withoutControlSequences(await g.run('date -u -s "2001-02-03 04:05:06" +%Y'));
      assert.equal(wrong.trim(), "2001");
      const dev = formatGuid(TIMESYNC_INSTANCE);
      await g.run(`echo ${dev} > /sys/bus/vmbus/drivers/hv_utils/unbind`);
      await g.run(`echo ${dev} > /sys/bus/vmbus/drivers/hv_utils/bind`);
      // The SYNC follows the negotiation after the open: give the guest a moment to apply it.
      await g.run("sleep 2");
      const before = Date.now() / 1000;
      const out = withoutControlSequences(await g.run("date -u +%s")).trim();
      const after = Date.now() / 1000;
      const guest = Number(out);
      assert.ok(
        guest + 1 > before - 5 && guest <= after + 5,
        `guest UTC ${out} vs host ${before.toFixed(0)}..${after.toFixed(0)}`,
      );
    },
  );

  step("SIGTERM shuts the guest down through hv_utils and viridian exits with status 0", async (g) => {
    const from = g.mark();
    g.signal("SIGTERM");
    const status = await g.waitExit(lim.bootMs);
    const text = g.text.slice(from);
    assert.match(text, /hv_utils: Shutdown request received - graceful shutdown initiated/);
    assert.match(text, /reboot: Power down/);
    assert.equal(status, 0, `exit status (${g.exitText()})\n${g.stderr}`);
    assert.match(g.stderr, /viridian: SIGTERM: asking the guest to shut down/);
    assert.match(g.stderr, /viridian: the guest shut down/);
  });

  step(
    "the boot log has no unchecked MSR access, WARNING, BUG, Call Trace, probe failed or timed out",
    async (g) => {
      const log = g.consoleLog();
      assert.deepEqual(forbiddenLines(log), []);
      assert.deepEqual(
        log.filter((l) => /probe failed|probe of .* failed/.test(l)),
        [],
      );
    },
    true,
  );
});

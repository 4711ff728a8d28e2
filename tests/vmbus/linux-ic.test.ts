// The integration services seen from the host while the bundled Linux guest runs in this process on the PC
// machine (as `viridian run` builds it): the heartbeat's sequence number in inspect() grows while the guest
// runs, a host-requested time sync corrects a clock the guest set wrong with `date -s`, KVP works both ways
// when the image has hv_kvp_daemon (and waits in negotiation when it has not), and the host's orderly
// shutdown request powers the guest off. The console is the machine's COM1, read and typed here.
// Must not: assert timings (the limits only keep a hang from hanging the suite).
// Spec: issue 10 acceptance 6; checklist 9.3-9.5.
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { PacedClock } from "../../src/worker/paced-clock.js";
import { PcMachine, type PcStop } from "../../src/worker/pc-machine.js";
import { BUNDLED_INITRD, BUNDLED_KERNEL, limits, skipReason } from "../linux/guest-console.js";

const PROMPT = /viridian-guest:[^\n]*? # /g;
const lim = limits("viridian");

/** COM1 of an in-process machine as a terminal: everything printed, typed lines, waits with a limit. */
class Console {
  text = "";
  constructor(private readonly machine: PcMachine) {}
  receive(byte: number): void {
    if (byte !== 0x0d) this.text += String.fromCharCode(byte);
  }
  async waitFor(pattern: RegExp, from: number, timeoutMs: number): Promise<number> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      pattern.lastIndex = 0;
      const m = new RegExp(pattern.source, "g");
      m.lastIndex = from;
      const hit = m.exec(this.text);
      if (hit) return hit.index + hit[0].length;
      if (performance.now() > until)
        throw new Error(`timed out waiting for ${pattern}; last output:\n${this.text.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** Types `command` and returns what it printed before the next prompt. */
  async run(command: string): Promise<string> {
    const from = this.text.length;
    this.machine.sendInput(new TextEncoder().encode(command + "\n"));
    const end = await this.waitFor(PROMPT, from, lim.commandMs);
    // eslint-disable-next-line no-control-regex -- the line editor's cursor queries
    const out = this.text.slice(from, end).replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "");
    const lines = out.split("\n");
    return lines.slice(1, -1).join("\n");
  }
}

test(
  "integration services with the bundled guest in process: heartbeat, host time sync, orderly shutdown",
  { skip: skipReason("viridian"), timeout: 3 * lim.bootMs },
  async () => {
    const machine = new PcMachine({
      memory: new GuestMemory(256 << 20),
      clock: new PacedClock(null),
      tscHz: 1_000_000_000,
      jitThreshold: -1,
      serial: (b) => con.receive(b),
    });
    const con = new Console(machine);
    machine.bootLinux({
      kernel: readFileSync(BUNDLED_KERNEL),
      initrd: readFileSync(BUNDLED_INITRD),
      cmdline: "console=ttyS0",
    });
    let stop: PcStop | null = null;
    const running = machine.run().then((s) => (stop = s));
    try {
      await con.waitFor(PROMPT, 0, lim.bootMs);
      await con.waitFor(/hv_utils: TimeSync IC version 4\.0/, 0, lim.commandMs);

      // Heartbeat: the sequence number the guest returns, visible in inspect(), grows while it runs.
      const first = machine.ics.inspect().heartbeat;
      await con.run("sleep 5");
      const second = machine.ics.inspect().heartbeat;
      assert.equal(second.state, "ready");
      assert.equal(second.health, "ok");
      assert.ok(
        second.sequence > first.sequence,
        `heartbeat sequence ${first.sequence} -> ${second.sequence}`,
      );
      assert.match(
        machine.inspect(),
        new RegExp(`heartbeat: ready \\(IC version 3\\.0\\), sequence \\d+, ok`),
      );

      // Time sync on host request corrects a clock set wrong in the guest.
      assert.equal((await con.run('date -u -s "2001-02-03 04:05:06" +%Y')).trim(), "2001");
      machine.ics.timesync.syncNow();
      await con.run("sleep 1");
      const before = Date.now() / 1000;
      const guest = Number((await con.run("date -u +%s")).trim());
      const after = Date.now() / 1000;
      assert.ok(
        guest + 1 > before - 5 && guest <= after + 5,
        `guest UTC ${guest}, host ${before.toFixed(0)}..${after.toFixed(0)}`,
      );

      // KVP both ways, when the guest image carries hv_kvp_daemon (Linux's hv_kvp answers nothing without it).
      const daemon = (await con.run("command -v hv_kvp_daemon || echo none")).trim();
      if (daemon !== "none") {
        await con.run("pidof hv_kvp_daemon || hv_kvp_daemon");
        await con.waitFor(/hv_utils: KVP IC version 4\.0|hv_kvp: KVP IC version/, 0, lim.commandMs);
        // The daemon may print to the console at any time (e.g. "getaddrinfo failed" while it resolves the
        // name, which has no DNS here): take the hostname from a marked line.
        const marked = /^HOSTNAME=(\S+)$/m.exec(await con.run('echo "HOSTNAME=$(hostname)"'));
        assert.ok(marked, "the guest's hostname");
        const hostname = marked[1]!;
        assert.equal(machine.ics.kvp.set("ViridianHostPair", "pushed-by-the-host"), true);
        for (
          let i = 0;
          i < 20 && machine.ics.kvp.intrinsic.get("FullyQualifiedDomainName") === undefined;
          i++
        ) {
          await con.run("sleep 1");
        }
        assert.match(
          machine.ics.kvp.intrinsic.get("FullyQualifiedDomainName") ?? "",
          new RegExp(`^${hostname}`),
        );
        // The daemon stores the pushed pair when its SET arrives, after the host sent it: wait for the file.
        // Its records are a 512-byte key and a 2048-byte value, each NUL-terminated (whatever follows the NUL
        // is the daemon's stale buffer): the first record's key and value are the first strings of each field.
        const record =
          "f=/var/lib/hyperv/.kvp_pool_0; dd if=$f bs=512 count=1 2>/dev/null | strings | head -n 1; " +
          "dd if=$f bs=512 skip=1 count=4 2>/dev/null | strings | head -n 1";
        let pool = "";
        for (let i = 0; i < 20 && !/^ViridianHostPair\npushed-by-the-host$/m.test(pool); i++) {
          if (i > 0) await con.run("sleep 1");
          pool = await con.run(record);
        }
        assert.match(pool, /^ViridianHostPair\npushed-by-the-host$/m);
      } else {
        assert.equal(machine.ics.inspect().kvp.state, "negotiating", "without the daemon KVP waits");
      }

      // The host asks for an orderly shutdown: the guest says yes and powers off.
      const answers: string[] = [];
      assert.equal(
        machine.requestShutdown("shutdown", (a) => answers.push(a)),
        true,
      );
      await running;
      assert.deepEqual(answers, ["accepted"]);
      assert.equal((stop as PcStop | null)?.kind, "poweroff");
      assert.match(con.text, /hv_utils: Shutdown request received - graceful shutdown initiated/);
    } finally {
      machine.requestStop("test over");
      await running;
    }
  },
);

// The synthetic NIC on the bundled Linux guest through `viridian run --nic`, as a user runs it, on a private
// switch run by `viridian switch` together with a QEMU TCG guest (Debian's stock kernel, virtio-net,
// `-netdev stream` to the same ports socket): in the Viridian guest hv_netvsc binds the NIC, eth0 carries the
// configured MAC with the carrier up; the two guests ping each other, and the Viridian guest fetches a file
// over HTTP from the QEMU guest with the md5 the QEMU guest printed. Then `poweroff` (status 0), the switch's
// port statistics show the traffic, and the boot log is clean.
// Must not: assert timings (limits only keep a hang from hanging the suite) or send anything beyond the
// switch (both guests' only NIC is on it; the switch has no NAT or TAP port).
// Spec: issue 13 acceptance 1 (hv_netvsc binds, eth0), 3 and 4 (two VMs on a private switch, QEMU interop).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  forbiddenLines,
  limits,
  REPO,
  skipReason,
  startGuest,
  type GuestConsole,
  withoutControlSequences,
} from "../linux/guest-console.js";
import { netGuestImages, startNetGuest, type NetGuest } from "../net/net-guest.js";

const lim = limits("viridian");
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;
const BIN = resolve(REPO, "bin/viridian.js");
const VIRIDIAN_MAC = "00:15:5d:00:0b:01";
const QEMU_MAC = "52:54:00:00:0b:02";

function switchCli(rt: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, "switch", ...args], {
    encoding: "utf8",
    env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const skip =
  skipReason("viridian") ||
  skipReason("qemu") ||
  (spawnSync("sh", ["-c", "command -v dpkg-deb"]).status !== 0 && "dpkg-deb not found");

describe(
  "a Viridian guest's NIC on a private switch with a QEMU guest (viridian run --nic)",
  { skip },
  () => {
    const holder: { g?: GuestConsole; q?: NetGuest; rt?: string; socket?: string } = {};
    before(async () => {
      const rt = mkdtempSync(join(tmpdir(), "viridian-netvsp-"));
      holder.rt = rt;
      const created = switchCli(rt, "create", "lab", "--keep");
      assert.equal(created.status, 0, created.stderr);
      const info = JSON.parse(switchCli(rt, "info", "lab", "--json").stdout) as { portsSocket: string };
      holder.socket = info.portsSocket;
      holder.q = startNetGuest(netGuestImages(), info.portsSocket, QEMU_MAC, {
        role: "serve",
        ip: "10.0.0.1/24",
        peer: "10.0.0.2",
        mib: "2",
        stay: "1",
      });
      holder.g = await startGuest(
        { emulator: "viridian", nics: [`switch=${info.portsSocket},mac=${VIRIDIAN_MAC}`] },
        lim,
      );
    });
    after(async () => {
      await holder.g?.close();
      holder.q?.stop();
      if (holder.rt) {
        switchCli(holder.rt, "delete", "lab");
        rmSync(holder.rt, { recursive: true, force: true });
      }
    });
    const step = (
      name: string,
      body: (g: GuestConsole, q: NetGuest) => Promise<void>,
      afterFailureToo = false,
    ) =>
      it(name, { timeout: STEP_MS }, async () => {
        const { g, q } = holder;
        assert.ok(g && q, "the guests were not started");
        await g.step(() => body(g, q), afterFailureToo);
      });
    const run = async (g: GuestConsole, command: string): Promise<string> =>
      withoutControlSequences(await g.run(command)).trim();

    step("hv_netvsc binds the NIC: eth0 has the configured MAC and carrier", async (g) => {
      await g.waitForPrompt();
      assert.equal(await run(g, "cat /sys/class/net/eth0/address"), VIRIDIAN_MAC);
      assert.equal(await run(g, "basename $(readlink /sys/class/net/eth0/device/driver)"), "hv_netvsc");
      await run(g, "ip link set eth0 up; ip addr add 10.0.0.2/24 dev eth0");
      assert.equal(await run(g, "cat /sys/class/net/eth0/carrier"), "1");
      assert.equal(await run(g, "cat /sys/class/net/eth0/mtu"), "1500");
    });

    step("the two guests ping each other", async (g, q) => {
      const out = await run(
        g,
        "for i in $(seq 1 300); do ping -c 1 -W 2 10.0.0.1 >/dev/null 2>&1 && break; done; ping -c 3 -W 5 10.0.0.1",
      );
      assert.match(out, /3 packets transmitted, 3 packets received/);
      await q.waitFor("PING3 OK"); // the QEMU guest's three pings were answered too
    });

    step("a file fetched over HTTP from the QEMU guest arrives with its md5", async (g, q) => {
      const sent = await q.waitFor("MD5");
      assert.match(sent, /^[0-9a-f]{32}$/);
      await q.waitFor("READY");
      const got = await run(g, "wget -q -O /tmp/data http://10.0.0.1/data && md5sum /tmp/data");
      assert.equal(got.split(/\s+/)[0], sent);
    });

    step("after poweroff (status 0) the switch's ports counted the traffic", async (g) => {
      const info = JSON.parse(switchCli(holder.rt!, "info", "lab", "--json").stdout) as {
        ports: { stats: { rxFrames: number; txFrames: number } }[];
      };
      // 2 MiB in frames of at most 1514 bytes went to the Viridian guest's port.
      assert.ok(
        info.ports.some((p) => p.stats.txFrames > 1400),
        JSON.stringify(info.ports),
      );
      g.type("poweroff");
      const status = await g.waitExit(lim.bootMs);
      assert.equal(status, 0, `exit status (${g.exitText()})\n${g.stderr}`);
    });

    step(
      "the boot log has no unchecked MSR access, WARNING, BUG, Call Trace, probe failed or netvsc error",
      async (g) => {
        const log = g.consoleLog();
        assert.deepEqual(forbiddenLines(log), []);
        assert.deepEqual(
          log.filter((l) => /probe failed|probe of .* failed|hv_netvsc.*(error|fail|invalid)/i.test(l)),
          [],
        );
      },
      true,
    );
  },
);

// Devices of running VMs through the service (issue 12): switches and NICs, and disk hot add/remove.
// A private switch created through the API, two VMs with a NIC on it (one MAC given, one generated and kept
// in the file) boot the bundled guest, get static addresses and ping each other; the switch cannot be deleted
// while they run (409 in-use); it survives a SIGKILL of the service (the same process, and the guests still
// reach each other after the restart). Then, in the same boot, a new disk is hot added to a running guest
// (it appears as a block device, is written and read), hot removed (the device goes; neither the worker nor
// the service keeps the image open; what the guest wrote is in the image). Once the VMs are off the switch is
// deleted and its process ends.
// Real HTTP over the service's UNIX socket, real worker and switch processes; one boot per VM.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { NodeFileOpener } from "../../src/host/node-files.js";
import { openImage } from "../../src/storage/open.js";
import { after, before, describe, it } from "node:test";
import { routePath } from "../../src/api/routes.js";
import { Console, TestService } from "./harness.js";

const PROMPT = "viridian-guest:~ # ";
const LOCAL_UNICAST = /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/;

interface SwitchView {
  name: string;
  state: string;
  pid: number | null;
  ports: unknown[];
  vms: Array<{ name: string; running: boolean }>;
}
interface VmView {
  etag: string;
  config: { machine: { nics: Array<{ mac: string; switch: string }> } };
}

/** True while the process exists and is not a zombie (an orphaned switch may wait for a slow reaper). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Whether process `pid` has `path` open (its /proc fd links). */
function holds(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/** Runs a command in the guest and waits for the marker it prints (computed, so the echoed command never matches). */
async function run(con: Console, command: string, tag: string): Promise<string> {
  const from = con.out.length;
  con.type(`${command}; echo "${tag}-end-$((40+2))"`);
  const at = await con.waitFor(`${tag}-end-42`, from);
  return con.out.slice(from, at);
}

describe(
  "devices of running VMs through the service: switches, NICs, disk hot plug",
  { timeout: 1_200_000 },
  () => {
    let svc: TestService;
    before(async () => {
      svc = new TestService("net");
      await svc.start();
    });
    after(async () => {
      await svc.close();
    });

    it("two VMs on one service switch ping each other; in-use while they run; the switch survives a service restart and is restarted after its own death", async () => {
      const created = await svc.ok("POST", routePath("createSwitch"), { body: { name: "lan" } });
      assert.equal(created.status, 201);
      const sw0 = created.body as SwitchView;
      assert.equal(sw0.state, "running");
      const given = "02:00:5e:00:0a:01";
      await svc.ok("POST", routePath("createVm"), {
        body: { name: "a", memoryBytes: 128 * 1024 * 1024, nics: [{ switch: "lan", mac: given }] },
      });
      await svc.ok("POST", routePath("createVm"), { body: { name: "b", memoryBytes: 128 * 1024 * 1024 } });
      const b0 = (await svc.ok("GET", routePath("getVm", { vm: "b" }))).body as VmView;
      const added = await svc.ok("POST", routePath("addNic", { vm: "b" }), {
        body: { switch: "lan" },
        ifMatch: b0.etag,
      });
      const generated = (added.body as VmView).config.machine.nics[0]!.mac;
      assert.match(generated, LOCAL_UNICAST, "a generated MAC is locally administered and unicast");
      const again = (await svc.ok("GET", routePath("getVm", { vm: "b" }))).body as VmView;
      assert.equal(again.config.machine.nics[0]!.mac, generated, "the generated MAC is kept in the file");
      const nope = await svc.call("POST", routePath("addNic", { vm: "b" }), { body: { switch: "nosuch" } });
      assert.equal(nope.status, 404);
      // The CLI: the service's switches and a VM's NICs (exit status 5: not found).
      const shown = await svc.cli(["vmswitch", "show", "lan", "--json"]);
      assert.equal(shown.status, 0, shown.stderr);
      assert.deepEqual((JSON.parse(shown.stdout) as SwitchView).vms.map((v) => v.name).sort(), ["a", "b"]);
      const cliNope = await svc.cli(["vm", "nic", "add", "b", "nosuch"]);
      assert.equal(cliNope.status, 5, cliNope.stderr);
      assert.match(cliNope.stderr, /no switch 'nosuch'/);

      const jobs = await Promise.all(
        ["a", "b"].map(async (vm) => svc.job(await svc.ok("POST", routePath("startVm", { vm })))),
      );
      for (const j of jobs) assert.equal(j.state, "completed", JSON.stringify(j));
      const running = await svc.call("POST", routePath("addNic", { vm: "a" }), { body: { switch: "lan" } });
      assert.equal(running.status, 501, "NIC hot add is not available");

      const [ca, cb] = await Promise.all([Console.open(svc, "a"), Console.open(svc, "b")]);
      await Promise.all([ca.waitFor(PROMPT), cb.waitFor(PROMPT)]);
      assert.match(await run(ca, "cat /sys/class/net/eth0/address", "mac"), new RegExp(given));
      assert.match(await run(cb, "cat /sys/class/net/eth0/address", "mac"), new RegExp(generated));
      await Promise.all([
        run(ca, "ip link set eth0 up; ip addr add 10.77.0.1/24 dev eth0", "up"),
        run(cb, "ip link set eth0 up; ip addr add 10.77.0.2/24 dev eth0", "up"),
      ]);
      // The first pings may go while a carrier comes up: retry until one is answered (bounded).
      const ping = (con: Console, to: string): Promise<string> =>
        run(
          con,
          `for i in $(seq 1 60); do ping -c 1 -W 2 ${to} >/dev/null 2>&1 && echo "ping-ok-$((6*7))" && break; done`,
          "ping",
        );
      assert.match(await ping(ca, "10.77.0.2"), /ping-ok-42/);
      assert.match(await ping(cb, "10.77.0.1"), /ping-ok-42/);

      const inUse = await svc.call("DELETE", routePath("deleteSwitch", { name: "lan" }));
      assert.equal(inUse.status, 409, inUse.text);
      assert.equal((inUse.body as { error: { code: string } }).error.code, "in-use");
      const sw1 = (await svc.ok("GET", routePath("getSwitch", { name: "lan" }))).body as SwitchView;
      assert.deepEqual(sw1.vms.map((v) => [v.name, v.running]).sort(), [
        ["a", true],
        ["b", true],
      ]);
      assert.equal(sw1.ports.length, 2, "one port per running NIC");

      // SIGKILL of the service: the switch process and the workers live on; a new service finds them.
      ca.close();
      cb.close();
      await svc.kill();
      await svc.start();
      const sw2 = (await svc.ok("GET", routePath("getSwitch", { name: "lan" }))).body as SwitchView;
      assert.equal(sw2.state, "running");
      assert.equal(sw2.pid, sw0.pid, "the same switch process");
      const ca2 = await Console.open(svc, "a");
      assert.match(await ping(ca2, "10.77.0.2"), /ping-ok-42/);

      // SIGKILL of the switch process: the service's watchdog starts a new one, both VMs' NICs plug themselves
      // in again, and the guests ping each other as before.
      process.kill(sw2.pid!, "SIGKILL");
      // Bounded generously (the watchdog looks every 2 s, the NICs retry within 5 s) so that a NIC that never
      // comes back fails here with what the switch saw, not at the test's timeout.
      let sw3 = sw2;
      for (
        let tries = 0;
        !(sw3.state === "running" && sw3.pid !== sw2.pid && sw3.ports.length === 2);
        tries++
      ) {
        assert.ok(tries < 600, `the switch and both NICs did not come back: ${JSON.stringify(sw3)}`);
        await new Promise((r) => setTimeout(r, 200));
        sw3 = (await svc.ok("GET", routePath("getSwitch", { name: "lan" }))).body as SwitchView;
      }
      assert.match(await ping(ca2, "10.77.0.2"), /ping-ok-42/);
      assert.match(svc.log, /switch 'lan': its process had gone; restarted/);

      // Disk hot add to the running guest (a new 16 MiB dynamic VHDX): the guest's storvsc rescans and finds it.
      const image = join(svc.dataDir, "images", "hot.vhdx");
      const hot = await svc.job(
        await svc.ok("POST", routePath("addDisk", { vm: "a" }), {
          body: { path: image, create: { sizeBytes: 16 * 1024 * 1024 } },
        }),
      );
      assert.equal(hot.state, "completed", JSON.stringify(hot));
      assert.equal((hot.result as { hotAdded: boolean }).hotAdded, true);
      const appeared = await run(
        ca2,
        "for i in $(seq 1 300); do [ -b /dev/sda ] && break; sleep 0.2; done; cat /sys/block/sda/size; " +
          "echo hot-plugged-data | dd of=/dev/sda bs=512 count=1 conv=sync 2>/dev/null; sync; " +
          "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/sda bs=512 count=1 2>/dev/null | head -c 16; echo",
        "hot",
      );
      assert.match(appeared, /\r\n32768\r\n/, `the guest sees a 16 MiB disk: ${appeared}`);
      assert.match(appeared, /hot-plugged-data/);
      const vmA = (await svc.ok("GET", routePath("getVm", { vm: "a" }))).body as {
        worker: { pid: number };
        config: { machine: { disks: Array<{ path: string }> } };
      };
      assert.deepEqual(
        vmA.config.machine.disks.map((d) => d.path),
        [image],
      );
      // Hot remove: the device goes from the guest, and nobody keeps the image open.
      await svc.ok("DELETE", routePath("removeDisk", { vm: "a", index: 0 }));
      const went = await run(
        ca2,
        'for i in $(seq 1 300); do [ -e /sys/block/sda ] || break; sleep 0.2; done; [ -e /sys/block/sda ] && echo "still-$((1+1))" || echo "gone-$((1+1))"',
        "unplug",
      );
      assert.match(went, /gone-2/, went);
      ca2.close();
      assert.equal(holds(vmA.worker.pid, image), false, "the worker does not hold the image");
      assert.equal(holds(svc.child!.pid!, image), false, "the service does not hold the image");
      const img = await openImage(new NodeFileOpener(), image, { readOnly: true });
      const sector = new Uint8Array(512);
      await img.read(0, sector);
      await img.close();
      assert.equal(Buffer.from(sector.subarray(0, 16)).toString(), "hot-plugged-data");

      for (const vm of ["a", "b"]) {
        const j = await svc.job(
          await svc.ok("POST", routePath("stopVm", { vm }), { body: { turnOff: true } }),
        );
        assert.equal(j.state, "completed", JSON.stringify(j));
      }
      const gone = await svc.call("DELETE", routePath("deleteSwitch", { name: "lan" }));
      assert.equal(gone.status, 204, gone.text);
      assert.deepEqual((await svc.ok("GET", routePath("listSwitches"))).body, []);
      const deadline = Date.now() + 60_000;
      while (alive(sw0.pid!)) {
        assert.ok(Date.now() < deadline, "the switch process ended");
        await new Promise((r) => setTimeout(r, 50));
      }
      // A VM whose switch is gone does not start, and says why.
      const refused = await svc.call("POST", routePath("startVm", { vm: "a" }));
      assert.equal(refused.status, 409);
      assert.match(refused.text, /switch 'lan'/);
    });
  },
);

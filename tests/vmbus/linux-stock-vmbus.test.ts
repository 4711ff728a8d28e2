// Debian's stock kernel on Viridian with its own Hyper-V modules, in ONE boot through `viridian run` as a
// user runs it: `--disk` (a raw image), `--dvd` (an ISO made with genisoimage), `--nic switch=NAME` on a NAT
// switch (`viridian switch create NAME --nat`, passt), `--pace-mips` and `--state`. The initramfs of
// guest/stock-initramfs.sh loads Debian's hv_vmbus, hv_utils, hv_storvsc, hv_netvsc, sd_mod, sr_mod and
// isofs. In the guest: `Hypervisor detected: Microsoft Hyper-V`, hv_vmbus connects (`Vmbus version:`),
// /sys/bus/vmbus/devices lists the SCSI controller, the NIC and every offered IC, each bound to its driver;
// the disk shows the image's size, vendor Msft, model Virtual Disk, and 1 MiB written with dd oflag=direct
// reads back with its md5; the DVD mounts as iso9660 with its file's md5; eth0 (hv_netvsc) gets an address
// by DHCP and wget fetches a file from an HTTP server this test runs on the host's 127.0.0.1, through the
// gateway, with its md5. Then SIGTERM shuts the guest down through Debian's hv_utils (status 0), the host
// sees the heartbeat's sequence and the KVP daemon's items in the machine state, the image holds the
// written data at its offset, and the boot log is clean.
// Must not: assert timings (the limits only keep a hang from hanging the suite), or send traffic anywhere
// but the host's loopback (the NIC's only way out is passt's NAT, which maps the gateway to 127.0.0.1).
// Spec: issue 10 acceptance 1, 5 and 6 and issue 13 acceptance 1, for the stock kernel;
// guest/stock-initramfs.sh; guest/rootfs/usr/libexec/viridian/uevent (DHCP, hv_kvp_daemon).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
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
import { stockInitramfs, stockKernel } from "../linux/stock-kernel.js";
import { formatGuid } from "../../src/support/ms-guid.js";
import { SHUTDOWN_CLASS } from "../../src/vsp/ic/shutdown.js";
import { HEARTBEAT_CLASS } from "../../src/vsp/ic/heartbeat.js";
import { TIMESYNC_CLASS } from "../../src/vsp/ic/timesync.js";
import { KVP_CLASS } from "../../src/vsp/ic/kvp.js";
import { SCSI_CONTROLLER_CLASS } from "../../src/vsp/storvsp/vstor-protocol.js";
import { NETVSC_CLASS } from "../../src/vsp/netvsp/nvsp-protocol.js";
import { SCSI_CONTROLLER_INSTANCE } from "../../src/worker/vm-storage.js";

const lim = limits("viridian", "stock");
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;
const MiB = 1024 * 1024;
const DISK_BYTES = 48 * MiB;
/** Where the guest writes its 1 MiB with dd oflag=direct (bs=1M seek=7). */
const DISK_OFFSET = 7 * MiB;
const MAC = "00:15:5d:00:0c:01";
const BIN = resolve(REPO, "bin/viridian.js");
/** Below this rate of our processor the guest's time follows its instructions instead of the host's clock. */
const PACE_MIPS = 20;

const have = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const skip =
  skipReason("viridian") ||
  (!have("passt") && "passt not installed (Debian package passt)") ||
  (!have("genisoimage") && "genisoimage not installed (Debian package genisoimage)");

function switchCli(rt: string, ...args: string[]) {
  return spawnSync(process.execPath, [BIN, "switch", ...args], {
    encoding: "utf8",
    env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
  });
}

function md5(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** An HTTP server on the host's 127.0.0.1 (an ephemeral port) that serves `body` at /file. */
function serve(body: Uint8Array): Promise<Server> {
  return new Promise((resolveServer, reject) => {
    const server = createServer((req, res) => {
      if (req.url !== "/file") return res.writeHead(404).end();
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolveServer(server));
  });
}

describe(
  "Debian's stock kernel with its own Hyper-V modules: disk, DVD, NAT NIC, ICs (viridian run)",
  { skip },
  () => {
    const h: {
      g?: GuestConsole;
      dir?: string;
      rt?: string;
      disk?: string;
      server?: Server;
      web?: Uint8Array;
      dvdFile?: Uint8Array;
      written?: string;
    } = {};
    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), "viridian-stock-"));
      h.dir = dir;
      h.disk = join(dir, "disk.img");
      writeFileSync(h.disk, new Uint8Array(DISK_BYTES));
      const content = join(dir, "iso");
      mkdirSync(content);
      h.dvdFile = randomBytes(300 * 1024);
      writeFileSync(join(content, "data.bin"), h.dvdFile);
      const iso = join(dir, "media.iso");
      const g = spawnSync("genisoimage", ["-quiet", "-R", "-J", "-V", "STOCK", "-o", iso, content]);
      assert.equal(g.status, 0, `genisoimage: ${g.stderr?.toString()}`);
      h.web = randomBytes(MiB);
      h.server = await serve(h.web);
      const rt = join(dir, "rt");
      mkdirSync(rt);
      h.rt = rt;
      const created = switchCli(rt, "create", "stocknat", "--nat");
      assert.equal(created.status, 0, created.stderr);
      h.g = await startGuest(
        {
          emulator: "viridian",
          kernel: stockKernel(),
          initrd: stockInitramfs(),
          disks: [{ path: h.disk }],
          dvd: iso,
          nics: [`switch=stocknat,mac=${MAC}`],
          // On a loaded host (the suite on 2 cores) our processor can drop to a few MIPS, and a guest on
          // host time then sees its long loops (the W+X scan, the crypto self-tests) take tens of seconds
          // and reports soft lockups; the pacing floor keeps its time in step with its work.
          paceMips: PACE_MIPS,
          state: true,
          env: { VIRIDIAN_RUNTIME_DIR: rt },
        },
        lim,
      );
    });
    after(async () => {
      await h.g?.close();
      h.server?.close();
      if (h.rt) switchCli(h.rt, "delete", "stocknat");
      if (h.dir) rmSync(h.dir, { recursive: true, force: true });
    });
    const step = (name: string, body: (g: GuestConsole) => Promise<void>, afterFailureToo = false) =>
      it(name, { timeout: STEP_MS }, async () => {
        const g = h.g;
        assert.ok(g, "the guest was not started");
        await g.step(() => body(g), afterFailureToo);
      });
    const run = async (g: GuestConsole, command: string): Promise<string> =>
      withoutControlSequences(await g.run(command)).trim();

    step("boots on the hypervisor; the stock modules load and hv_vmbus connects", async (g) => {
      await g.waitForPrompt(lim.bootMs);
      assert.match(await run(g, "uname -r"), /^6\.\d+\.\d+-\d+-amd64$/);
      const log = g.consoleLog().join("\n");
      assert.match(log, /Hypervisor detected: Microsoft Hyper-V/);
      assert.match(log, /hv_vmbus: Vmbus version:\d+\.\d+/);
      assert.match(log, /hv_utils: Shutdown IC version/);
      assert.match(log, /hv_utils: Heartbeat IC version/);
      assert.match(log, /hv_utils: TimeSync IC version/);
      assert.match(log, /scsi 0:0:0:0: Direct-Access +Msft +Virtual Disk/);
      const modules = await run(g, "cut -d' ' -f1 /proc/modules");
      for (const m of ["hv_vmbus", "hv_utils", "hv_storvsc", "hv_netvsc", "sd_mod", "sr_mod", "isofs"])
        assert.match(modules, new RegExp(`^${m}$`, "m"), `module ${m} is not loaded:\n${modules}`);
    });

    step("/sys/bus/vmbus/devices lists the SCSI controller, the NIC and every IC, each bound", async (g) => {
      const ids = (await run(g, "cat /sys/bus/vmbus/devices/*/class_id")).split("\n");
      const want = [
        SCSI_CONTROLLER_CLASS,
        NETVSC_CLASS,
        SHUTDOWN_CLASS,
        HEARTBEAT_CLASS,
        TIMESYNC_CLASS,
        KVP_CLASS,
      ];
      assert.deepEqual([...ids].sort(), want.map((c) => `{${formatGuid(c)}}`).sort());
      const storvsc = await run(g, "ls /sys/bus/vmbus/drivers/hv_storvsc");
      assert.match(storvsc, new RegExp(formatGuid(SCSI_CONTROLLER_INSTANCE)), storvsc);
      const utils = await run(g, "ls /sys/bus/vmbus/drivers/hv_utils");
      assert.equal(utils.match(/[0-9a-f]{8}-[0-9a-f]{4}-/g)?.length, 4, `hv_utils binds four ICs:\n${utils}`);
      assert.equal(await run(g, "basename $(readlink /sys/class/net/eth0/device/driver)"), "hv_netvsc");
      assert.equal(await run(g, "cat /sys/class/net/eth0/address"), MAC);
    });

    step("the disk: size, vendor Msft, model Virtual Disk; 1 MiB written direct reads back", async (g) => {
      const out = await run(
        g,
        "d=/sys/bus/scsi/devices/0:0:0:0; b=$(ls $d/block); " +
          'echo "dev=$b size=$(cat /sys/block/$b/size) vendor=$(cat $d/vendor) model=$(cat $d/model)"',
      );
      // sysfs shows the INQUIRY fields as the device sent them: space-padded to 8 and 16 bytes.
      const m = /dev=(sd[a-z]) size=(\d+) vendor=(\S+)\s+model=(.*)$/m.exec(out);
      assert.ok(m, out);
      assert.equal(m[2], String(DISK_BYTES / 512));
      assert.equal(m[3], "Msft");
      assert.equal(m[4]!.trim(), "Virtual Disk");
      const dev = `/dev/${m[1]}`;
      const a = await run(g, "head -c 1048576 /dev/urandom > /tmp/p; md5sum < /tmp/p");
      const wrote = await run(
        g,
        `dd if=/tmp/p of=${dev} bs=1M seek=${DISK_OFFSET / MiB} count=1 oflag=direct conv=fsync 2>/dev/null; echo rc=$?`,
      );
      assert.match(wrote, /rc=0/);
      const b = await run(
        g,
        `dd if=${dev} bs=1M skip=${DISK_OFFSET / MiB} count=1 iflag=direct 2>/dev/null | md5sum`,
      );
      h.written = a.split(/\s/)[0];
      assert.match(h.written!, /^[0-9a-f]{32}$/);
      assert.equal(b.split(/\s/)[0], h.written);
    });

    step("the DVD mounts read-only as iso9660 and its file's md5 matches", async (g) => {
      const mounted = await run(g, "mkdir -p /dvd; mount -t iso9660 -o ro /dev/sr0 /dvd; echo rc=$?");
      assert.match(mounted, /rc=0/);
      const sum = await run(g, "md5sum /dvd/data.bin; umount /dvd");
      assert.equal(sum.split(/\s/)[0], md5(h.dvdFile!));
    });

    step(
      "eth0 gets an address by DHCP; wget through the gateway fetches the host's file intact",
      async (g) => {
        const addr = await run(
          g,
          "for i in $(seq 1 120); do ip -4 -o addr show eth0 | grep -q inet && break; sleep 1; done; " +
            "ip -4 -o addr show eth0 | awk '{ print $4 }'",
        );
        assert.match(addr, /^\d+\.\d+\.\d+\.\d+\/\d+$/, `no DHCP address on eth0: ${addr}`);
        const port = (h.server!.address() as { port: number }).port;
        const got = await run(
          g,
          "gw=$(ip route | awk '/^default/ { print $3; exit }'); " +
            `wget -q -O /tmp/web http://$gw:${port}/file && md5sum /tmp/web`,
        );
        assert.equal(got.split(/\s/)[0], md5(h.web!), got);
      },
    );

    step(
      "SIGTERM shuts the guest down through hv_utils (status 0); heartbeat and KVP reached the host",
      async (g) => {
        // The KVP daemon runs (started by the guest's uevent handler) and hv_utils negotiated with it.
        assert.match(await run(g, "pidof hv_kvp_daemon"), /^\d+$/);
        const from = g.mark();
        g.signal("SIGTERM");
        const status = await g.waitExit(lim.bootMs);
        const text = g.text.slice(from);
        assert.match(text, /hv_utils: Shutdown request received - graceful shutdown initiated/);
        assert.match(text, /reboot: Power down/);
        assert.equal(status, 0, `exit status (${g.exitText()})\n${g.stderr}`);
        // --state: the machine state after power-off, one line per IC.
        const beat = /heartbeat: \w+ \(IC version [\d.]+\), sequence (\d+)/.exec(g.stderr);
        assert.ok(beat && Number(beat[1]) > 0, `no heartbeat seen by the host:\n${g.stderr}`);
        const kvp = /kvp: \w+ \(IC version [\d.]+\).*, (\d+) guest items/.exec(g.stderr);
        assert.ok(kvp && Number(kvp[1]) > 0, `no KVP items read from the guest:\n${g.stderr}`);
      },
    );

    step("the image holds the guest's direct write at its offset", async () => {
      const fd = openSync(h.disk!, "r");
      const data = new Uint8Array(MiB);
      try {
        assert.equal(readSync(fd, data, 0, MiB, DISK_OFFSET), MiB);
      } finally {
        closeSync(fd);
      }
      assert.equal(md5(data), h.written);
    });

    step(
      "the boot log has no unchecked MSR access, WARNING, BUG, Call Trace, probe failed or timed out",
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

// Issue 10's acceptance 1 for Debian's stock kernel through `viridian run --kernel ... --initrd ... --disk`:
// the initramfs of guest/stock-initramfs.sh loads Debian's own hv_vmbus, hv_utils, hv_storvsc, sd_mod and
// sr_mod from the stock package's modules; hv_vmbus connects (`Vmbus version:`), hv_storvsc binds the SCSI
// controller and hv_utils every offered integration service, /sys/bus/vmbus/devices lists exactly those,
// the disk appears in /sys/block with the image's size, vendor Msft and model Virtual Disk, data written
// with dd oflag=direct reads back, SIGTERM shuts the guest down through Debian's hv_utils (status 0), and
// the boot log is clean.
// Runs only with VIRIDIAN_FULL=1: Viridian decompresses the stock kernel's 8 MB xz image and runs its
// initcalls in the interpreter, which takes many minutes on a loaded machine (docs/spec.md has the time).
// Must not: assert timings; QEMU has no VMBus, so there is no reference variant.
// Spec: issue 10 acceptance 1 (stock kernel) and 6 (SIGTERM); guest/stock-initramfs.sh.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  forbiddenLines,
  limits,
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
import { SCSI_CONTROLLER_INSTANCE } from "../../src/worker/vm-storage.js";

const lim = limits("viridian", "stock");
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;
const MiB = 1024 * 1024;
const skip =
  skipReason("viridian") ||
  (process.env.VIRIDIAN_FULL === "1"
    ? false
    : "the stock kernel on Viridian takes minutes: set VIRIDIAN_FULL=1");

describe(
  "Debian's stock kernel with its own Hyper-V modules on VMBus (viridian run --disk)",
  { skip },
  () => {
    const holder: { g?: GuestConsole; dir?: string } = {};
    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), "viridian-stock-"));
      holder.dir = dir;
      const disk = join(dir, "disk.img");
      writeFileSync(disk, new Uint8Array(48 * MiB));
      holder.g = await startGuest(
        { emulator: "viridian", kernel: stockKernel(), initrd: stockInitramfs(), disks: [{ path: disk }] },
        lim,
      );
    });
    after(async () => {
      await holder.g?.close();
      if (holder.dir) rmSync(holder.dir, { recursive: true, force: true });
    });
    const step = (name: string, body: (g: GuestConsole) => Promise<void>, afterFailureToo = false) =>
      it(name, { timeout: STEP_MS }, async () => {
        const g = holder.g;
        assert.ok(g, "the guest was not started");
        await g.step(() => body(g), afterFailureToo);
      });

    step("the stock modules load: Vmbus version, hv_utils ICs, hv_storvsc finds the disk", async (g) => {
      await g.waitForPrompt(lim.bootMs);
      assert.match(await g.run("uname -r"), /^6\.\d+\.\d+-\d+-amd64\n$/);
      const log = g.consoleLog().join("\n");
      assert.match(log, /hv_vmbus: Vmbus version:\d+\.\d+/);
      assert.match(log, /hv_utils: Shutdown IC version/);
      assert.match(log, /hv_utils: Heartbeat IC version/);
      assert.match(log, /hv_utils: TimeSync IC version/);
      assert.match(log, /scsi 0:0:0:0: Direct-Access +Msft +Virtual Disk/);
      const modules = withoutControlSequences(await g.run("cut -d' ' -f1 /proc/modules"));
      for (const m of ["hv_vmbus", "hv_utils", "hv_storvsc", "sd_mod"])
        assert.match(modules, new RegExp(`^${m}$`, "m"), `module ${m} is not loaded:\n${modules}`);
    });

    step(
      "/sys/bus/vmbus/devices lists the SCSI controller and every IC, each bound to its driver",
      async (g) => {
        const ids = withoutControlSequences(await g.run("cat /sys/bus/vmbus/devices/*/class_id"))
          .trim()
          .split("\n");
        const want = [SCSI_CONTROLLER_CLASS, SHUTDOWN_CLASS, HEARTBEAT_CLASS, TIMESYNC_CLASS, KVP_CLASS].map(
          (c) => `{${formatGuid(c)}}`,
        );
        assert.deepEqual([...ids].sort(), [...want].sort());
        const storvsc = withoutControlSequences(await g.run("ls /sys/bus/vmbus/drivers/hv_storvsc"));
        assert.match(storvsc, new RegExp(formatGuid(SCSI_CONTROLLER_INSTANCE)), storvsc);
        const utils = withoutControlSequences(await g.run("ls /sys/bus/vmbus/drivers/hv_utils"));
        assert.equal(
          utils.match(/[0-9a-f]{8}-[0-9a-f]{4}-/g)?.length,
          4,
          `hv_utils binds four ICs:\n${utils}`,
        );
      },
    );

    step(
      "the disk: /sys/block size, vendor Msft, model Virtual Disk; a direct write reads back",
      async (g) => {
        const out = withoutControlSequences(
          await g.run(
            "d=/sys/bus/scsi/devices/0:0:0:0; b=$(ls $d/block); " +
              'echo "dev=$b size=$(cat /sys/block/$b/size) vendor=$(cat $d/vendor) model=$(cat $d/model)"',
          ),
        );
        const m = /dev=(sd[a-z]) size=(\d+) vendor=(\S+) model=(.*)$/m.exec(out);
        assert.ok(m, out);
        assert.equal(m[2], String((48 * MiB) / 512));
        assert.equal(m[3], "Msft");
        assert.equal(m[4]!.trim(), "Virtual Disk");
        const dev = `/dev/${m[1]}`;
        await g.run("yes 'stock kernel pattern' | head -c 65536 > /tmp/p");
        const wrote = withoutControlSequences(
          await g.run(
            `dd if=/tmp/p of=${dev} bs=65536 seek=7 count=1 oflag=direct conv=fsync 2>/dev/null; echo rc=$?`,
          ),
        );
        assert.match(wrote, /rc=0/);
        const a = withoutControlSequences(await g.run("md5sum < /tmp/p"))
          .trim()
          .split(/\s/)[0];
        const b = withoutControlSequences(
          await g.run(`dd if=${dev} bs=65536 skip=7 count=1 iflag=direct 2>/dev/null | md5sum`),
        )
          .trim()
          .split(/\s/)[0];
        assert.equal(b, a);
      },
    );

    step("SIGTERM shuts the stock kernel down through hv_utils; viridian exits with status 0", async (g) => {
      const from = g.mark();
      g.signal("SIGTERM");
      const status = await g.waitExit(lim.bootMs);
      const text = g.text.slice(from);
      assert.match(text, /hv_utils: Shutdown request received - graceful shutdown initiated/);
      assert.match(text, /reboot: Power down/);
      assert.equal(status, 0, `exit status (${g.exitText()})\n${g.stderr}`);
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
  },
);

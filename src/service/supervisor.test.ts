// Worker confinement: a worker started with the supervisor's permission arguments opens the files its VM's
// configuration names and is refused any other (Node's permission model), measured with the worker's own
// `--probe-open` (a real `viridian worker` process).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import type { VmFile } from "../api/schemas.js";
import { workerPermissionArgs } from "./supervisor.js";

const BIN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));

describe("worker confinement", () => {
  it("opens what the configuration names, refuses anything else", () => {
    const root = mkdtempSync(join(tmpdir(), "viridian-confine-"));
    try {
      const vmDir = join(root, "vms", "vm1");
      mkdirSync(vmDir, { recursive: true });
      const disk = join(root, "images", "disk.img");
      mkdirSync(join(root, "images"));
      writeFileSync(disk, "disk");
      const otherDisk = join(root, "images", "other.img");
      writeFileSync(otherDisk, "another VM's disk");
      const secret = join(root, "auth.json");
      writeFileSync(secret, "{}");
      writeFileSync(join(vmDir, "config.json"), "{}");
      const file = {
        machine: {
          memoryBytes: 32 * 1024 * 1024,
          processors: 1,
          boot: { kernel: null, initrd: null, cmdline: null },
          disks: [{ path: disk, readOnly: true }],
          dvd: null,
          time: { source: "host", paceMips: null },
          rtcOffsetSeconds: 0,
        },
      } as unknown as VmFile;
      // A differencing disk's parent, named by the service after checking it: readable as well.
      const parent = join(root, "images", "base.vhdx");
      writeFileSync(parent, "parent");
      const probe = (path: string): { status: number | null; out: string } => {
        const r = spawnSync(
          process.execPath,
          [
            ...workerPermissionArgs(file, vmDir, [parent]),
            BIN,
            "worker",
            "--vm-dir",
            vmDir,
            "--probe-open",
            path,
          ],
          { encoding: "utf8" },
        );
        return { status: r.status, out: r.stdout + r.stderr };
      };
      for (const ok of [disk, parent, join(vmDir, "config.json")]) {
        const r = probe(ok);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /^opened /m);
      }
      for (const refused of [otherDisk, secret, "/etc/passwd"]) {
        const r = probe(refused);
        assert.equal(r.status, 3, r.out);
        assert.match(r.out, /refused .*ERR_ACCESS_DENIED/);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

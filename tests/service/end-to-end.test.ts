// End to end through the CLI (issue 12, acceptance 1): a real `viridian serve`, the CLI as a separate process
// for every step, a real `viridian worker` process booting the bundled guest. Create, start (the job
// completes), attach the console and run a command in the guest, stop it gracefully (the guest's shutdown
// integration service), delete; the events stream sees it all. The second test gives the VM a new dynamic
// VHDX, inserts an ISO in its DVD drive while it runs (the service reads the medium for the worker, whose file
// permissions were fixed when it started) and mounts it in the guest; deleting the VM keeps the disk.

import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildVm, VmBuildError } from "../../src/worker/build-vm.js";
import { vmConfig } from "../../src/worker/vm-config.js";
import { BIN, TestService } from "./harness.js";

/** The guest's shell prompt (guest/init): the guest is up and reads commands. */
const PROMPT = "viridian-guest:~ # ";

/**
 * Whether this build's `buildVm` takes a disk: asks the builder itself (a VM with one raw disk is built, not
 * run, and closed). A build without the storage VSP refuses with a VmBuildError naming it.
 */
async function storageVspPresent(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), "viridian-probe-"));
  try {
    const disk = join(dir, "probe.img");
    writeFileSync(disk, new Uint8Array(1024 * 1024));
    const vm = await buildVm(
      vmConfig({ memoryBytes: 64 * 1024 * 1024, disks: [{ path: disk, readOnly: true }] }),
      { serial: () => undefined },
    );
    const accepted = vm.storage !== null;
    await vm.close();
    return accepted;
  } catch (e) {
    if (e instanceof VmBuildError && /storage VSP/.test(e.message)) return false;
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `viridian vm console NAME` as a separate process with its stdin held open: what the guest writes is read as
 * it comes, commands are typed when the guest is ready for them. Every wait ends on the guest's output or the
 * CLI's exit (the suite's timeout bounds a guest that never answers), never on a clock.
 */
class ConsoleSession {
  private readonly child: ChildProcessWithoutNullStreams;
  out = "";
  err = "";
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(svc: TestService, name: string) {
    this.child = spawn(process.execPath, [BIN, "vm", "console", name], {
      env: { ...process.env, VIRIDIAN_DATA_DIR: svc.dataDir },
    });
    this.child.stdout.on("data", (d: Buffer) => {
      this.out += d.toString("utf8");
      for (const w of this.waiters) w();
    });
    this.child.stderr.on("data", (d: Buffer) => (this.err += d.toString("utf8")));
    this.exited = new Promise((r) =>
      this.child.on("exit", (code) => {
        r(code);
        for (const w of this.waiters) w();
      }),
    );
  }

  /** Resolves once the output after `from` contains `text`; rejects if the CLI exits first. */
  async waitFor(text: string, from = 0): Promise<number> {
    for (;;) {
      const at = this.out.indexOf(text, from);
      if (at >= 0) return at + text.length;
      if (this.child.exitCode !== null)
        throw new Error(`the console exited (${this.child.exitCode}) before "${text}": ${this.err}`);
      await new Promise<void>((r) => this.waiters.push(r));
      this.waiters = [];
    }
  }

  /** Types a command line and resolves with what the guest printed up to its next prompt. */
  async run(command: string): Promise<string> {
    const start = this.out.length;
    this.child.stdin.write(`${command}\n`);
    // The guest echoes the command line first; the answer is what follows it, up to the next prompt.
    const echoed = await this.waitFor("\n", await this.waitFor(command, start));
    const end = await this.waitFor(PROMPT, echoed);
    return this.out.slice(echoed, end - PROMPT.length).replace(/\r/g, "");
  }

  /** Ends the input: the CLI detaches (the VM keeps running) and exits. */
  async detach(): Promise<number | null> {
    this.child.stdin.end();
    return this.exited;
  }
}

/**
 * `viridian events --json` in the background, collecting the events as they come; resolves once it receives
 * (its subscription is in place: requests are made until their audit entries reach it).
 */
async function eventsWatcher(
  svc: TestService,
): Promise<{ events: () => unknown[]; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, "events", "--json"], {
    env: { ...process.env, VIRIDIAN_DATA_DIR: svc.dataDir },
  });
  let text = "";
  child.stdout.on("data", (d: Buffer) => (text += d.toString("utf8")));
  while (text === "") {
    if (child.exitCode !== null) throw new Error(`viridian events exited (${child.exitCode})`);
    await svc.ok("GET", "/v1/vms");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    events: () =>
      text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as unknown),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    },
  };
}

interface VmJson {
  id: string;
  name: string;
  state: string;
  reason: string | null;
  config: { machine: { disks: Array<{ path: string }>; dvd: string | null } } | null;
}

async function showVm(svc: TestService, name: string): Promise<VmJson> {
  const r = await svc.cli(["vm", "show", name, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as VmJson;
}

/**
 * Graceful stop: the guest (at its prompt, so its shutdown IC is connected) accepts the request and powers
 * off; the VM is Off without a turn-off.
 */
async function stopVm(svc: TestService, name: string): Promise<void> {
  const graceful = await svc.cli(["vm", "stop", name]);
  assert.equal(graceful.status, 0, graceful.stderr);
  const vm = await showVm(svc, name);
  assert.equal(vm.state, "Off");
  assert.match(vm.reason ?? "", /poweroff/, "the guest powered itself off");
}

describe("end to end through the CLI (issue 12, acceptance 1)", { timeout: 900_000 }, () => {
  let svc: TestService;
  before(async () => {
    svc = new TestService("e2e");
    await svc.start();
  });
  after(async () => {
    await svc.close();
  });

  it("serve, vm new, start, console (a command in the guest), graceful stop, delete", async () => {
    const watcher = await eventsWatcher(svc);
    try {
      const created = await svc.cli(["vm", "new", "e2e", "--memory", "256M", "--json"]);
      assert.equal(created.status, 0, created.stderr);
      const vm = JSON.parse(created.stdout) as VmJson;
      assert.equal(vm.state, "Off");
      const vmDir = join(svc.dataDir, "vms", vm.id);
      assert.ok(existsSync(join(vmDir, "config.json")));

      const started = await svc.cli(["vm", "start", "e2e"]);
      assert.equal(started.status, 0, started.stderr);
      const running = await showVm(svc, "e2e");
      assert.equal(running.state, "Running");
      // A real worker process of its own, not the service.
      const pids = svc.workerPids();
      assert.equal(pids.length, 1);
      assert.notEqual(pids[0], svc.child!.pid);
      process.kill(pids[0]!, 0);

      const console = new ConsoleSession(svc, "e2e");
      await console.waitFor(PROMPT);
      assert.equal((await console.run("echo answer-$((6*7))")).trim(), "answer-42");
      assert.match(await console.run("uname -sr"), /^Linux 6\.1\./);
      assert.equal(await console.detach(), 0, console.err);
      // Detaching leaves the VM running.
      assert.equal((await showVm(svc, "e2e")).state, "Running");

      await stopVm(svc, "e2e");
      assert.deepEqual(svc.workerPids(), [], "the worker is gone once the VM is off");

      const deleted = await svc.cli(["vm", "delete", "e2e"]);
      assert.equal(deleted.status, 0, deleted.stderr);
      assert.equal(existsSync(vmDir), false, "the VM's directory is gone");
      const list = await svc.cli(["vm", "list", "--json"]);
      assert.deepEqual(JSON.parse(list.stdout), []);
      const gone = await svc.cli(["vm", "show", "e2e"]);
      assert.equal(gone.status, 5, "a deleted VM is not found (exit status 5)");

      // The events stream saw the lifecycle and the jobs.
      const jobs = await svc.cli(["job", "list", "--json"]);
      const types = (JSON.parse(jobs.stdout) as Array<{ type: string; state: string }>)
        .filter((j) => j.state === "completed")
        .map((j) => j.type);
      for (const type of ["vm.start", "vm.stop", "vm.delete"]) assert.ok(types.includes(type), type);
      await watcher.stop();
      const states = watcher
        .events()
        .map((e) => e as { type: string; data: { name?: string; state?: string } })
        .filter((e) => e.type === "lifecycle" && e.data.name === "e2e")
        .map((e) => e.data.state);
      for (const s of ["Starting", "Running", "Off"])
        assert.ok(states.includes(s), `${s} in ${states.join()}`);
    } finally {
      await watcher.stop();
    }
  });

  it("a new dynamic VHDX and a DVD swapped to an ISO, mounted in the guest; delete keeps the disk", async () => {
    assert.ok(await storageVspPresent(), "buildVm accepts disks (the storage VSP)");
    const images = join(svc.dataDir, "images");
    mkdirSync(images, { recursive: true });
    const vhdx = join(images, "e2e-disk.vhdx");
    const created = await svc.cli(["vm", "new", "e2e-disk", "--new-vhd", vhdx, "--size", "64M", "--json"]);
    assert.equal(created.status, 0, created.stderr);
    const vm = JSON.parse(created.stdout) as VmJson;
    assert.deepEqual(
      vm.config?.machine.disks.map((d) => d.path),
      [vhdx],
    );
    assert.ok(existsSync(vhdx));

    const media = join(images, "media");
    mkdirSync(media);
    writeFileSync(join(media, "HELLO.TXT"), "hello from the dvd\n");
    const iso = join(images, "media.iso");
    execFileSync("genisoimage", ["-quiet", "-V", "E2E", "-o", iso, media]);

    assert.equal((await svc.cli(["vm", "start", "e2e-disk"])).status, 0);
    const console = new ConsoleSession(svc, "e2e-disk");
    await console.waitFor(PROMPT);
    // 64 MiB in 512-byte sectors.
    assert.equal((await console.run("cat /sys/block/sda/size")).trim(), "131072");

    const dvd = await svc.cli(["vm", "dvd", "set", "e2e-disk", iso]);
    assert.equal(dvd.status, 0, dvd.stderr);
    assert.equal((await showVm(svc, "e2e-disk")).config?.machine.dvd, iso);
    await console.run("mkdir -p /mnt/dvd");
    // Each command fits on one 80-column line after the prompt: a wrapped echo would not match.
    assert.equal(
      (await console.run("mount -t iso9660 -o ro /dev/sr0 /mnt/dvd; echo mount=$?")).trim(),
      "mount=0",
    );
    assert.equal((await console.run("cat /mnt/dvd/hello.txt")).trim(), "hello from the dvd");
    await console.run("umount /mnt/dvd");
    assert.equal(await console.detach(), 0, console.err);

    await stopVm(svc, "e2e-disk");
    assert.equal((await svc.cli(["vm", "delete", "e2e-disk"])).status, 0);
    assert.equal(existsSync(join(svc.dataDir, "vms", vm.id)), false);
    assert.ok(existsSync(vhdx), "the disk stays unless --delete-disks");
  });
});

// Owns: the VMs as the API sees them: the inventory (through VmStore), each VM's lifecycle state (the table in
// lifecycle.ts), the runtime facts kept across service restarts (`state.json`: was it running, its scope),
// and every VM operation as the service performs it: create, reconfigure, delete, start, stop, pause, media
// and disk changes, scope moves, automatic start and stop actions, through jobs and the worker launcher.
// Must not: authorize (the API layer does before calling), speak HTTP, or touch a path that
// image-paths.ts has not accepted.
// Spec: docs/architecture.md "The VM service"; Hyper-V New-VM/Start-VM/Stop-VM/Set-VMDvdDrive semantics.

import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync, rmSync, statSync } from "node:fs";
import { ApiError } from "../api/errors.js";
import { DEFAULT_SCOPE, HOST_SCOPE } from "../api/operations.js";
import {
  MAX_NICS,
  type DiskAdd,
  type Job,
  type NicAdd,
  type NicConfig,
  type ServiceConfig,
  type Vm,
  type VmCreate,
  type VmFile,
  type VmPatch,
  type VmState,
} from "../api/schemas.js";
import { NodeFileOpener } from "../host/node-files.js";
import { StorageError } from "../storage/disk.js";
import { createImage } from "../storage/open.js";
import { describe as describeImage } from "../storage/operations.js";
import type { AuthStore } from "./auth-store.js";
import type { DataDir } from "./data-dir.js";
import { BackgroundDurableWrites } from "./durable-file.js";
import type { EventBus } from "./events.js";
import { checkImagePath } from "./image-paths.js";
import type { Jobs } from "./jobs.js";
import { DELETABLE_STATES, nextState, OFFLINE_STATES, type LifecycleEvent } from "./lifecycle.js";
import type { SwitchUser } from "./switches.js";
import type { VmStore } from "./vm-store.js";
import type { WorkerHandle, WorkerLauncher } from "./workers.js";

interface Runtime {
  state: VmState;
  reason: string | null;
  worker: WorkerHandle | null;
  /** When the worker started (its pid file's time, so a reattached worker keeps its start): the uptime's origin. */
  started: string | null;
}

interface RuntimeFile {
  running: boolean;
  scope: string;
}

/** An image's format by its file name, as the API documents it: .vhdx, .vhd, else raw. */
function imageFormat(path: string): "vhdx" | "vhd" | "raw" {
  return /\.vhdx$/i.test(path) ? "vhdx" : /\.vhd$/i.test(path) ? "vhd" : "raw";
}

export class VmService {
  private runtime = new Map<string, Runtime>();
  /** Set while the service stops: worker exits then no longer change what state.json says. */
  private closing = false;
  /**
   * state.json writes: nobody waits for them to be acknowledged, so their fsyncs run off the event loop (one
   * took 3.8 s on a busy disk while every API request waited); in order per VM, the last version wins.
   */
  private readonly stateWrites = new BackgroundDurableWrites();
  /** Names of VMs whose files are being written: taken, though no directory shows them yet. */
  private readonly creating = new Set<string>();

  constructor(
    private readonly dirs: DataDir,
    private readonly store: VmStore,
    private readonly auth: AuthStore,
    private readonly launcher: WorkerLauncher,
    private readonly jobs: Jobs,
    private readonly events: EventBus,
    private readonly config: () => ServiceConfig,
    /** Whether the service's inventory holds a switch of this name. */
    private readonly switchExists: (name: string) => boolean,
  ) {}

  /** Image roots: the data directory's `images` plus the configured ones. */
  roots(): string[] {
    return [this.dirs.images, ...this.config().imageRoots];
  }

  // ---- state ----
  private rt(id: string): Runtime {
    let r = this.runtime.get(id);
    if (!r) {
      r = { state: "Off", reason: null, worker: null, started: null };
      this.runtime.set(id, r);
    }
    return r;
  }

  private readRuntimeFile(id: string): RuntimeFile | null {
    try {
      const path = this.dirs.vmState(id);
      const v = JSON.parse(
        this.stateWrites.latest(path) ?? readFileSync(path, "utf8"),
      ) as Partial<RuntimeFile>;
      if (typeof v.running === "boolean" && typeof v.scope === "string")
        return { running: v.running, scope: v.scope };
    } catch {
      // absent or torn: nothing known
    }
    return null;
  }

  private writeRuntimeFile(id: string, scope: string, running = this.rt(id).worker !== null): void {
    const f: RuntimeFile = { running, scope };
    // A failed write (the VM's directory deleted meanwhile) has nothing to keep.
    this.stateWrites.write(this.dirs.vmState(id), JSON.stringify(f) + "\n");
  }

  /** Applies a lifecycle event; emits the lifecycle event when the state changes. */
  private transition(id: string, event: LifecycleEvent, reason: string | null = null): void {
    const r = this.rt(id);
    const next = nextState(r.state, event);
    if (next === null) throw new ApiError("invalid-state", `cannot ${event} a VM that is ${r.state}`);
    const changed = next !== r.state || reason !== r.reason;
    r.state = next;
    r.reason = reason;
    if (changed) {
      const rec = this.store.read(id);
      const name = rec.ok ? rec.file.name : id;
      this.events.emit("lifecycle", { vm: id, name, state: next, reason }, this.scopeOf(id));
    }
  }

  /** The scope a VM is checked against; a VM whose file cannot be read is checked against the host scope. */
  scopeOf(id: string): string {
    const rec = this.store.read(id);
    if (rec.ok) return rec.file.scope;
    return this.readRuntimeFile(id)?.scope ?? HOST_SCOPE;
  }

  /** The API view of a VM; the file is read (and validated) now. */
  view(id: string): Vm {
    const rec = this.store.read(id);
    const r = this.rt(id);
    if (!rec.ok) {
      // A file broken while the VM runs: the VM keeps running; the state shows what the worker does.
      const state: VmState = r.worker ? r.state : "InvalidConfiguration";
      if (!r.worker && r.state !== "InvalidConfiguration") {
        r.state = "InvalidConfiguration";
        this.events.emit("lifecycle", { vm: id, name: id, state, reason: rec.error }, this.scopeOf(id));
      }
      r.reason = rec.error;
      return {
        id,
        name: id,
        scope: this.scopeOf(id),
        state,
        reason: rec.error,
        config: null,
        etag: rec.etag,
        worker: r.worker
          ? {
              pid: r.worker.pid,
              started: r.started ?? new Date().toISOString(),
              heartbeat: r.worker.heartbeat,
            }
          : null,
      };
    }
    if (r.state === "InvalidConfiguration") {
      r.state = "Off";
      r.reason = null;
      this.events.emit(
        "lifecycle",
        { vm: id, name: rec.file.name, state: "Off", reason: null },
        rec.file.scope,
      );
    }
    return {
      id,
      name: rec.file.name,
      scope: rec.file.scope,
      state: r.state,
      reason: r.reason,
      config: rec.file,
      etag: rec.etag,
      worker: r.worker
        ? { pid: r.worker.pid, started: r.started ?? new Date().toISOString(), heartbeat: r.worker.heartbeat }
        : null,
    };
  }

  list(): Vm[] {
    return this.store.ids().map((id) => this.view(id));
  }

  /** A VM id from a name or an id; not-found otherwise. */
  resolve(nameOrId: string): string {
    if (this.store.exists(nameOrId)) return nameOrId;
    for (const id of this.store.ids()) {
      const rec = this.store.read(id);
      if (rec.ok && rec.file.name === nameOrId) return id;
    }
    throw new ApiError("not-found", `no VM '${nameOrId}'`);
  }

  private nameTaken(name: string, except?: string): boolean {
    if (this.creating.has(name)) return true;
    return this.store.ids().some((id) => {
      if (id === except) return false;
      const rec = this.store.read(id);
      return rec.ok && rec.file.name === name;
    });
  }

  private checkBootPaths(p: { kernel?: string | null; initrd?: string | null }): void {
    if (p.kernel) checkImagePath(p.kernel, this.roots(), true);
    if (p.initrd) checkImagePath(p.initrd, this.roots(), true);
  }

  // ---- configuration ----
  async create(body: VmCreate): Promise<{ vm: Vm }> {
    const scope = body.scope ?? DEFAULT_SCOPE;
    if (!this.auth.hasScope(scope)) throw new ApiError("not-found", `no scope '${scope}'`);
    if (this.nameTaken(body.name)) throw new ApiError("conflict", `a VM named '${body.name}' exists`);
    this.checkBootPaths(body);
    const nics: NicConfig[] = [];
    for (const n of body.nics ?? []) nics.push(this.newNic(nics, n));
    const disks = (body.disks ?? []).map((d, i) => {
      if (d.sizeBytes !== undefined && d.parent !== undefined)
        throw new ApiError(
          "bad-request",
          `disk ${i}: give sizeBytes (a new image) or parent (a child), not both`,
        );
      const fresh = d.sizeBytes !== undefined || d.parent !== undefined;
      if (fresh && d.readOnly)
        throw new ApiError("bad-request", `disk ${i}: a new image cannot be read-only`);
      const path = checkImagePath(d.path, this.roots(), !fresh);
      if ((body.disks ?? []).findIndex((o) => o.path === d.path) !== i)
        throw new ApiError("conflict", `disk ${i}: ${d.path} is named twice`);
      const parent = d.parent === undefined ? undefined : checkImagePath(d.parent, this.roots(), true);
      if (parent !== undefined && imageFormat(path) === "raw")
        throw new ApiError("bad-request", `disk ${i}: a differencing image is a .vhdx or .vhd, not ${path}`);
      return { path, readOnly: d.readOnly ?? false, sizeBytes: d.sizeBytes, parent };
    });
    const dvd = body.dvd ? checkImagePath(body.dvd, this.roots(), true) : null;
    const file: VmFile = {
      schemaVersion: 2,
      id: randomUUID(),
      name: body.name,
      scope,
      created: new Date().toISOString(),
      machine: {
        memoryBytes: body.memoryBytes ?? 256 * 1024 * 1024,
        processors: body.processors ?? 1,
        boot: { kernel: body.kernel ?? null, initrd: body.initrd ?? null, cmdline: body.cmdline ?? null },
        disks: disks.map((d) => ({ path: d.path, readOnly: d.readOnly })),
        dvd,
        nics,
        time: { source: "host", paceMips: body.paceMips ?? null },
        rtcOffsetSeconds: body.rtcOffsetSeconds ?? 0,
      },
      automaticStartAction: body.automaticStartAction ?? "nothing",
      automaticStopAction: body.automaticStopAction ?? "shutdown",
    };
    // New images first (dynamic and differencing ones are a few headers: no job); a failure before the VM's
    // file is written removes those made so far.
    const made: string[] = [];
    try {
      for (const [i, d] of disks.entries()) {
        if (d.sizeBytes === undefined && d.parent === undefined) continue;
        try {
          await createImage(
            new NodeFileOpener(),
            d.path,
            imageFormat(d.path),
            d.parent === undefined
              ? { kind: "dynamic", capacity: d.sizeBytes! }
              : { kind: "differencing", parentPath: d.parent },
          );
        } catch (e) {
          if (e instanceof StorageError)
            throw new ApiError("bad-request", `disk ${i}: cannot create ${d.path}: ${e.message}`);
          throw e;
        }
        made.push(d.path);
      }
      if (this.nameTaken(body.name)) throw new ApiError("conflict", `a VM named '${body.name}' exists`);
      // The name is taken from here on, while the file is written off the event loop.
      this.creating.add(body.name);
      try {
        await this.store.create(file);
      } finally {
        this.creating.delete(body.name);
      }
    } catch (e) {
      for (const p of made) rmSync(p, { force: true });
      throw e;
    }
    this.rt(file.id);
    this.writeRuntimeFile(file.id, scope);
    this.events.emit("lifecycle", { vm: file.id, name: file.name, state: "Off", reason: "created" }, scope);
    return { vm: this.view(file.id) };
  }

  async update(id: string, ifMatch: string | undefined, patch: VmPatch): Promise<Vm> {
    const offlineFields = [
      "memoryBytes",
      "processors",
      "kernel",
      "initrd",
      "cmdline",
      "paceMips",
      "rtcOffsetSeconds",
    ] as const;
    const checkState = (): void => {
      const state = this.rt(id).state;
      if (offlineFields.some((f) => f in patch) && !OFFLINE_STATES.has(state))
        throw new ApiError(
          "invalid-state",
          `memory, processors, boot and time settings change only while the VM is Off (it is ${state})`,
        );
    };
    checkState();
    this.checkBootPaths(patch);
    await this.store.update(id, ifMatch, (f) => {
      // Again when the change's turn comes: a start accepted meanwhile must not miss it.
      checkState();
      const m = f.machine;
      if (patch.memoryBytes !== undefined) m.memoryBytes = patch.memoryBytes;
      if (patch.processors !== undefined) m.processors = patch.processors;
      if (patch.kernel !== undefined) m.boot.kernel = patch.kernel;
      if (patch.initrd !== undefined) m.boot.initrd = patch.initrd;
      if (patch.cmdline !== undefined) m.boot.cmdline = patch.cmdline;
      if (patch.paceMips !== undefined) m.time.paceMips = patch.paceMips;
      if (patch.rtcOffsetSeconds !== undefined) m.rtcOffsetSeconds = patch.rtcOffsetSeconds;
      if (patch.automaticStartAction !== undefined) f.automaticStartAction = patch.automaticStartAction;
      if (patch.automaticStopAction !== undefined) f.automaticStopAction = patch.automaticStopAction;
      return f;
    });
    return this.view(id);
  }

  async changeScope(id: string, ifMatch: string | undefined, scope: string): Promise<Vm> {
    if (!this.auth.hasScope(scope)) throw new ApiError("not-found", `no scope '${scope}'`);
    await this.store.update(id, ifMatch, (f) => ({ ...f, scope }));
    this.writeRuntimeFile(id, scope);
    return this.view(id);
  }

  /** VMs per scope (a scope with VMs cannot be deleted). */
  countInScope(scope: string): number {
    return this.store.ids().filter((id) => this.scopeOf(id) === scope).length;
  }

  private requireOffline(id: string, what: string, vsp = "the storage VSP"): void {
    const s = this.rt(id).state;
    if (!OFFLINE_STATES.has(s))
      throw new ApiError(
        "not-available",
        `${what} while the VM runs needs hot add/remove in ${vsp}, which this build does not have; stop the VM first (it is ${s})`,
      );
  }

  /**
   * A NIC for the VM whose NICs are `existing`: its switch must be in the inventory; its MAC is the one asked
   * (unique in the VM) or a random locally administered unicast one (IEEE 802: first octet's bit 1 set, bit 0
   * clear), which the file then keeps so the guest sees the same address every boot.
   */
  private newNic(existing: readonly NicConfig[], n: NicAdd): NicConfig {
    if (!this.switchExists(n.switch)) throw new ApiError("not-found", `no switch '${n.switch}'`);
    if (existing.length >= MAX_NICS) throw new ApiError("conflict", `the VM has ${MAX_NICS} NICs already`);
    const taken = new Set(existing.map((e) => e.mac));
    if (n.mac !== undefined) {
      if (taken.has(n.mac)) throw new ApiError("conflict", `the VM has a NIC with MAC ${n.mac} already`);
      return { mac: n.mac, switch: n.switch };
    }
    for (;;) {
      const b = randomBytes(6);
      b[0] = (b[0]! & 0xfc) | 0x02;
      const mac = [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
      if (!taken.has(mac)) return { mac, switch: n.switch };
    }
  }

  async addNic(id: string, ifMatch: string | undefined, body: NicAdd): Promise<Vm> {
    this.requireOffline(id, "adding a NIC", "the network VSP");
    await this.store.update(id, ifMatch, (f) => {
      this.requireOffline(id, "adding a NIC", "the network VSP");
      f.machine.nics.push(this.newNic(f.machine.nics, body));
      return f;
    });
    return this.view(id);
  }

  async removeNic(id: string, ifMatch: string | undefined, index: number): Promise<Vm> {
    this.requireOffline(id, "removing a NIC", "the network VSP");
    await this.store.update(id, ifMatch, (f) => {
      this.requireOffline(id, "removing a NIC", "the network VSP");
      if (index >= f.machine.nics.length) throw new ApiError("not-found", `no NIC ${index}`);
      f.machine.nics.splice(index, 1);
      return f;
    });
    return this.view(id);
  }

  /** The VMs whose configuration has a NIC on switch `name`, and whether each has a worker. */
  switchUsers(name: string): SwitchUser[] {
    const out: SwitchUser[] = [];
    for (const id of this.store.ids()) {
      const rec = this.store.read(id);
      if (rec.ok && rec.file.machine.nics.some((n) => n.switch === name)) {
        // A VM that is starting is about to connect: it counts as running.
        const r = this.rt(id);
        out.push({ id, name: rec.file.name, running: r.worker !== null || r.state === "Starting" });
      }
    }
    return out;
  }

  /**
   * The worker of a VM whose disks may change now: null when it is off (only the file changes), the worker
   * when it runs or is paused (hot add/remove), and invalid-state in between (a start or stop in progress
   * would miss the change).
   */
  private diskWorker(id: string): WorkerHandle | null {
    const r = this.rt(id);
    if (OFFLINE_STATES.has(r.state)) return null;
    if ((r.state === "Running" || r.state === "Paused") && r.worker) return r.worker;
    throw new ApiError(
      "invalid-state",
      `disks change while the VM is Off, Running or Paused (it is ${r.state})`,
    );
  }

  addDisk(id: string, ifMatch: string | undefined, body: DiskAdd, requestedBy: string): Job {
    this.diskWorker(id);
    const cur = this.current(id);
    if (ifMatch !== undefined && ifMatch !== cur.etag)
      throw new ApiError("precondition-failed", "the configuration changed");
    if (cur.file.machine.disks.length >= 8) throw new ApiError("conflict", "the VM has 8 disks already");
    if (body.create && body.parent !== undefined)
      throw new ApiError("bad-request", "give create (a new image) or parent (a child), not both");
    const fresh = body.create !== undefined || body.parent !== undefined;
    const path = checkImagePath(body.path, this.roots(), !fresh);
    const parent = body.parent === undefined ? undefined : checkImagePath(body.parent, this.roots(), true);
    if (parent !== undefined && imageFormat(path) === "raw")
      throw new ApiError("bad-request", `a differencing image is a .vhdx or .vhd, not ${path}`);
    const readOnly = body.readOnly ?? false;
    return this.jobs.start("disk.add", "vm.hardware.add", this.jobVm(id), requestedBy, false, async (ctx) => {
      if (body.create || parent !== undefined) {
        try {
          await createImage(
            new NodeFileOpener(),
            path,
            imageFormat(path),
            body.create
              ? {
                  kind: body.create.type ?? "dynamic",
                  capacity: body.create.sizeBytes,
                  onProgress: (f) => ctx.progress(f * 90),
                }
              : { kind: "differencing", parentPath: parent! },
          );
        } catch (e) {
          if (e instanceof StorageError)
            throw new ApiError("bad-request", `cannot create ${path}: ${e.message}`);
          throw e;
        }
      }
      // Hot add while it runs: the worker has the disk before the file says so (a failure changes nothing).
      const w = this.diskWorker(id);
      if (w) await w.addDisk(path, readOnly);
      const { file } = await this.store.update(id, undefined, (f) => {
        f.machine.disks.push({ path, readOnly });
        return f;
      });
      return { disks: file.machine.disks, hotAdded: w !== null };
    });
  }

  async removeDisk(id: string, ifMatch: string | undefined, index: number): Promise<Vm> {
    const w = this.diskWorker(id);
    const cur = this.current(id);
    if (ifMatch !== undefined && ifMatch !== cur.etag)
      throw new ApiError("precondition-failed", "the configuration changed");
    const disk = cur.file.machine.disks[index];
    if (!disk) throw new ApiError("not-found", `no disk ${index}`);
    // Hot remove: the worker detaches, flushes and closes the image before the file forgets it.
    if (w) await w.removeDisk(index, disk.path);
    await this.store.update(id, w ? undefined : ifMatch, (f) => {
      if (f.machine.disks[index]?.path !== disk.path)
        throw new ApiError("conflict", "the VM's disks changed meanwhile");
      f.machine.disks.splice(index, 1);
      return f;
    });
    return this.view(id);
  }

  async changeDiskPath(id: string, ifMatch: string | undefined, index: number, path: string): Promise<Vm> {
    this.requireOffline(id, "changing a disk's image");
    checkImagePath(path, this.roots(), true);
    await this.store.update(id, ifMatch, (f) => {
      this.requireOffline(id, "changing a disk's image");
      const d = f.machine.disks[index];
      if (!d) throw new ApiError("not-found", `no disk ${index}`);
      d.path = path;
      return f;
    });
    return this.view(id);
  }

  /** Inserts, swaps or (null) ejects the DVD; a running VM swaps the medium in its worker first. */
  async setDvd(id: string, ifMatch: string | undefined, path: string | null): Promise<Vm> {
    if (path !== null) checkImagePath(path, this.roots(), true);
    const cur = this.current(id);
    if (ifMatch !== undefined && ifMatch !== cur.etag)
      throw new ApiError("precondition-failed", "the configuration changed");
    const w = this.rt(id).worker;
    if (w) await w.setDvd(path);
    await this.store.update(id, ifMatch, (f) => {
      f.machine.dvd = path;
      return f;
    });
    return this.view(id);
  }

  private current(id: string): { file: VmFile; etag: string } {
    const rec = this.store.read(id);
    if (!rec.ok)
      throw new ApiError("invalid-configuration", `the VM's configuration is invalid: ${rec.error}`);
    return { file: rec.file, etag: rec.etag };
  }

  private jobVm(id: string): { id: string; name: string; scope: string } {
    const rec = this.store.read(id);
    return { id, name: rec.ok ? rec.file.name : id, scope: this.scopeOf(id) };
  }

  // ---- lifecycle ----
  delete(id: string, deleteDisks: boolean, requestedBy: string): Job {
    const r = this.rt(id);
    if (!DELETABLE_STATES.has(r.state))
      throw new ApiError("invalid-state", `only an Off VM can be deleted (it is ${r.state})`);
    const rec = this.store.read(id);
    const disks = rec.ok ? rec.file.machine.disks.map((d) => d.path) : [];
    const scope = this.scopeOf(id);
    return this.jobs.start("vm.delete", "vm.delete", this.jobVm(id), requestedBy, false, async () => {
      const removed: string[] = [];
      if (deleteDisks) {
        for (const p of disks) {
          // Only images still inside the roots are removed (a root may have been unconfigured since).
          try {
            checkImagePath(p, this.roots(), true);
          } catch {
            continue;
          }
          rmSync(p, { force: true });
          removed.push(p);
        }
      }
      // No state.json write may land in the directory while it goes.
      await this.stateWrites.flush();
      await this.store.remove(id);
      this.runtime.delete(id);
      this.events.emit(
        "lifecycle",
        { vm: id, name: rec.ok ? rec.file.name : id, state: "Deleted", reason: null },
        scope,
      );
      return { deletedDisks: removed };
    });
  }

  start(id: string, requestedBy: string): Job {
    const missing = this.current(id).file.machine.nics.find((n) => !this.switchExists(n.switch));
    if (missing)
      throw new ApiError(
        "conflict",
        `the VM's NIC is on switch '${missing.switch}', which does not exist (create it, or remove the NIC)`,
      );
    this.transition(id, "start");
    return this.jobs.start("vm.start", "vm.start", this.jobVm(id), requestedBy, true, async (ctx) => {
      let w: WorkerHandle;
      let file: VmFile;
      try {
        // After any change accepted before the start whose file is still being written (store.serial).
        file = await this.store.serial(id, () => this.current(id).file);
        ctx.progress(10);
        w = await this.launcher.start(file, ctx.signal, await this.diskParents(file));
      } catch (e) {
        this.transition(id, "start-failed", (e as Error).message);
        throw e;
      }
      this.adopt(id, w);
      this.transition(id, "started");
      this.writeRuntimeFile(id, file.scope);
      return { pid: w.pid };
    });
  }

  /**
   * The parents of the VM's differencing disks, each checked to lie inside the image roots: the worker may
   * read them (a child whose parent locator leads elsewhere does not start). A disk that cannot be opened
   * here is left to the worker, which reports it as before.
   */
  private async diskParents(file: VmFile): Promise<string[]> {
    const parents: string[] = [];
    for (const d of file.machine.disks) {
      let chain: Array<{ parentPath?: string }>;
      try {
        chain = await describeImage(new NodeFileOpener(), d.path);
      } catch (e) {
        if (e instanceof StorageError) continue;
        throw e;
      }
      for (const info of chain)
        if (info.parentPath !== undefined) parents.push(checkImagePath(info.parentPath, this.roots(), true));
    }
    return parents;
  }

  /** Takes charge of a worker: state notifications and its end. */
  private adopt(id: string, w: WorkerHandle): void {
    const r = this.rt(id);
    r.worker = w;
    try {
      r.started = statSync(this.dirs.workerPid(id)).mtime.toISOString();
    } catch {
      r.started = new Date().toISOString();
    }
    w.onHeartbeat((heartbeat) => {
      if (r.worker !== w) return;
      const rec = this.store.read(id);
      this.events.emit("health", { vm: id, name: rec.ok ? rec.file.name : id, heartbeat }, this.scopeOf(id));
    });
    w.onState((s, reason) => {
      if (r.worker !== w) return;
      if (s === "paused" && r.state === "Running") this.transition(id, "pause", reason);
      else if (s === "running" && r.state === "Paused") this.transition(id, "resume", reason);
    });
    w.onExit(({ stopped, reason }) => {
      if (r.worker !== w) return;
      r.worker = null;
      if (!this.runtime.has(id) || this.closing) return;
      if (stopped) this.transition(id, "stopped", reason);
      else this.transition(id, "worker-lost", reason);
      this.writeRuntimeFile(id, this.scopeOf(id));
    });
  }

  stop(id: string, turnOff: boolean, requestedBy: string): Job {
    const r = this.rt(id);
    const w = r.worker;
    if (!w || !["Running", "Paused", "Starting"].includes(r.state))
      throw new ApiError("invalid-state", `the VM is ${r.state}`);
    const before = r.state;
    return this.jobs.start("vm.stop", "vm.stop", this.jobVm(id), requestedBy, false, async () => {
      if (turnOff) {
        this.transition(id, "stop", "turning off");
        await w.turnOff();
        return { turnedOff: true };
      }
      // Graceful: the guest must accept the shutdown request before the state says Stopping (a guest without
      // the shutdown IC, or one that refuses, leaves the VM as it was and fails the job).
      await w.shutdown();
      // A guest quick to power off may already be Off.
      if (this.rt(id).worker === w) this.transition(id, "stop", "shutting down");
      const timeoutS = this.config().stopTimeoutSeconds;
      const stopped = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), timeoutS * 1000);
        w.onExit(() => {
          clearTimeout(t);
          resolve(true);
        });
      });
      if (!stopped) {
        if (this.rt(id).state === "Stopping")
          this.transition(id, "stop-failed", `the guest did not shut down within ${timeoutS} s`);
        throw new ApiError(
          "unavailable",
          `the guest did not shut down within ${timeoutS} s; it keeps running (turn it off with --turn-off)`,
        );
      }
      void before;
      return { turnedOff: false };
    });
  }

  async pause(id: string): Promise<Vm> {
    const r = this.rt(id);
    if (r.state !== "Running" || !r.worker)
      throw new ApiError("invalid-state", `cannot pause a VM that is ${r.state}`);
    await r.worker.pause();
    if (r.state === "Running") this.transition(id, "pause");
    return this.view(id);
  }

  async resume(id: string): Promise<Vm> {
    const r = this.rt(id);
    if (r.state !== "Paused" || !r.worker)
      throw new ApiError("invalid-state", `cannot resume a VM that is ${r.state}`);
    await r.worker.resume();
    if (r.state === "Paused") this.transition(id, "resume");
    return this.view(id);
  }

  /** The running worker of a VM (console, inspect, metrics); invalid-state when none. */
  worker(id: string): WorkerHandle {
    const w = this.rt(id).worker;
    if (!w) throw new ApiError("invalid-state", `the VM is ${this.rt(id).state}: no console`);
    return w;
  }

  /** The VM's state and worker now, or null once it was deleted (the metrics stream asks every second). */
  liveState(id: string): { state: VmState; worker: WorkerHandle | null } | null {
    const r = this.runtime.get(id);
    return r ? { state: r.state, worker: r.worker } : null;
  }

  workers(): Array<{ id: string; name: string; scope: string; state: VmState; worker: WorkerHandle | null }> {
    return this.store.ids().map((id) => {
      const rec = this.store.read(id);
      const r = this.rt(id);
      return {
        id,
        name: rec.ok ? rec.file.name : id,
        scope: this.scopeOf(id),
        state: r.state,
        worker: r.worker,
      };
    });
  }

  // ---- service start and stop ----
  /** Reattaches to surviving workers, then applies each VM's automatic start action. */
  async init(requestedBy: string): Promise<void> {
    for (const id of this.store.ids()) {
      const rec = this.store.read(id);
      const r = this.rt(id);
      const was = this.readRuntimeFile(id);
      const w = await this.launcher.reattach(id).catch(() => null);
      if (w) {
        this.adopt(id, w);
        r.state = w.state === "paused" ? "Paused" : "Running";
        r.reason = "reattached after a service restart";
        continue;
      }
      if (!rec.ok) {
        r.state = "InvalidConfiguration";
        r.reason = rec.error;
        continue;
      }
      const action = rec.file.automaticStartAction;
      if (action === "start" || (action === "start-if-running" && was?.running === true)) {
        this.start(id, requestedBy);
      } else if (was?.running) {
        r.state = "Off";
        r.reason = "its worker ended while the service was not running";
        this.writeRuntimeFile(id, rec.file.scope);
      }
    }
  }

  /** Applies each running VM's automatic stop action; workers left running keep running. */
  async shutdown(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    this.closing = true;
    for (const [id, r] of this.runtime) {
      const w = r.worker;
      if (!w) continue;
      // "Start if it was running" means running when the service stopped, whatever the stop action does.
      this.writeRuntimeFile(id, this.scopeOf(id), true);
      const rec = this.store.read(id);
      const action = rec.ok ? rec.file.automaticStopAction : "leave-running";
      if (action === "leave-running") {
        w.detach();
        continue;
      }
      const exited = new Promise<void>((resolve) => w.onExit(() => resolve()));
      if (action === "shutdown") {
        try {
          await w.shutdown();
          const t = this.config().stopTimeoutSeconds * 1000;
          waits.push(
            Promise.race([exited, new Promise<void>((r2) => setTimeout(r2, t).unref())]).then(() =>
              this.rt(id).worker ? w.turnOff() : undefined,
            ),
          );
          continue;
        } catch {
          // no shutdown integration service: turn off instead
        }
      }
      waits.push(w.turnOff().catch(() => undefined));
    }
    await Promise.all(waits);
    await this.stateWrites.flush();
  }
}

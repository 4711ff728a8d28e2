// Owns: what the VM service needs from the worker side, as an interface: start a VM's worker, reattach to one
// a previous service instance started, and drive it (pause, resume, shut down, turn off, media, console,
// inspect, metrics). supervisor.ts implements it with real processes; the service never sees how.
// Must not: hold state of its own.
// Spec: docs/architecture.md "Worker processes and their protocol".

import type { VmFile } from "../api/schemas.js";
import type { GuestHeartbeat, WorkerMetrics, WorkerRunState } from "../worker/protocol.js";

export interface WorkerHandle {
  readonly pid: number;
  readonly state: WorkerRunState;
  /** The guest's heartbeat as the worker last reported it (null: the worker does not report it). */
  readonly heartbeat: GuestHeartbeat | null;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Asks the guest to shut down (shutdown integration service); resolves when the guest accepted. */
  shutdown(): Promise<void>;
  /** Powers off at once; resolves once the worker reported the VM stopped. */
  turnOff(): Promise<void>;
  setDvd(path: string | null): Promise<void>;
  /** Hot add of a disk (the service opens and serves the image); it becomes the VM's last disk. */
  addDisk(path: string, readOnly: boolean): Promise<void>;
  /** Hot remove of disk `index` whose image is `path`; resolves once the worker and the service closed it. */
  removeDisk(index: number, path: string): Promise<void>;
  inspect(): Promise<string>;
  metrics(): Promise<WorkerMetrics>;
  sendConsole(bytes: Uint8Array): Promise<void>;
  /** Console output from now on (after `backlog` recent bytes); returns the unsubscribe function. */
  onConsole(l: (bytes: Uint8Array) => void, backlog: number): Promise<() => void>;
  /** Called once when the worker is gone: `stopped` true when the guest powered off normally. */
  onExit(l: (info: { stopped: boolean; reason: string }) => void): void;
  onState(l: (state: WorkerRunState, reason: string | null) => void): void;
  onHeartbeat(l: (h: GuestHeartbeat) => void): void;
  /** Drops the connection without stopping the worker (the service is stopping, the VM keeps running). */
  detach(): void;
}

export interface WorkerLauncher {
  /**
   * Starts a worker for this VM, runs the guest, and resolves once it runs (or rejects with the reason).
   * `parents` are the differencing parents of its disks, which the worker may read too.
   */
  start(file: VmFile, signal: AbortSignal, parents?: readonly string[]): Promise<WorkerHandle>;
  /** Reattaches to a worker left running by an earlier service instance; null when none is alive. */
  reattach(id: string): Promise<WorkerHandle | null>;
}

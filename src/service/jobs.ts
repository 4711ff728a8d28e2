// Owns: jobs, the one abstraction for every long operation (start, stop, delete, disk creation): an id, a
// state (queued, running, completed, failed, cancelled), a progress percentage, cancellation through an
// AbortSignal, a result or a stable error, waiting with a timeout, and removal a while after completion
// (WMI's Msvm_ConcreteJob TimeBeforeRemoval; Incus's operations).
// Must not: know what a job does (its owner passes the work as a function) or authorize anything.
// Spec: anchors-management.md sections 2 (Msvm_ConcreteJob) and 4 (Incus operations: 202 + URL, /wait).

import { randomUUID } from "node:crypto";
import { ApiError, isErrorCode } from "../api/errors.js";
import type { OperationId } from "../api/operations.js";
import type { Job } from "../api/schemas.js";

export interface JobContext {
  signal: AbortSignal;
  progress(percent: number): void;
}

interface JobEntry {
  job: Job;
  /** The operation that started it: cancelling needs the same one. */
  operation: OperationId;
  scope: string;
  controller: AbortController;
  done: Promise<void>;
  finishedAt: number | null;
}

export class Jobs {
  private entries = new Map<string, JobEntry>();
  private listeners = new Set<(job: Job, scope: string) => void>();

  constructor(private retentionMs: number) {}

  setRetention(ms: number): void {
    this.retentionMs = ms;
  }

  onChange(l: (job: Job, scope: string) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private emit(e: JobEntry): void {
    for (const l of this.listeners) l({ ...e.job }, e.scope);
  }

  /** Starts `work` as a job and returns it at once (state running). */
  start(
    type: string,
    operation: OperationId,
    vm: { id: string; name: string; scope: string } | null,
    requestedBy: string,
    cancellable: boolean,
    work: (ctx: JobContext) => Promise<unknown>,
  ): Job {
    this.prune();
    const controller = new AbortController();
    const job: Job = {
      id: randomUUID(),
      type,
      vm: vm ? { id: vm.id, name: vm.name } : null,
      state: "running",
      percentComplete: 0,
      cancellable,
      created: new Date().toISOString(),
      finished: null,
      result: null,
      error: null,
      requestedBy,
    };
    const entry: JobEntry = {
      job,
      operation,
      scope: vm?.scope ?? "host",
      controller,
      finishedAt: null,
      done: Promise.resolve(),
    };
    this.entries.set(job.id, entry);
    const ctx: JobContext = {
      signal: controller.signal,
      progress: (p) => {
        const v = Math.max(0, Math.min(99, Math.floor(p)));
        if (entry.job.state === "running" && v > entry.job.percentComplete) {
          entry.job.percentComplete = v;
          this.emit(entry);
        }
      },
    };
    entry.done = (async () => {
      await Promise.resolve();
      try {
        const result = await work(ctx);
        if (controller.signal.aborted)
          this.finish(entry, "cancelled", null, { code: "conflict", message: "cancelled" });
        else this.finish(entry, "completed", result ?? null, null);
      } catch (e) {
        if (controller.signal.aborted)
          this.finish(entry, "cancelled", null, { code: "conflict", message: "cancelled" });
        else if (e instanceof ApiError)
          this.finish(entry, "failed", null, { code: e.code, message: e.message });
        else {
          const code = (e as { code?: unknown }).code;
          this.finish(entry, "failed", null, {
            code: isErrorCode(code) ? code : "internal",
            message: (e as Error).message ?? String(e),
          });
        }
      }
    })();
    this.emit(entry);
    return { ...job };
  }

  private finish(entry: JobEntry, state: Job["state"], result: unknown, error: Job["error"]): void {
    entry.job.state = state;
    entry.job.result = result;
    entry.job.error = error;
    if (state === "completed") entry.job.percentComplete = 100;
    entry.job.finished = new Date().toISOString();
    entry.job.cancellable = false;
    entry.finishedAt = Date.now();
    this.emit(entry);
  }

  private prune(): void {
    const limit = Date.now() - this.retentionMs;
    for (const [id, e] of this.entries)
      if (e.finishedAt !== null && e.finishedAt < limit) this.entries.delete(id);
  }

  list(): Array<{ job: Job; scope: string; operation: OperationId }> {
    this.prune();
    return [...this.entries.values()].map((e) => ({
      job: { ...e.job },
      scope: e.scope,
      operation: e.operation,
    }));
  }

  get(id: string): { job: Job; scope: string; operation: OperationId } {
    this.prune();
    const e = this.entries.get(id);
    if (!e) throw new ApiError("not-found", `no job '${id}'`);
    return { job: { ...e.job }, scope: e.scope, operation: e.operation };
  }

  /** Resolves with the job once it has finished or `timeoutMs` passed, whichever is first. */
  async wait(id: string, timeoutMs: number): Promise<Job> {
    const e = this.entries.get(id);
    if (!e) throw new ApiError("not-found", `no job '${id}'`);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([e.done, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    return { ...e.job };
  }

  cancel(id: string): Job {
    const e = this.entries.get(id);
    if (!e) throw new ApiError("not-found", `no job '${id}'`);
    if (e.job.state !== "running" && e.job.state !== "queued")
      throw new ApiError("invalid-state", `job ${id} is ${e.job.state}`);
    if (!e.job.cancellable) throw new ApiError("invalid-state", `a ${e.job.type} job cannot be cancelled`);
    e.controller.abort();
    return { ...e.job };
  }

  /** Every job settled (for shutdown and tests). */
  async settle(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.done));
  }

  counts(): Record<Job["state"], number> {
    const c = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const e of this.entries.values()) c[e.job.state]++;
    return c;
  }
}

// Owns: a VM's metrics WebSocket (`GET /v1/vms/:vm/metrics`): once a second (and at once on connect) it asks
// the VM's worker for its counters and sends one VmMetricsSample text frame, across the VM's stops and starts,
// until the client goes or the VM is deleted.
// Must not: queue requests on a worker that is slow to answer (one request at a time per socket; a sample
// whose worker did not answer within the period carries null counters), buffer without bound for a slow
// reader, or compute rates (the client derives them from consecutive samples).
// Spec: docs/architecture.md "The web UI (src/web/)" (graphs); the vmMetrics route of src/api/routes.ts.

import type { WebSocket } from "ws";
import type { VmMetricsSample } from "../api/schemas.js";
import type { WorkerMetrics } from "../worker/protocol.js";
import type { VmService } from "./vm-service.js";

/** How often a sample is sent: enough for a live graph, little work for the worker. */
export const METRICS_PERIOD_MS = 1000;
/** A client that lets this much pile up unread is dropped. */
const BACKLOG_LIMIT = 256 * 1024;

function sample(state: VmMetricsSample["state"], m: WorkerMetrics | null): VmMetricsSample {
  return {
    time: new Date().toISOString(),
    state,
    counters: m
      ? {
          instructionsRetired: m.instructionsRetired,
          cpuSeconds: m.cpuSeconds,
          rssBytes: m.rssBytes,
          // A worker started by an older build lacks these: zero, not a gap.
          diskReadBytes: m.diskReadBytes ?? 0,
          diskWriteBytes: m.diskWriteBytes ?? 0,
          netRxBytes: m.netRxBytes ?? 0,
          netTxBytes: m.netTxBytes ?? 0,
        }
      : null,
    heartbeat: m ? (m.heartbeat ?? null) : null,
    kvp: m?.kvp ?? {},
  };
}

export function metricsSocket(socket: WebSocket, vmId: string, vms: VmService): void {
  let busy = false;
  let closed = false;
  const tick = async (): Promise<void> => {
    if (busy || closed) return;
    const now = vms.liveState(vmId);
    if (now === null) {
      socket.close(1000, "the VM was deleted");
      return;
    }
    busy = true;
    let m: WorkerMetrics | null = null;
    if (now.worker) {
      let timer: NodeJS.Timeout | undefined;
      m = await Promise.race([
        now.worker.metrics().catch(() => null),
        new Promise<null>((r) => (timer = setTimeout(() => r(null), METRICS_PERIOD_MS))),
      ]);
      clearTimeout(timer);
    }
    busy = false;
    if (closed || socket.readyState !== 1) return;
    if (socket.bufferedAmount > BACKLOG_LIMIT) {
      socket.close(1008, "too slow: metrics dropped");
      return;
    }
    // The state after the answer: a worker that exited meanwhile shows as the VM's new state.
    socket.send(JSON.stringify(sample(vms.liveState(vmId)?.state ?? now.state, m)));
  };
  const timer = setInterval(() => void tick(), METRICS_PERIOD_MS);
  const stop = (): void => {
    closed = true;
    clearInterval(timer);
  };
  socket.on("close", stop);
  socket.on("error", stop);
  socket.on("message", () => undefined);
  void tick();
}

// Owns: the Prometheus text exposition on /metrics: per-VM state, guest instructions retired, worker CPU time
// and memory, disk and network bytes (asked from each worker, bounded by a timeout), job counts, HTTP request counts by route and
// status, and the service's own memory.
// Must not: block a scrape on a worker that does not answer (its figures are left out).
// Spec: Prometheus exposition format 0.0.4.

import type { WorkerMetrics } from "../worker/protocol.js";
import type { Jobs } from "./jobs.js";
import type { VmService } from "./vm-service.js";

function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export class RequestCounter {
  private counts = new Map<string, number>();
  add(route: string, status: number): void {
    const k = `${route}\u0000${status}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
  entries(): Array<[string, number, number]> {
    return [...this.counts].map(([k, n]) => {
      const [route, status] = k.split("\u0000");
      return [route!, Number(status), n];
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  return Promise.race([p.catch(() => null), new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);
}

export async function renderMetrics(vms: VmService, jobs: Jobs, requests: RequestCounter): Promise<string> {
  const out: string[] = [];
  const all = vms.workers();
  out.push(
    "# HELP viridian_vm_state 1 for the VM's current lifecycle state.",
    "# TYPE viridian_vm_state gauge",
  );
  for (const v of all) out.push(`viridian_vm_state{vm="${label(v.name)}",id="${v.id}",state="${v.state}"} 1`);
  const figures = await Promise.all(
    all.map(
      async (v) => [v, v.worker ? await withTimeout<WorkerMetrics>(v.worker.metrics(), 1000) : null] as const,
    ),
  );
  const series: Array<[string, string, string, (m: WorkerMetrics) => number]> = [
    [
      "viridian_vm_instructions_retired_total",
      "counter",
      "Guest instructions retired since the worker started.",
      (m) => m.instructionsRetired,
    ],
    [
      "viridian_vm_cpu_seconds_total",
      "counter",
      "Host CPU time of the VM's worker process.",
      (m) => m.cpuSeconds,
    ],
    ["viridian_vm_resident_bytes", "gauge", "Resident memory of the VM's worker process.", (m) => m.rssBytes],
    ["viridian_vm_memory_bytes", "gauge", "Guest RAM configured.", (m) => m.guestMemoryBytes],
    [
      "viridian_vm_disk_read_bytes_total",
      "counter",
      "Data bytes the guest read through its SCSI controller.",
      (m) => m.diskReadBytes ?? 0,
    ],
    [
      "viridian_vm_disk_written_bytes_total",
      "counter",
      "Data bytes the guest wrote through its SCSI controller.",
      (m) => m.diskWriteBytes ?? 0,
    ],
    [
      "viridian_vm_network_receive_bytes_total",
      "counter",
      "Ethernet bytes delivered to the guest's NICs.",
      (m) => m.netRxBytes ?? 0,
    ],
    [
      "viridian_vm_network_transmit_bytes_total",
      "counter",
      "Ethernet bytes the guest's NICs sent.",
      (m) => m.netTxBytes ?? 0,
    ],
  ];
  for (const [name, type, help, get] of series) {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [v, m] of figures) if (m) out.push(`${name}{vm="${label(v.name)}",id="${v.id}"} ${get(m)}`);
  }
  out.push("# HELP viridian_jobs Jobs kept by the service, by state.", "# TYPE viridian_jobs gauge");
  for (const [state, n] of Object.entries(jobs.counts())) out.push(`viridian_jobs{state="${state}"} ${n}`);
  out.push(
    "# HELP viridian_http_requests_total API requests answered, by route and status.",
    "# TYPE viridian_http_requests_total counter",
  );
  for (const [route, status, n] of requests.entries())
    out.push(`viridian_http_requests_total{route="${label(route)}",status="${status}"} ${n}`);
  const mem = process.memoryUsage();
  out.push(
    "# HELP viridian_service_resident_bytes Resident memory of the service process.",
    "# TYPE viridian_service_resident_bytes gauge",
  );
  out.push(`viridian_service_resident_bytes ${mem.rss}`);
  return out.join("\n") + "\n";
}

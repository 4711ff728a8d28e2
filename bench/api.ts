// API load benchmark (issue 12, acceptance 6): a real `viridian serve` with 3 VMs whose workers boot the
// bundled guest, then (a) `GET /v1/vms` over loopback TCP with a bearer token at a fixed offered rate (open
// loop: requests are sent on schedule whatever the answers do), with p50/p99/max latency; (b) the same
// request closed-loop with 16 in flight, for the sustained rate (both once the guests are at their prompt,
// unless VIRIDIAN_BENCH_API_DURING_BOOT=1); (c) start and stop (turn-off) jobs of a 4th VM, end to end until
// the job completes, (e) with reads offered at the same rate meanwhile; (d) the service's resident memory.
// Goal (issue 12): p99 below 50 ms at 500 requests/s for reads while guests run. Figures go to docs/spec.md
// with the machine's load.
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { routePath } from "../src/api/routes.js";
import { Console, TestService } from "../tests/service/harness.js";

const RATE = Number(process.env.VIRIDIAN_BENCH_API_RATE ?? 500);
// Measured seconds, after the warm-up below: the service's first second of reads at this rate is cold code (V8
// compiling the request path as it runs: 0.07 s p99 with no guest, 0.17-0.4 s with three just booted, measured
// in a CPU cgroup of its own on 2026-12-07); that is printed on its own and kept out of the sustained figure.
const SECONDS = Number(process.env.VIRIDIAN_BENCH_API_SECONDS ?? 30);
// Seconds of the same open loop before the measured one (VIRIDIAN_BENCH_API_WARMUP=0 measures the cold service).
const WARMUP = Number(process.env.VIRIDIAN_BENCH_API_WARMUP ?? 5);
const CYCLES = Number(process.env.VIRIDIAN_BENCH_API_CYCLES ?? 5);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

function describe(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(1)} ms, p99 ${percentile(s, 99).toFixed(1)} ms, max ${s.at(-1)?.toFixed(1)} ms`;
}

function load(): string {
  return `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")} on ${cpus().length} CPUs`;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function benchApi(): Promise<void> {
  // The default rate limit (per principal) is below what the bench offers.
  const svc = new TestService("bench-api", { rateLimit: { max: 1_000_000, windowSeconds: 60 } });
  console.log(`api: before: ${load()}`);
  try {
    await svc.start();
    const token = await svc.principal("bench", "Administrator", "host");
    for (const name of ["g1", "g2", "g3", "cycler"])
      await svc.ok("POST", routePath("createVm"), { body: { name, memoryBytes: 128 * 1024 * 1024 } });
    for (const name of ["g1", "g2", "g3"]) {
      const j = await svc.job(await svc.ok("POST", routePath("startVm", { vm: name })));
      if (j.state !== "completed") throw new Error(`${name} did not start: ${JSON.stringify(j.error)}`);
    }
    console.log(`api: 3 VMs started; ${load()}`);
    // Measured once the guests have booted (idle at their shell): three guests booting at once on a small
    // machine take all its CPU for a while, and that is a different figure (VIRIDIAN_BENCH_API_DURING_BOOT=1).
    if (process.env.VIRIDIAN_BENCH_API_DURING_BOOT !== "1") {
      const t = performance.now();
      await Promise.all(
        ["g1", "g2", "g3"].map(async (name) => {
          const con = await Console.open(svc, name);
          await con.waitFor("viridian-guest:~ # ");
          con.close();
        }),
      );
      console.log(
        `api: the 3 guests reached their shell prompt ${((performance.now() - t) / 1000).toFixed(1)} s later`,
      );
    }
    console.log(
      `api: 3 VMs running (guests idle at their prompt unless measured during boot); service RSS ${rssMiB(svc.child!.pid!).toFixed(0)} MiB; ${load()}`,
    );

    // (a) open loop at RATE: first a warm-up of WARMUP seconds (the service's request path is still cold
    // code then: V8 compiles it as it runs, and the first second's queue took 0.2-0.4 s to drain on an idle
    // machine), printed on its own; then the measured SECONDS.
    const path = routePath("listVms");
    const openLoop = async (
      seconds: number,
      until: () => boolean = () => false,
    ): Promise<{ lat: number[]; firstSecond: number[]; sent: number; errors: number; elapsed: number }> => {
      const lat: number[] = [];
      const firstSecond: number[] = [];
      let errors = 0;
      const inflight: Promise<void>[] = [];
      const t0 = performance.now();
      let sent = 0;
      while (performance.now() - t0 < seconds * 1000 && !until()) {
        const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
        while (sent < due) {
          sent++;
          const start = performance.now();
          inflight.push(
            svc.call("GET", path, { token }).then(
              (r) => {
                if (r.status !== 200) errors++;
                lat.push(performance.now() - start);
                if (start - t0 < 1000) firstSecond.push(performance.now() - start);
              },
              () => void errors++,
            ),
          );
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await Promise.all(inflight);
      return { lat, firstSecond, sent, errors, elapsed: (performance.now() - t0) / 1000 };
    };
    if (WARMUP > 0) {
      const w = await openLoop(WARMUP);
      console.log(
        `api: warm-up, GET /v1/vms offered ${RATE}/s for ${WARMUP} s (not counted below): ${w.errors} errors, ${describe(w.lat)}; its first second: ${describe(w.firstSecond)}`,
      );
    }
    const m = await openLoop(SECONDS);
    console.log(
      `api: GET /v1/vms offered ${RATE}/s for ${SECONDS} s: ${(m.sent / m.elapsed).toFixed(0)}/s sent, ${m.errors} errors, ${describe(m.lat)}`,
    );
    console.log(`api:   of which the first second: ${describe(m.firstSecond)}`);

    // (b) closed loop, 16 in flight.
    let done = 0;
    const closed: number[] = [];
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (performance.now() - t1 < 5000) {
          const s = performance.now();
          await svc.call("GET", path, { token });
          closed.push(performance.now() - s);
          done++;
        }
      }),
    );
    console.log(
      `api: GET /v1/vms closed loop (16 in flight): ${(done / ((performance.now() - t1) / 1000)).toFixed(0)}/s, ${describe(closed)}`,
    );

    // (c) start/stop jobs, with (e) the same reads at RATE meanwhile: a job writes the VM's state files and
    // spawns or reaps a process, and reads must not wait behind that.
    const starts: number[] = [];
    const stops: number[] = [];
    let cycling = true;
    const during = openLoop(3600, () => !cycling);
    for (let i = 0; i < CYCLES; i++) {
      let s = performance.now();
      const j = await svc.job(await svc.ok("POST", routePath("startVm", { vm: "cycler" }), { token }), {
        token,
      });
      if (j.state !== "completed") throw new Error(`start: ${JSON.stringify(j.error)}`);
      starts.push(performance.now() - s);
      s = performance.now();
      const k = await svc.job(
        await svc.ok("POST", routePath("stopVm", { vm: "cycler" }), { token, body: { turnOff: true } }),
        { token },
      );
      if (k.state !== "completed") throw new Error(`stop: ${JSON.stringify(k.error)}`);
      stops.push(performance.now() - s);
    }
    cycling = false;
    const d = await during;
    console.log(`api: start job (worker spawned, VM built, running) x${CYCLES}: ${describe(starts)}`);
    console.log(`api: stop job (turn off, worker gone) x${CYCLES}: ${describe(stops)}`);
    console.log(
      `api: GET /v1/vms offered ${RATE}/s during those jobs (${d.elapsed.toFixed(1)} s): ${d.errors} errors, ${describe(d.lat)}`,
    );
    console.log(`api: service RSS after the run ${rssMiB(svc.child!.pid!).toFixed(0)} MiB; ${load()}`);
  } finally {
    await svc.close();
  }
}

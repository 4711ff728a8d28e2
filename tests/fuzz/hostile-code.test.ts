// Acceptance: one million random instruction byte sequences (half in ring 0, half in ring 3 of a long-mode
// sandbox) each end in an architectural outcome or a VM exit: run() never throws and never hangs.
// VIRIDIAN_FUZZ_SEQUENCES overrides the count; VIRIDIAN_FUZZ_SEED the seed. Block translation: the first
// worker translates every block on its first execution (threshold 0: hostile code runs translated), the
// second uses the default threshold (only hot code is translated, as in production); translating every
// random sequence costs about three times the interpreter's time, so not every worker does it.
// VIRIDIAN_JIT_THRESHOLD sets one threshold for all workers (-1: interpreter only).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { FuzzResult } from "./fuzz-core.js";

const TOTAL = Number(process.env.VIRIDIAN_FUZZ_SEQUENCES ?? 1_000_000);
const SEED = Number(process.env.VIRIDIAN_FUZZ_SEED ?? 0x5eed1234);

function runWorker(seed: number, count: number, jitThreshold: number | undefined): Promise<FuzzResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL("./fuzz-worker.js", import.meta.url), {
      workerData: { seed, count, jitThreshold },
    });
    w.once("message", (m: FuzzResult) => resolve(m));
    w.once("error", reject);
  });
}

function threshold(worker: number): number | undefined {
  const env = process.env.VIRIDIAN_JIT_THRESHOLD;
  if (env !== undefined && env !== "") return Number(env);
  return worker === 0 ? 0 : undefined;
}

test(
  `${TOTAL} random instruction sequences in ring 0 and ring 3 end architecturally`,
  { timeout: 900_000 },
  async () => {
    const workers = Math.max(1, Math.min(2, availableParallelism()));
    const share = Math.ceil(TOTAL / workers);
    const results = await Promise.all(
      Array.from({ length: workers }, (_, i) =>
        runWorker(SEED + i * 0x9e3779b9, Math.min(share, TOTAL - i * share), threshold(i)),
      ),
    );
    const merged: FuzzResult = { sequences: 0, outcomes: {}, exits: {}, failures: [] };
    for (const r of results) {
      merged.sequences += r.sequences;
      merged.failures.push(...r.failures);
      for (const [k, v] of Object.entries(r.outcomes)) merged.outcomes[k] = (merged.outcomes[k] ?? 0) + v;
      for (const [k, v] of Object.entries(r.exits)) merged.exits[k] = (merged.exits[k] ?? 0) + v;
    }
    const sorted = (m: Record<string, number>): string =>
      Object.entries(m)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k}=${v}`)
        .join(" ");
    const th = Array.from({ length: workers }, (_, i) => threshold(i) ?? "default").join("/");
    console.log(
      `fuzz: seed 0x${SEED.toString(16)}, ${merged.sequences} sequences on ${workers} threads ` +
        `(translation threshold ${th})`,
    );
    // Exceptions 0-31 by vector; vectors 32-255 can only come from INT n, so they are summed.
    const outcomes: Record<string, number> = {};
    for (const [k, v] of Object.entries(merged.outcomes)) {
      const vector = /^#(\d+)$/.exec(k);
      const key = vector && Number(vector[1]) >= 32 ? "int-n(32-255)" : k;
      outcomes[key] = (outcomes[key] ?? 0) + v;
    }
    console.log(`fuzz: outcomes ${sorted(outcomes)}`);
    console.log(`fuzz: exits ${sorted(merged.exits)}`);
    assert.deepEqual(merged.failures, [], merged.failures.slice(0, 5).join("\n\n"));
    assert.equal(merged.sequences, TOTAL);
  },
);

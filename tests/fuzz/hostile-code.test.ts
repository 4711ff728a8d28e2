// Acceptance: one million random instruction byte sequences (half in ring 0, half in ring 3 of a long-mode
// sandbox) each end in an architectural outcome or a VM exit: run() never throws and never hangs.
// VIRIDIAN_FUZZ_SEQUENCES overrides the count; VIRIDIAN_FUZZ_SEED the seed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { FuzzResult } from "./fuzz-core.js";

const TOTAL = Number(process.env.VIRIDIAN_FUZZ_SEQUENCES ?? 1_000_000);
const SEED = Number(process.env.VIRIDIAN_FUZZ_SEED ?? 0x5eed1234);

function runWorker(seed: number, count: number): Promise<FuzzResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL("./fuzz-worker.js", import.meta.url), { workerData: { seed, count } });
    w.once("message", (m: FuzzResult) => resolve(m));
    w.once("error", reject);
  });
}

test(
  `${TOTAL} random instruction sequences in ring 0 and ring 3 end architecturally`,
  { timeout: 900_000 },
  async () => {
    const workers = Math.max(1, Math.min(2, availableParallelism()));
    const share = Math.ceil(TOTAL / workers);
    const results = await Promise.all(
      Array.from({ length: workers }, (_, i) =>
        runWorker(SEED + i * 0x9e3779b9, Math.min(share, TOTAL - i * share)),
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
    console.log(`fuzz: seed 0x${SEED.toString(16)}, ${merged.sequences} sequences on ${workers} threads`);
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

// Acceptance 4 and 5 of issue 4: a hostile guest issues a million random hypercalls, synthetic-MSR writes and
// SynIC page programming sequences; the host never throws and, in deterministic mode, two runs end in the
// same state hash. Isolation: two partitions in one process; crafted addresses in one never reach the other.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assembleHvKernel, bootPartition, runPartition, stateHash } from "./harness.js";
import type { Partition } from "../../src/hv/partition.js";

const OPS = Number(process.env.VIRIDIAN_HV_HOSTILE_OPS ?? 1_000_000);

/** Root ports 1-4: messages come back as SynIC messages, signals as event flags, on guest-chosen SINTs. */
function connectRoot(p: Partition): { posted: number; signalled: number; crashes: number } {
  const counts = { posted: 0, signalled: 0, crashes: 0 };
  for (let c = 1; c <= 4; c++) {
    p.registerMessagePort(c, (vp, type, payload) => {
      counts.posted++;
      const sint = (payload[0] ?? 0) & 15;
      return p.postMessageToGuest(vp, sint, type, payload.subarray(0, (payload[1] ?? 0) % 241));
    });
    p.registerEventPort(
      c,
      (vp, flag) => {
        counts.signalled++;
        p.signalGuestEvent(vp, c, flag * 97 + c);
      },
      16,
    );
  }
  p.onGuestCrash = () => void counts.crashes++;
  return counts;
}

function hostileRun(
  ops: number,
  seed: string,
): { hash: string; output: string; stop: string; retired: number } {
  const image = assembleHvKernel("hv-hostile", { OPS: ops, SEED: seed });
  const p = bootPartition(image, { memory: 16 << 20, features: 0x80510, hints: 0xe24 });
  const counts = connectRoot(p);
  const r = runPartition(p, ops * 400);
  return {
    hash: stateHash(p),
    output: `${r.output} ${JSON.stringify(counts)}`,
    stop: r.stop,
    retired: r.retired,
  };
}

test(`hostile guest: ${OPS} random hypercalls, MSR writes and SynIC programming; deterministic state hash`, () => {
  const a = hostileRun(OPS, "0x123456789abcdef1");
  assert.equal(a.stop, "debug-exit", `${a.stop}: ${a.output}`);
  const b = hostileRun(OPS, "0x123456789abcdef1");
  assert.equal(b.stop, "debug-exit");
  assert.equal(b.hash, a.hash, "same seed, same final state");
  assert.equal(b.retired, a.retired);
  const c = hostileRun(Math.min(OPS, 20_000), "0x0fedcba987654321");
  assert.equal(c.stop, "debug-exit");
  assert.notEqual(c.hash, a.hash, "the hash does depend on what ran");
  console.log(`hostile: ${OPS} ops, ${a.retired} instructions, ${a.output.trim()}, hash ${a.hash}`);
});

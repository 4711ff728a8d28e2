// Conformance of the emulated processor against the host CPU: every user-mode form of the opcode table,
// with randomized registers, flags, memory operands and prefixes (tests/conformance/generate.ts), is run
// natively by runner.c (compiled here with gcc, one child process per batch of forms) and in the emulator
// (emulator-side.ts, one Cpu reset per case); registers, RFLAGS (minus the SDM's undefined flags), RIP,
// the data pages and the exception (vector, error code, CR2) must all match, except where the SDM leaves the
// outcome to the implementation: there the host may show exactly the alternatives documented in
// model-specific.ts, and the emulator must show Viridian's own choice. Prints a table of forms, cases and
// mismatches, with details of the first mismatches of each form, and names the host processor.
// Knobs: VIRIDIAN_CONF_SEED (default below), VIRIDIAN_CONF_CASES (cases per form, default 200, min 200),
// VIRIDIAN_CONF_FILTER (substring of form names), VIRIDIAN_FULL=1 (2000 cases per form).
// Spec: Intel SDM Vol. 2 (instruction semantics, "Flags Affected"), Vol. 3A ch. 6 (exceptions).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import type { Feature } from "../../src/x86/opcode-table.js";
import {
  decodeResults,
  describeCase,
  encodeBatch,
  normalize,
  type Outcome,
  type RawResult,
  VECTOR_NAMES,
} from "./batch.js";
import { EmulatedMachine } from "./emulator-side.js";
import { type Case, generateAll, selectForms } from "./generate.js";
import { hostProcessor } from "./host-processor.js";
import { judge, type Rerun, type Verdict } from "./model-specific.js";

const DEFAULT_SEED = 0x5eed2026;
const MIN_CASES = 200;

/** /proc/cpuinfo flag names for the table's features. */
const CPUINFO_FLAG: Record<Feature, string> = {
  LM: "lm",
  CX8: "cx8",
  CX16: "cx16",
  CMOV: "cmov",
  POPCNT: "popcnt",
  LZCNT: "abm",
  BMI1: "bmi1",
  MOVBE: "movbe",
  RDRAND: "rdrand",
  RDTSCP: "rdtscp",
  SYSCALL: "syscall",
  SEP: "sep",
  CLFSH: "clflush",
  SSE2: "sse2",
  INVPCID: "invpcid",
  LAHF64: "lahf_lm",
  FXSR: "fxsr",
  MMX: "mmx",
  SSE: "sse",
  SSE3: "pni",
  SSSE3: "ssse3",
  SSE41: "sse4_1",
  SSE42: "sse4_2",
  FPU: "fpu",
  XSAVE: "xsave",
};

function hostFlags(): Set<string> {
  const text = readFileSync("/proc/cpuinfo", "utf8");
  const line = text.split("\n").find((l) => l.startsWith("flags")) ?? "";
  return new Set(
    line
      .replace(/^flags\s*:/, "")
      .trim()
      .split(/\s+/),
  );
}

const isX64Linux = process.platform === "linux" && process.arch === "x64";

/**
 * Cases per batch: run natively by one runner process and emulated, judged and dropped together, so memory
 * stays flat and the runner's hang guard (alarm(120) in runner.c, and the spawn timeout) holds on a loaded
 * host whatever VIRIDIAN_CONF_CASES asks for.
 */
const BATCH = 50_000;

/** The runner compiled once (gcc) into a temporary directory; `run` executes one batch on the host CPU. */
function nativeRunner(): { run(cases: Case[]): RawResult[]; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), "viridian-conf-"));
  const exe = join(dir, "runner");
  const src = new URL("../../../tests/conformance/runner.c", import.meta.url).pathname;
  execFileSync("gcc", ["-O1", "-fPIE", "-pie", "-o", exe, src], { stdio: "pipe" });
  return {
    run(cases) {
      const r = spawnSync(exe, [], { input: encodeBatch(cases), maxBuffer: 1 << 30, timeout: 120_000 });
      assert.equal(
        r.status,
        0,
        `runner failed (status ${r.status}, signal ${r.signal}): ${r.stderr?.toString()}`,
      );
      return decodeResults(r.stdout, cases.length);
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test(
  "conformance: emulated processor vs host CPU, every user-mode form",
  { skip: !isX64Linux && "needs x86-64 Linux" },
  () => {
    const seed = Number(process.env.VIRIDIAN_CONF_SEED ?? DEFAULT_SEED) >>> 0;
    const perForm = Math.max(
      MIN_CASES,
      Number(process.env.VIRIDIAN_CONF_CASES ?? (process.env.VIRIDIAN_FULL === "1" ? 2000 : MIN_CASES)),
    );
    const filter = process.env.VIRIDIAN_CONF_FILTER;
    const flags = hostFlags();
    const probe = new Cpu(new GuestMemory(1 << 16));
    const { forms: all, skipped } = selectForms(
      (f) => flags.has(CPUINFO_FLAG[f]),
      (f) => probe.cpuid.has(f as Parameters<typeof probe.cpuid.has>[0]),
    );
    const forms = filter === undefined ? all : all.filter((f) => f.name.includes(filter));
    const host = hostProcessor();
    console.log(
      `conformance: seed 0x${seed.toString(16)}, ${perForm} cases per form, ${forms.length} forms, host ${host}`,
    );

    const native = nativeRunner();
    const emu = new EmulatedMachine();
    const env: Rerun = {
      rerun: (v) => {
        const r = emu.run(v);
        return typeof r === "string" ? r : normalize(r, v);
      },
    };
    const stats = forms.map(() => ({
      cases: 0,
      mismatches: 0,
      outcomes: new Map<string, number>(),
      shown: [] as string[],
      kinds: new Set<string>(),
    }));
    const accepted = new Map<string, number>();
    let total = 0;
    let count = 0;
    let rerunNatively = 0;
    const formsPerBatch = Math.max(1, Math.floor(BATCH / perForm));
    try {
      for (let g = 0; g < forms.length; g += formsPerBatch) {
        // generateAll seeds each form by its name: a batch of forms has exactly the cases of a whole run.
        const group = forms.slice(g, g + formsPerBatch);
        const cases = generateAll(group, perForm, seed);
        const raw = native.run(cases);
        const emulated: Array<Outcome | string> = cases.map((c) => {
          const er = emu.run(c);
          return typeof er === "string" ? er : normalize(er, c);
        });
        const verdict = (i: number): Verdict => {
          const c = cases[i]!;
          const er = emulated[i]!;
          if (typeof er === "string") return { diffs: [er], accepted: [] };
          return judge(c, group[c.form]!, normalize(raw[i]!, c), er, env);
        };
        // The host is the reference, not the subject: a case that differs is run natively once more, so
        // that a disturbance of the reference on a loaded host (seen: a spurious #UD at the first instruction
        // of an SSE case) is not reported as an emulator bug. The emulator's result is kept from the first run.
        const differing = cases.map((_, i) => i).filter((i) => verdict(i).diffs.length > 0);
        const again = differing.length > 0 ? native.run(differing.map((i) => cases[i]!)) : [];
        differing.forEach((i, j) => (raw[i] = again[j]!));
        rerunNatively += differing.length;
        count += cases.length;
        cases.forEach((c, i) => {
          const st = stats[g + c.form]!;
          st.cases++;
          const nat = normalize(raw[i]!, c);
          const key = VECTOR_NAMES[nat.vector] ?? `v${nat.vector}`;
          st.outcomes.set(key, (st.outcomes.get(key) ?? 0) + 1);
          const { diffs: diff, accepted: used } = verdict(i);
          for (const id of used) accepted.set(id, (accepted.get(id) ?? 0) + 1);
          if (diff.length > 0) {
            st.mismatches++;
            total++;
            // Show the first case of each kind of difference (up to four kinds per form).
            const kind = diff.map((x) => x.split(" ")[0]).join("+");
            if (!st.kinds.has(kind) && st.kinds.size < 4 && st.kinds.add(kind))
              st.shown.push(`    ${describeCase(c)}\n      native vs emulated: ${diff.join("; ")}`);
          }
        });
      }
    } finally {
      native.dispose();
    }
    if (rerunNatively > 0) console.log(`conformance: ${rerunNatively} differing case(s) re-run natively`);

    const w = Math.max(...forms.map((f) => f.name.length), 4);
    const lines = [`${"form".padEnd(w)}  cases  mismatches  native outcomes`];
    forms.forEach((f, i) => {
      const st = stats[i]!;
      const oc = [...st.outcomes].map(([k, n]) => `${k} ${n}`).join(", ");
      lines.push(
        `${f.name.padEnd(w)}  ${String(st.cases).padStart(5)}  ${String(st.mismatches).padStart(10)}  ${oc}`,
      );
    });
    lines.push(
      `${forms.length} forms, ${count} cases, ${total} mismatches (seed 0x${seed.toString(16)}, host ${host})`,
    );
    lines.push(
      `documented model-specific alternatives this host showed: ${
        [...accepted].map(([id, n]) => `${id} ${n}`).join(", ") || "none"
      }`,
    );
    lines.push(`skipped rows: ${skipped.map((s) => `${s.name} [${s.reason}]`).join("; ")}`);
    const bad = forms.map((f, i) => ({ f, st: stats[i]! })).filter((x) => x.st.mismatches > 0);
    for (const { f, st } of bad)
      lines.push(`MISMATCH ${f.name}: ${st.mismatches}/${st.cases}\n${st.shown.join("\n")}`);
    console.log(lines.join("\n"));

    for (const st of stats) assert.ok(st.cases >= MIN_CASES);
    assert.equal(
      total,
      0,
      `${total} mismatches in ${bad.length} forms on ${host}: ${bad.map((x) => x.f.name).join(" | ")}`,
    );
  },
);

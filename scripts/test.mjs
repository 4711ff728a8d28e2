// The project's test command (`npm test`): type-check and build (the web UI's bundle too), lint (eslint, prettier, import rules),
// then run every compiled *.test.js under Node's own test runner, whose summary is the last output line.
// VIRIDIAN_TEST_FILTER=substring limits the files run (for local iteration; CI runs everything).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function step(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args.join(" ")} failed (status ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

function testFiles(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const skipLint = process.env.VIRIDIAN_SKIP_LINT === "1";
step("npx", ["tsc", "-p", "tsconfig.json"]);
step(process.execPath, ["scripts/build-web.mjs"]);
if (!skipLint) {
  step("npx", ["eslint", "."]);
  step("npx", ["prettier", "--check", "--log-level", "warn", "."]);
  step("npx", ["depcruise", "src", "--config", ".dependency-cruiser.cjs", "--output-type", "err"]);
}
const filter = process.env.VIRIDIAN_TEST_FILTER;
const files = [...testFiles("dist/src"), ...testFiles("dist/tests")]
  .filter((f) => !filter || f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
// Liftoff only, as the CLI runs (src/host/wasm-engine.ts); the test runner passes it to every test process.
// Test files run two at a time (VIRIDIAN_TEST_CONCURRENCY overrides): one file at a time left one of CI's two
// cores idle through most guest boots; tests assert no timings, so sharing the machine changes no result.
const concurrency = process.env.VIRIDIAN_TEST_CONCURRENCY ?? "2";
const args = [
  "--liftoff-only",
  "--test",
  `--test-concurrency=${concurrency}`,
  "--test-reporter=spec",
  ...files,
];
const r = spawnSync(process.execPath, args, {
  stdio: "inherit",
});
process.exit(r.status ?? 1);

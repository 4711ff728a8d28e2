// Entry of `npm run bench`: runs every benchmark, or those named with --only (comma-separated), e.g.
// `npm run bench -- --only storage`. One module per benchmark; each exports run() or runs on import.
const benchmarks: Record<string, () => Promise<unknown>> = {
  "reg64-representation": () => import("./reg64-representation.js"),
  storage: async () => (await import("./storage.js")).run(),
};

const i = process.argv.indexOf("--only");
const only = i >= 0 ? (process.argv[i + 1] ?? "").split(",") : Object.keys(benchmarks);
for (const name of only) {
  const b = benchmarks[name];
  if (!b) {
    console.error(`unknown benchmark '${name}' (known: ${Object.keys(benchmarks).join(", ")})`);
    process.exit(2);
  }
  console.log(`== ${name}`);
  await b();
}

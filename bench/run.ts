// `npm run bench`: runs the benchmarks (one module per benchmark) and prints their figures, each next to its
// peer measured in the same run (QEMU TCG for the processor, the Linux boot, the guest's disks and network, plain file
// I/O for storage); docs/spec.md records them. `npm run bench -- mips storage` runs only the named ones; `reg64`
// (decision 0001) and `api` (a service with 3 running guests, issue 12) run only on request.
import { availableParallelism, loadavg } from "node:os";
import { tuneWasmEngine } from "../src/host/wasm-engine.js";

tuneWasmEngine();

const benchmarks: Record<string, () => Promise<void>> = {
  mips: async () => void (await (await import("./mips.js")).benchMips()),
  "cpu-loop": async () => {
    for (const r of (await import("./cpu-loop.js")).benchCpuLoop())
      console.log(`cpu-loop: ${r.name} ${r.mips.toFixed(1)} MIPS`);
  },
  chipset: async () => {
    for (const r of (await import("./chipset-io.js")).benchChipset())
      console.log(`chipset: ${r.name} ${(r.perSecond / 1e6).toFixed(2)} M/s`);
  },
  device: async () => {
    for (const r of (await import("./device-access.js")).benchDeviceAccess())
      console.log(`device: ${r.name} ${r.nsPerAccess.toFixed(0)} ns CPU per access`);
  },
  storage: async () => (await import("./storage.js")).run(),
  boot: async () => void (await (await import("./boot.js")).benchBoot()),
  disk: async () => (await import("./disk.js")).benchDisk(),
  net: async () => (await import("./net.js")).benchNet(),
  api: async () => (await import("./api.js")).benchApi(),
  reg64: async () => void (await import("./reg64-representation.js")),
};
const onRequest = new Set(["reg64", "api"]);

const args = process.argv.slice(2).filter((a) => a !== "--only");
const names =
  args.length > 0
    ? args.flatMap((a) => a.split(","))
    : Object.keys(benchmarks).filter((n) => !onRequest.has(n));
// Timings on a shared machine are only comparable when it is idle: say how busy it was.
console.log(`bench: load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`);
for (const name of names) {
  const run = benchmarks[name];
  if (!run) {
    console.error(`unknown benchmark '${name}' (known: ${Object.keys(benchmarks).join(", ")})`);
    process.exit(2);
  }
  console.log(`== ${name}`);
  await run();
}

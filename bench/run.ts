// `npm run bench`: runs the benchmarks (one module per benchmark) and prints their figures; docs/spec.md
// records them. With no arguments: the MIPS comparison with QEMU and the interpreter micro-loops.
// `npm run bench -- mips` (or `cpu-loop`, `chipset`, `reg64`) runs one; reg64 is the measurement of decision 0001.
import { availableParallelism, loadavg } from "node:os";
import { benchMips } from "./mips.js";
import { benchCpuLoop } from "./cpu-loop.js";
import { benchChipset } from "./chipset-io.js";

const which = process.argv.slice(2);
const all = which.length === 0;
// Timings on a shared machine are only comparable when it is idle: say how busy it was.
console.log(`bench: load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`);
if (all || which.includes("mips")) await benchMips();
if (all || which.includes("cpu-loop")) {
  for (const r of benchCpuLoop()) console.log(`cpu-loop: ${r.name} ${r.mips.toFixed(1)} MIPS`);
}
if (all || which.includes("chipset")) {
  for (const r of benchChipset()) console.log(`chipset: ${r.name} ${(r.perSecond / 1e6).toFixed(2)} M/s`);
}
if (which.includes("reg64")) await import("./reg64-representation.js");

// `npm run bench`: runs the benchmarks (one module per benchmark) and prints their figures; docs/spec.md
// records them. `npm run bench -- reg64` runs the register-representation measurement of decision 0001.
import { benchMips } from "./mips.js";

const which = process.argv.slice(2);
if (which.length === 0 || which.includes("mips")) await benchMips();
if (which.includes("reg64")) await import("./reg64-representation.js");

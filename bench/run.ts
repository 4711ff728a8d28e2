// `npm run bench`: runs each benchmark module in turn and prints its figures. One file per benchmark.
import { tmpdir } from "node:os";
import { benchVhdx } from "./vhdx.js";

const only = process.argv[2];

if (!only || only === "reg64") {
  console.log("== 64-bit register representation (decision 0001)");
  await import("./reg64-representation.js");
}
if (!only || only === "vhdx") {
  console.log("== dynamic VHDX vs raw file, 4 KiB I/O (MB/s)");
  for (const [k, v] of Object.entries(await benchVhdx(tmpdir())))
    console.log(`${k.padEnd(34)} ${v.toFixed(1)}`);
}

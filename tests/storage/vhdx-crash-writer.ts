// Owns: the child process of the VHDX crash test: opens an image read-write and runs the seeded operation
// stream, printing "S i" before operation i starts and "F i" once the flush at operation i has resolved.
// With "--open-only" it only opens (replaying the log) and closes. Killed with SIGKILL at random moments.
// Must not: be imported from src/ (test-only); buffer its reports (stdout to a pipe is synchronous on Linux).
// Spec: the Disk contract (durable after flush) over MS-VHDX section 2.3.

import { NodeOpener } from "./node-opener.js";
import { crashOps, sectorContent } from "./vhdx-crash-ops.js";
import { vhdxFormat } from "../../src/storage/vhdx/format.js";

const [path, seedText, mode] = process.argv.slice(2);
const disk = await vhdxFormat.open(new NodeOpener(), path!, { readOnly: false });
if (mode === "--open-only") {
  await disk.close();
  process.stdout.write("D\n");
  process.exit(0);
}
process.stdout.write("R\n");
const ops = crashOps(Number(seedText), 100000);
for (let i = 0; i < ops.length; i++) {
  const op = ops[i]!;
  process.stdout.write(`S ${i}\n`);
  if (op.kind === "flush") {
    await disk.flush();
    process.stdout.write(`F ${i}\n`);
  } else if (op.kind === "trim") {
    await disk.trim(op.lba, op.count);
  } else {
    const b = new Uint8Array(op.count * 512);
    for (let s = 0; s < op.count; s++) sectorContent(i + 1, op.lba + s, b.subarray(s * 512, s * 512 + 512));
    await disk.write(op.lba, b);
  }
}
await disk.close();

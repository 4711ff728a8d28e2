// Owns: the child process of the VHDX crash test: opens an image read-write and runs the seeded operation
// stream, appending "S i" to a report file before operation i starts and "F i" once the flush at operation i
// has resolved; "R" on stdout says the image is open. With "--open-only" it only opens (replaying the log) and
// closes. Killed with SIGKILL at random moments.
// Must not: be imported from src/ (test-only); buffer its reports: process.stdout may queue writes in the
// process, which SIGKILL loses, so reports are write(2) calls on a file (they survive in the page cache).
// Spec: the Disk contract (durable after flush) over MS-VHDX section 2.3.

import { openSync, writeSync } from "node:fs";
import { NodeFileOpener as NodeOpener } from "../../src/host/node-files.js";
import { crashOps, sectorContent } from "./vhdx-crash-ops.js";
import { vhdxFormat } from "../../src/storage/vhdx/format.js";

const [path, seedText, reportPath, mode] = process.argv.slice(2);
const report = openSync(reportPath!, "a");
const say = (line: string) => writeSync(report, line + "\n");
const disk = await vhdxFormat.open(new NodeOpener(), path!, { readOnly: false });
if (mode === "--open-only") {
  await disk.close();
  say("D");
  process.exit(0);
}
writeSync(1, "R\n");
const ops = crashOps(Number(seedText), 100000);
for (let i = 0; i < ops.length; i++) {
  const op = ops[i]!;
  say(`S ${i}`);
  if (op.kind === "flush") {
    await disk.flush();
    say(`F ${i}`);
  } else if (op.kind === "trim") {
    await disk.trim(op.lba, op.count);
  } else {
    const b = new Uint8Array(op.count * 512);
    for (let s = 0; s < op.count; s++) sectorContent(i + 1, op.lba + s, b.subarray(s * 512, s * 512 + 512));
    await disk.write(op.lba, b);
  }
}
await disk.close();

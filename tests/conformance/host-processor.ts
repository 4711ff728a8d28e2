// Owns: naming the host processor in the reports of the tests that compare the emulator with it (conformance,
// simd-host, softfloat, x87): `model name`, vendor, family, model and stepping from /proc/cpuinfo, so a
// mismatch seen on another machine says which processor showed it.
// Must not: decide anything from the host's identity (which outcomes are accepted is model-specific.ts's
// table, the same on every host).
// Spec: Linux /proc/cpuinfo fields (vendor_id, cpu family, model, model name, stepping).

import { readFileSync } from "node:fs";

/** "model name (vendor family F model M stepping S)" of the first processor listed, e.g. for failure messages. */
export function hostProcessor(): string {
  let text: string;
  try {
    text = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return `${process.arch} host (no /proc/cpuinfo)`;
  }
  const first = text.split(/\n\s*\n/)[0] ?? "";
  const field = (name: string): string => {
    const line = first.split("\n").find((l) => l.split(":")[0]?.trim() === name);
    return line === undefined ? "?" : line.slice(line.indexOf(":") + 1).trim();
  };
  return `${field("model name")} (${field("vendor_id")} family ${field("cpu family")} model ${field("model")} stepping ${field("stepping")})`;
}

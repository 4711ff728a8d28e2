// Runs `viridian run` (bin/viridian.js) as a child process with the given arguments, collecting its serial
// output (stdout), its stderr and its exit status, for the tests that compare our runs with QEMU's.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const VIRIDIAN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));

export interface ViridianResult {
  output: string;
  stderr: string;
  status: number | null;
}

/** Runs `viridian run`; `jitThreshold` sets VIRIDIAN_JIT_THRESHOLD (0: translate on first execution). */
export function runViridian(args: string[], jitThreshold?: number): Promise<ViridianResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    if (jitThreshold !== undefined) env.VIRIDIAN_JIT_THRESHOLD = String(jitThreshold);
    const child = spawn(process.execPath, [VIRIDIAN, "run", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (status) =>
      resolve({
        output: Buffer.concat(out).toString("latin1"),
        stderr: Buffer.concat(err).toString("utf8"),
        status,
      }),
    );
  });
}

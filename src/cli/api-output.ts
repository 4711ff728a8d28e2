// Owns: how the API verbs print: human tables (columns padded to their widest cell), `--json` documents,
// progress bars for jobs on a terminal, and the message + exit status of an API error.
// Must not: call the API (api-client.ts does) or decide what a verb prints (each verb does).
// Spec: README.md "Exit statuses".

import type { Job } from "../api/schemas.js";
import { CliApiError, EXIT } from "./api-client.js";

export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return [line(headers), ...cells.map(line)].join("\n");
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + "\n");
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** A progress bar on stderr while a job runs (terminals only); returns the function that updates it. */
export function jobProgress(label: string): (job: Job) => void {
  const tty = process.stderr.isTTY === true;
  let last = -1;
  return (job) => {
    if (!tty) return;
    const done = job.state !== "running" && job.state !== "queued";
    const pct = done && job.state === "completed" ? 100 : job.percentComplete;
    if (pct === last && !done) return;
    last = pct;
    const width = 30;
    const fill = Math.round((pct / 100) * width);
    process.stderr.write(
      `\r${label} [${"#".repeat(fill)}${" ".repeat(width - fill)}] ${String(pct).padStart(3)}%`,
    );
    if (done) process.stderr.write(`  ${job.state}\n`);
  };
}

/** Prints an error the way every API verb does and returns its exit status. */
export function reportError(verb: string, e: unknown): number {
  if (e instanceof CliApiError) {
    console.error(`viridian ${verb}: ${e.message}${e.code !== "unreachable" ? ` (${e.code})` : ""}`);
    return e.exitStatus;
  }
  if (e instanceof UsageError) {
    console.error(`viridian ${verb}: ${e.message}`);
    return EXIT.usage;
  }
  console.error(`viridian ${verb}: ${(e as Error).message}`);
  return EXIT.failed;
}

export class UsageError extends Error {}

/** A finished job as a status: completed 0, anything else 1 with its error on stderr. */
export function jobStatus(verb: string, job: Job): number {
  if (job.state === "completed") return EXIT.ok;
  console.error(
    `viridian ${verb}: job ${job.state}: ${job.error?.message ?? "?"}${job.error ? ` (${job.error.code})` : ""}`,
  );
  return EXIT.failed;
}

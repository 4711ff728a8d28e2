// Owns: the `viridian` command line: parses the subcommand and hands the rest of argv to its module.
// Must not: implement any subcommand itself, or reach service internals (ARCHITECTURE.md import rules).
// Spec: none; the commands are documented in README.md.

import { readFileSync } from "node:fs";
import { tuneWasmEngine } from "../host/wasm-engine.js";
import type { Command } from "./command.js";

export type { Command } from "./command.js";

const commands: Record<string, () => Promise<Command>> = {};

/** Registers a subcommand module lazily, so `viridian vhd` does not load the processor and vice versa. */
export function registerCommand(name: string, load: () => Promise<Command>): void {
  commands[name] = load;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

async function usage(): Promise<string> {
  const lines = ["usage: viridian <command> [options]", "", "commands:"];
  for (const [name, load] of Object.entries(commands).sort()) {
    lines.push(`  ${name.padEnd(10)} ${(await load()).summary}`);
  }
  lines.push(
    `  ${"serve".padEnd(10)} run the VM service (its API serves the vm, auth, job and events commands)`,
  );
  lines.push(`  ${"version".padEnd(10)} print the version`);
  lines.push("", "Run `viridian <command> --help` for a command's options.");
  return lines.join("\n");
}

/** EX_IOERR (sysexits.h): the command's output could not be written. */
const STATUS_OUTPUT_FAILED = 74;

/**
 * A reader that closed our stdout or stderr (`viridian ... | head`) must never crash the process with an
 * unhandled 'error' event: the output is lost and, for stdout, the exit status says so. (`viridian run`
 * writes the guest's output itself and stops the VM when it fails; see src/host/fd-output.ts.)
 */
function guardStandardStreams(): void {
  process.stdout.on("error", () => {
    if (!process.exitCode) process.exitCode = STATUS_OUTPUT_FAILED;
  });
  process.stderr.on("error", () => undefined);
}

export async function main(argv: string[]): Promise<number> {
  tuneWasmEngine();
  guardStandardStreams();
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(await usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version") {
    console.log(`viridian ${version()}`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    console.error(`viridian: unknown command '${name}'\n\n${await usage()}`);
    return 2;
  }
  return (await load()).run(rest);
}

// Subcommands. Each module exports `command: Command`.
// (registrations are added here as subcommand modules land)
registerCommand("vhd", async () => (await import("./vhd-command.js")).command);
registerCommand("run", async () => (await import("./run-command.js")).command);
registerCommand("diverge", async () => (await import("./diverge-command.js")).command);
registerCommand("switch", async () => (await import("./switch-command.js")).command);
// Clients of the VM service (`viridian serve`, dispatched by bin/viridian.js): they speak its API only.
registerCommand("vm", async () => (await import("./vm-command.js")).command);
registerCommand("vmswitch", async () => (await import("./vmswitch-command.js")).command);
registerCommand("auth", async () => (await import("./auth-command.js")).command);
registerCommand("job", async () => (await import("./job-command.js")).jobCommand);
registerCommand("events", async () => (await import("./job-command.js")).eventsCommand);

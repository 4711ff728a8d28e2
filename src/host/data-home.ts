// Owns: where the service's data directory is by default, and where its API socket lies inside a data
// directory: both the service and the CLI (a client that must find the socket) need exactly the same answer.
// Must not: create or read anything.
// Spec: XDG Base Directory Specification ($XDG_DATA_HOME, default ~/.local/share).

import { homedir } from "node:os";
import { join } from "node:path";

/** The default data directory: $XDG_DATA_HOME/viridian, else ~/.local/share/viridian. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  return join(
    xdg !== undefined && xdg.startsWith("/") ? xdg : join(homedir(), ".local", "share"),
    "viridian",
  );
}

/** The API's UNIX socket inside a data directory. */
export function apiSocketPath(dataDir: string): string {
  return join(dataDir, "run", "api.sock");
}

// Owns: finding switches on this host (one directory each under the runtime directory) and talking to a
// running switch over its control socket: requests, and the pcap stream of a capture.
// Must not: change a switch except through its control protocol, or wait forever for an answer that a
// dead switch will never give (a refused or closed connection is an error at once).
// Spec: src/host/switch-daemon.ts (the control protocol).

import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetError } from "../net/net-error.js";
import { controlSocketOf, type ControlRequest } from "./switch-daemon.js";

/**
 * Where switches live: $VIRIDIAN_RUNTIME_DIR, else $XDG_RUNTIME_DIR/viridian, else a per-user directory in the
 * system's temporary directory.
 */
export function runtimeDir(): string {
  const env = process.env;
  if (env.VIRIDIAN_RUNTIME_DIR) return env.VIRIDIAN_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "viridian");
  return join(tmpdir(), `viridian-${process.getuid?.() ?? "user"}`);
}

export function checkSwitchName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(name)) {
    throw new NetError(
      "invalid-argument",
      `'${name}' is not a switch name (1-32 letters, digits, '_', '.', '-'; starting with a letter or digit)`,
    );
  }
  return name;
}

export function switchDir(name: string): string {
  return join(runtimeDir(), "switches", checkSwitchName(name));
}

export function switchNames(): string[] {
  try {
    return readdirSync(join(runtimeDir(), "switches")).sort();
  } catch {
    return [];
  }
}

function open(name: string, dir = switchDir(name)): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(controlSocketOf(dir));
    s.once("connect", () => {
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", () => reject(new NetError("not-found", `no switch '${name}' is running`)));
  });
}

/** Sends one request and returns the answer line's value (rejects with the switch's error message). */
export async function controlRequest<T>(
  name: string,
  request: ControlRequest,
  /** The switch's directory when it is not under this process's runtime directory (the service's switches). */
  dir?: string,
): Promise<T> {
  const s = await open(name, dir);
  return new Promise<T>((resolve, reject) => {
    let text = "";
    s.setEncoding("utf8");
    s.on("data", (c: string) => (text += c));
    s.on("error", () => undefined);
    s.on("close", () => {
      const line = text.split("\n")[0] ?? "";
      try {
        const v = JSON.parse(line) as T & { error?: string };
        if (typeof v === "object" && v && "error" in v && v.error)
          reject(new NetError("invalid-argument", v.error));
        else resolve(v);
      } catch {
        reject(new NetError("not-found", `switch '${name}' closed the connection without an answer`));
      }
    });
    s.end(`${JSON.stringify(request)}\n`);
  });
}

/**
 * Starts a capture of a port: resolves once the switch accepted it, with the socket now carrying pcap bytes
 * (the rest of the first chunk included) through `onBytes`. Closing the socket ends the capture.
 */
export async function openCapture(name: string, port: number, onBytes: (b: Buffer) => void): Promise<Socket> {
  const s = await open(name);
  return new Promise<Socket>((resolve, reject) => {
    let head = Buffer.alloc(0);
    let accepted = false;
    s.on("error", () => undefined);
    s.on("data", (c: Buffer) => {
      if (accepted) return onBytes(c);
      head = Buffer.concat([head, c]);
      const end = head.indexOf(10);
      if (end < 0) return;
      accepted = true;
      const answer = JSON.parse(head.subarray(0, end).toString("utf8")) as { error?: string };
      if (answer.error) {
        s.destroy();
        return reject(new NetError("invalid-argument", answer.error));
      }
      resolve(s);
      if (head.length > end + 1) onBytes(head.subarray(end + 1));
    });
    s.once("close", () => {
      if (!accepted) reject(new NetError("not-found", `switch '${name}' closed the capture`));
    });
    s.write(`${JSON.stringify({ op: "capture", port })}\n`);
  });
}

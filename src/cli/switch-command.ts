// Owns: `viridian switch create|serve|list|info|delete|capture`: argument parsing, starting a switch as a
// background process (`create` runs `switch serve` detached and waits until it answers), and printing what
// the switch's control socket reports.
// Must not: forward frames itself (that is src/net/virtual-switch.ts inside src/host/switch-daemon.ts), or
// leave a half-started switch behind (a switch that does not come up is stopped and its log printed).
// Spec: none; the commands are documented in README.md.

import { spawn } from "node:child_process";
import { closeSync, createWriteStream, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname, join, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { parseHostForward, type HostForward } from "../net/host-forward.js";
import { NetError } from "../net/net-error.js";
import {
  controlRequest,
  openCapture,
  runtimeDir,
  switchDir,
  switchNames,
  checkSwitchName,
} from "../host/switch-client.js";
import { SwitchDaemon, type SwitchInfo } from "../host/switch-daemon.js";
import type { Command } from "./command.js";

class UsageError extends Error {}

const USAGE = `usage: viridian switch create <name> [--nat [--hostfwd tcp:127.0.0.1:2222-:22]...] [--tap <dev>] [--keep]
       viridian switch serve <name> [same options]      (the switch in the foreground; create runs it)
       viridian switch list [--json]
       viridian switch info <name> [--json]
       viridian switch delete <name>
       viridian switch capture <name> --port <id> --out <file.pcap> [--count N]
A switch is a learning Ethernet switch; endpoints (VMs, QEMU's -netdev stream,addr.type=unix) connect to
its ports socket (shown by create and info), one port per connection. --nat adds a port to the host through
passt (DHCP, DNS, NAT to the host; the gateway address reaches the host's 127.0.0.1), --hostfwd forwards a
host port to the guest, --tap DEV adds a port on an existing TAP device (through vde_plug). Without --keep
the switch stops when its last endpoint leaves. capture writes a pcap of one port until --count frames,
Ctrl-C, or the switch stops. Switches live under $VIRIDIAN_RUNTIME_DIR (default $XDG_RUNTIME_DIR/viridian).`;

interface Options {
  positional: string[];
  nat: boolean;
  keep: boolean;
  json: boolean;
  forwards: HostForward[];
  tap?: string;
  port?: number;
  out?: string;
  count?: number;
}

function parse(args: string[]): Options {
  const o: Options = { positional: [], nat: false, keep: false, json: false, forwards: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const [, inline] = a.split(/=(.*)/s, 2);
      const v = a.includes("=") ? inline : args[++i];
      if (v === undefined || v === "") throw new UsageError(`${a.split("=")[0]} needs a value`);
      return v;
    };
    const name = a.split("=")[0];
    if (name === "--nat") o.nat = true;
    else if (name === "--keep") o.keep = true;
    else if (name === "--json") o.json = true;
    else if (name === "--hostfwd") o.forwards.push(parseHostForward(value()));
    else if (name === "--tap") o.tap = value();
    else if (name === "--out") o.out = value();
    else if (name === "--port" || name === "--count") {
      const v = value();
      const n = /^\d+$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n)) throw new UsageError(`${name} takes a number, not '${v}'`);
      if (name === "--port") o.port = n;
      else o.count = n;
    } else if (a.startsWith("-")) throw new UsageError(`unknown option '${a}'`);
    else o.positional.push(a);
  }
  if (o.forwards.length > 0 && !o.nat) throw new UsageError("--hostfwd needs --nat");
  return o;
}

function oneName(o: Options): string {
  if (o.positional.length !== 1) throw new UsageError(USAGE);
  return checkSwitchName(o.positional[0]!);
}

const BIN = join(dirname(fileURLToPath(import.meta.url)), "../../../bin/viridian.js");

function serveArgs(name: string, o: Options): string[] {
  const args = ["switch", "serve", name];
  if (o.nat) args.push("--nat");
  for (const f of o.forwards)
    args.push(`--hostfwd=${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`);
  if (o.tap) args.push("--tap", o.tap);
  if (o.keep) args.push("--keep");
  return args;
}

async function running(name: string): Promise<SwitchInfo | null> {
  try {
    return await controlRequest<SwitchInfo>(name, { op: "info" });
  } catch {
    return null;
  }
}

async function serve(name: string, o: Options): Promise<number> {
  if (await running(name)) throw new NetError("exists", `switch '${name}' is already running`);
  const daemon = await SwitchDaemon.start({
    name,
    dir: switchDir(name),
    nat: o.nat,
    forwards: o.forwards,
    ...(o.tap ? { tap: o.tap } : {}),
    stopWhenIdle: !o.keep,
  });
  const stop = () => daemon.stop();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  console.error(`viridian switch ${name}: ports socket ${daemon.info().portsSocket}`);
  await daemon.stopped;
  process.off("SIGTERM", stop);
  process.off("SIGINT", stop);
  return 0;
}

async function create(name: string, o: Options): Promise<number> {
  if (await running(name)) throw new NetError("exists", `switch '${name}' is already running`);
  const logs = join(runtimeDir(), "logs");
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  const log = join(logs, `${name}.log`);
  const fd = openSync(log, "w");
  const child = spawn(process.execPath, [BIN, ...serveArgs(name, o)], {
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  let exited: number | null = null;
  child.once("exit", (code) => (exited = code ?? 1));
  child.unref();
  // Wait until the switch answers on its control socket, or its process ends (then its log says why).
  for (;;) {
    const info = await running(name);
    if (info) {
      console.log(`switch '${name}' running (pid ${info.pid}); ports socket: ${info.portsSocket}`);
      return 0;
    }
    if (exited !== null) {
      console.error(`viridian switch: '${name}' did not start:\n${readFileSync(log, "utf8").trim()}`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function describe(i: SwitchInfo): string {
  const lines = [
    `switch ${i.name} (pid ${i.pid})${i.nat ? ", NAT" : ""}${i.tap ? `, TAP ${i.tap}` : ""}`,
    `  ports socket: ${i.portsSocket}`,
    ...(i.forwards.length ? [`  forwards: ${i.forwards.join(" ")}`] : []),
    `  port  name            kind    vlan  rx frames  rx dropped  tx frames  tx dropped  queued`,
    ...i.ports.map(
      (p) =>
        `  ${String(p.id).padEnd(5)} ${p.name.padEnd(15)} ${p.kind.padEnd(7)} ${String(p.vlan || "-").padEnd(5)} ` +
        `${String(p.stats.rxFrames).padStart(9)}  ${String(p.stats.rxDropped).padStart(10)}  ` +
        `${String(p.stats.txFrames).padStart(9)}  ${String(p.stats.txDropped).padStart(10)}  ${String(p.queued).padStart(6)}`,
    ),
    `  learnt addresses: ${i.macTable.map((e) => `${e.mac}@${e.port}`).join(" ") || "none"}`,
  ];
  return lines.join("\n");
}

/** Counts whole pcap records in a stream (after the 24-byte file header). */
function recordCounter(): (b: Buffer) => number {
  let skip = 24;
  let header: number[] = [];
  let records = 0;
  return (b) => {
    for (let at = 0; at < b.length;) {
      if (skip > 0) {
        const n = Math.min(skip, b.length - at);
        skip -= n;
        at += n;
        if (skip === 0 && header.length === 16) {
          records++;
          header = [];
        }
        continue;
      }
      header.push(b[at++]!);
      if (header.length === 16) {
        skip = header[8]! | (header[9]! << 8) | (header[10]! << 16) | (header[11]! << 24);
        if (skip === 0) {
          records++;
          header = [];
        }
      }
    }
    return records;
  };
}

async function capture(name: string, o: Options): Promise<number> {
  if (o.port === undefined || !o.out) throw new UsageError(USAGE);
  const out = createWriteStream(resolvePath(o.out));
  const count = recordCounter();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const socket = await openCapture(name, o.port, (b) => {
    out.write(b);
    if (o.count !== undefined && count(b) >= o.count) socket.destroy();
  });
  socket.once("close", done);
  console.error(`viridian switch: capturing port ${o.port} of '${name}' to ${o.out}`);
  const stop = () => socket.destroy();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await finished;
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  await new Promise<void>((r) => out.end(r));
  return 0;
}

async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help" || rest.includes("--help")) {
    console.log(USAGE);
    return sub === undefined ? 2 : 0;
  }
  try {
    const o = parse(rest);
    switch (sub) {
      case "create":
        return await create(oneName(o), o);
      case "serve":
        return await serve(oneName(o), o);
      case "list": {
        const infos = (await Promise.all(switchNames().map(running))).filter(
          (i): i is SwitchInfo => i !== null,
        );
        if (o.json) console.log(JSON.stringify(infos, null, 2));
        else
          for (const i of infos)
            console.log(`${i.name}\t${i.nat ? "nat" : "private"}\t${i.ports.length} ports\t${i.portsSocket}`);
        return 0;
      }
      case "info": {
        const info = await controlRequest<SwitchInfo>(oneName(o), { op: "info" });
        console.log(o.json ? JSON.stringify(info, null, 2) : describe(info));
        return 0;
      }
      case "delete": {
        await controlRequest(oneName(o), { op: "delete" });
        console.log(`switch '${o.positional[0]}' deleted`);
        return 0;
      }
      case "capture":
        return await capture(oneName(o), o);
      default:
        throw new UsageError(`unknown subcommand '${sub}'\n${USAGE}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`viridian switch: ${e.message}`);
      return 2;
    }
    if (e instanceof NetError) {
      console.error(`viridian switch: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

export const command: Command = {
  summary: "create, list, inspect, capture and delete virtual switches",
  run,
};

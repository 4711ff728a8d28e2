// Owns: a running virtual switch on this host: its directory of sockets (ports.sock where endpoints connect,
// one vlan-N.sock per VLAN in use, control.sock for commands), the NAT port (passt) and the TAP port
// (vde_plug), the control protocol (info, capture, listen, delete) and the switch's lifetime (it stops on
// `delete`, or when its last endpoint leaves if asked to).
// Must not: accept a control request it cannot parse (it answers with an error), let a capture reader stall
// the switch (a capture that does not drain is dropped), or outlive its external programs' ports.
// Spec: docs/architecture.md "Networking"; the control protocol is one JSON request line, one JSON answer
// line; after a successful `capture` answer the connection carries a pcap stream (src/net/pcap.ts).

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { formatHostForward, type HostForward } from "../net/host-forward.js";
import { NetError } from "../net/net-error.js";
import { VirtualSwitch, type SwitchPort } from "../net/virtual-switch.js";
import { startPasst, startTap, type RunningProgram } from "./external-programs.js";
import { attachStream, type StreamPort } from "./switch-ports.js";

export interface SwitchSpec {
  name: string;
  /** The directory of the switch's sockets (created; removed when the switch stops). */
  dir: string;
  nat: boolean;
  forwards: HostForward[];
  tap?: string;
  /** Stop when the last endpoint (not the NAT or TAP port) leaves, once one has joined. */
  stopWhenIdle: boolean;
}

export interface PortInfo {
  id: number;
  name: string;
  kind: string;
  vlan: number;
  queued: number;
  stats: SwitchPort["stats"];
}

export interface SwitchInfo {
  name: string;
  pid: number;
  nat: boolean;
  forwards: string[];
  tap: string | null;
  portsSocket: string;
  ports: PortInfo[];
  macTable: ReturnType<VirtualSwitch["macTable"]>;
  stats: VirtualSwitch["stats"];
}

export type ControlRequest =
  { op: "info" } | { op: "capture"; port: number } | { op: "listen"; vlan: number } | { op: "delete" };

/** Bytes a capture reader may fall behind before its capture is dropped. */
const CAPTURE_BACKLOG = 8 * 1024 * 1024;
const CONTROL_LINE = 4096;

export const portsSocketOf = (dir: string): string => join(dir, "ports.sock");
export const controlSocketOf = (dir: string): string => join(dir, "control.sock");

export class SwitchDaemon {
  readonly switch = new VirtualSwitch({ clock: () => Date.now() });
  private readonly servers: Server[] = [];
  private readonly streams = new Set<StreamPort>();
  private readonly programs: RunningProgram[] = [];
  /** Open control connections (captures last as long as their reader): closed when the switch stops. */
  private readonly controls = new Set<Socket>();
  private endpointsJoined = 0;
  private stopping = false;
  private resolveStopped!: () => void;
  /** Settles when the switch has stopped. */
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  private constructor(readonly spec: SwitchSpec) {}

  static async start(spec: SwitchSpec): Promise<SwitchDaemon> {
    mkdirSync(spec.dir, { recursive: true, mode: 0o700 });
    const d = new SwitchDaemon(spec);
    try {
      await d.listen(portsSocketOf(spec.dir), (s) => d.acceptEndpoint(s, 0));
      if (spec.nat) d.startNat();
      if (spec.tap) d.startTap(spec.tap);
      await d.listen(controlSocketOf(spec.dir), (s) => d.acceptControl(s));
      writeFileSync(join(spec.dir, "switch.pid"), `${process.pid}\n`);
    } catch (e) {
      d.stop();
      throw e;
    }
    return d;
  }

  info(): SwitchInfo {
    return {
      name: this.spec.name,
      pid: process.pid,
      nat: this.spec.nat,
      forwards: this.spec.forwards.map(formatHostForward),
      tap: this.spec.tap ?? null,
      portsSocket: portsSocketOf(this.spec.dir),
      ports: this.switch.ports().map((p) => ({
        id: p.id,
        name: p.name,
        kind: p.kind,
        vlan: p.vlan,
        queued: p.queued,
        stats: { ...p.stats },
      })),
      macTable: this.switch.macTable(),
      stats: { ...this.switch.stats },
    };
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const s of this.servers) s.close();
    for (const s of [...this.streams]) s.close();
    for (const p of this.programs) p.stop();
    for (const c of this.controls) c.destroy();
    rmSync(this.spec.dir, { recursive: true, force: true });
    this.resolveStopped();
  }

  private listen(path: string, onConnection: (s: Socket) => void): Promise<void> {
    rmSync(path, { force: true });
    return new Promise((resolve, reject) => {
      const server = createServer(onConnection);
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        server.on("error", () => undefined);
        this.servers.push(server);
        resolve();
      });
    });
  }

  private acceptEndpoint(socket: Socket, vlan: number): void {
    if (this.stopping) return void socket.destroy();
    this.endpointsJoined++;
    this.join(socket, socket, { name: `stream-${this.endpointsJoined}`, kind: "stream", vlan });
  }

  private join(
    input: Readable,
    output: Writable,
    opts: { name: string; kind: string; vlan: number; prefixBytes?: 2 | 4 },
  ): void {
    const stream = attachStream(this.switch, input, output, {
      ...opts,
      onClose: () => {
        this.streams.delete(stream);
        if (opts.kind !== "stream") {
          // The NAT or TAP program went away: the switch cannot keep its promise, so it stops.
          this.stop();
          return;
        }
        const endpoints = [...this.streams].filter((s) => s.port.kind === "stream").length;
        if (this.spec.stopWhenIdle && endpoints === 0) this.stop();
      },
    });
    this.streams.add(stream);
  }

  private startNat(): void {
    const { program, socket } = startPasst(this.spec.forwards);
    this.programs.push(program);
    this.join(socket, socket, { name: "nat", kind: "nat", vlan: 0 });
    program.child.once("exit", (code, signal) => this.programExited("passt", program, code ?? signal));
  }

  private startTap(device: string): void {
    const program = startTap(device);
    this.programs.push(program);
    this.join(program.child.stdout!, program.child.stdin!, {
      name: `tap:${device}`,
      kind: "tap",
      vlan: 0,
      prefixBytes: 2,
    });
    program.child.once("exit", (code, signal) => this.programExited("vde_plug", program, code ?? signal));
  }

  /** A NAT or TAP program that ends takes its port with it: the switch says why and stops. */
  private programExited(name: string, program: RunningProgram, status: number | string | null): void {
    if (!this.stopping)
      console.error(
        `viridian switch ${this.spec.name}: ${name} exited (${status}): ${program.stderr().trim()}`,
      );
    this.stop();
  }

  private acceptControl(socket: Socket): void {
    if (this.stopping) return void socket.destroy();
    this.controls.add(socket);
    socket.once("close", () => this.controls.delete(socket));
    let line = "";
    const onData = (chunk: Buffer) => {
      line += chunk.toString("utf8");
      const end = line.indexOf("\n");
      if (end < 0) {
        if (line.length > CONTROL_LINE) this.answer(socket, { error: "request too long" }, true);
        return;
      }
      socket.off("data", onData);
      void this.handle(socket, line.slice(0, end));
    };
    socket.on("data", onData);
    socket.on("error", () => undefined);
  }

  private answer(socket: Socket, value: unknown, close: boolean): void {
    socket.write(`${JSON.stringify(value)}\n`);
    if (close) socket.end();
  }

  private async handle(socket: Socket, text: string): Promise<void> {
    let request: ControlRequest;
    try {
      request = JSON.parse(text) as ControlRequest;
      if (typeof request !== "object" || request === null) throw new Error("not an object");
    } catch {
      return this.answer(socket, { error: "the request is not JSON" }, true);
    }
    try {
      switch (request.op) {
        case "info":
          return this.answer(socket, this.info(), true);
        case "delete":
          this.answer(socket, { ok: true }, true);
          socket.once("close", () => this.stop());
          return;
        case "listen":
          return this.answer(socket, { path: await this.listenVlan(request.vlan) }, true);
        case "capture":
          return this.capture(socket, request.port);
        default:
          return this.answer(
            socket,
            { error: `unknown op '${String((request as { op: unknown }).op)}'` },
            true,
          );
      }
    } catch (e) {
      return this.answer(socket, { error: e instanceof Error ? e.message : String(e) }, true);
    }
  }

  private async listenVlan(vlan: number): Promise<string> {
    if (!Number.isInteger(vlan) || vlan < 1 || vlan > 4094) {
      throw new NetError("invalid-argument", `VLAN id ${vlan} is outside 1..4094`);
    }
    const path = join(this.spec.dir, `vlan-${vlan}.sock`);
    if (!this.servers.some((s) => s.address() === path)) {
      await this.listen(path, (s) => this.acceptEndpoint(s, vlan));
    }
    return path;
  }

  private capture(socket: Socket, portId: number): void {
    const port = this.switch.port(Number(portId));
    this.answer(socket, { ok: true, port: port.id, name: port.name }, false);
    const stop = this.switch.capture(port, (bytes) => {
      if (socket.writableLength > CAPTURE_BACKLOG) {
        stop();
        socket.destroy();
        return;
      }
      socket.write(bytes);
    });
    socket.once("close", stop);
    // The reader may also end the capture by closing its side.
    socket.on("data", () => undefined);
    socket.once("end", () => {
      stop();
      socket.end();
    });
  }
}

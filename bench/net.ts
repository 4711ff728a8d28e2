// Network throughput and latency (issue 13, acceptance 7): the bundled guest on Viridian (hv_netvsc on the
// network VSP, `viridian run --nic`) next to the same kernel and initramfs on QEMU TCG (virtio-net, joined to
// the same kind of switch with `-netdev stream`), in one run. Per emulator, two VMs: A with one NIC on a NAT
// switch (passt: DHCP, the gateway reaches the host's 127.0.0.1) and one on a private switch, B on the
// private switch. Figures: ping round trip A -> B, TCP throughput A -> B (busybox nc, zeros from dd) and
// A -> a TCP server in this process on 127.0.0.1 (guest -> host through the NAT); and, for each transfer,
// the CPU seconds of every process on the path (the two VMs, the switches, passt), which says where the
// time goes. VIRIDIAN_BENCH_NET_PROFILE=1 also runs the Viridian VMs under --cpu-prof and splits their
// CPU during the guest -> guest transfer into the guest's processor, the network path (netvsp, VMBus, the
// switch link) and the rest. VIRIDIAN_BENCH_NET_MIB sets the transfer size (default 8 MiB: Viridian moves
// well under 1 MiB/s guest to guest).
// Must not: be called from tests (timings are figures here, never assertions), or send anything beyond this
// machine (the NAT's host side is 127.0.0.1; the private switch has no way out).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  GuestConsole,
  guestCommand,
  limits,
  REPO,
  skipReason,
  type Emulator,
  withoutControlSequences,
} from "../tests/linux/guest-console.js";

const BIN = resolve(REPO, "bin/viridian.js");
const MEMORY_MIB = 256;
const MIB = Number(process.env.VIRIDIAN_BENCH_NET_MIB) > 0 ? Number(process.env.VIRIDIAN_BENCH_NET_MIB) : 8;
const PINGS = 10;
const GOAL = 0.5;
const CLK_TCK = 100;

interface Transfer {
  mibS: number;
  seconds: number;
  /** CPU seconds of each process on the path during the transfer. */
  cpu: Record<string, number>;
}

interface Figures {
  ping: { min: number; avg: number; max: number };
  guestToGuest: Transfer;
  guestToHost: Transfer;
  /** Viridian with VIRIDIAN_BENCH_NET_PROFILE=1: shares of A's and B's CPU profile during guest -> guest. */
  profile?: Record<string, Record<string, number>>;
}

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** The children of `pid` (passt under the NAT switch), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter((s) => s !== "")
      .map(Number);
  } catch {
    return [];
  }
}

function switchCli(rt: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, "switch", ...args], {
    encoding: "utf8",
    env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
  });
  if (r.status !== 0) throw new Error(`viridian switch ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function switchInfo(rt: string, name: string): { pid: number; portsSocket: string } {
  return JSON.parse(switchCli(rt, "info", name, "--json")) as { pid: number; portsSocket: string };
}

interface Nic {
  socket: string;
  mac: string;
}

function start(emulator: Emulator, nics: Nic[], profileDir?: string): GuestConsole {
  const lim = limits(emulator);
  if (emulator === "viridian") {
    const nicArgs = nics.map((n) => `switch=${n.socket},mac=${n.mac}`);
    const { command, args } = guestCommand({ emulator, memoryMiB: MEMORY_MIB, nics: nicArgs });
    if (profileDir !== undefined) args.unshift("--cpu-prof", `--cpu-prof-dir=${profileDir}`);
    return new GuestConsole(emulator, command, args, lim);
  }
  const { command, args } = guestCommand({ emulator, memoryMiB: MEMORY_MIB });
  nics.forEach((n, i) =>
    args.push(
      "-netdev",
      `stream,id=n${i},server=off,addr.type=unix,addr.path=${n.socket}`,
      "-device",
      `virtio-net-pci,netdev=n${i},mac=${n.mac}`,
    ),
  );
  return new GuestConsole(emulator, command, args, lim);
}

const run = async (g: GuestConsole, command: string): Promise<string> =>
  withoutControlSequences(await g.run(command)).trim();

/** A TCP server on 127.0.0.1 that times one connection from its first byte to its end. */
async function sink(): Promise<{
  port: number;
  done: Promise<{ bytes: number; seconds: number }>;
  close(): void;
}> {
  const server = createServer();
  const done = new Promise<{ bytes: number; seconds: number }>((resolveDone) => {
    server.once("connection", (s) => {
      let bytes = 0;
      let first = 0;
      s.on("data", (d: Buffer) => {
        if (bytes === 0) first = performance.now();
        bytes += d.length;
      });
      s.on("end", () => resolveDone({ bytes, seconds: (performance.now() - first) / 1000 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, done, close: () => server.close() };
}

/** Classifies each sample of a --cpu-prof profile within [from, to] (µs, the process's monotonic clock). */
function profileShares(file: string, from: number, to: number): Record<string, number> {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string };
    children?: number[];
  }
  const p = JSON.parse(readFileSync(file, "utf8")) as {
    nodes: Node[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const netPath = /\/src\/(vsp\/netvsp|vmbus|net|host\/switch-link|worker\/vm-network|memory\/page-list)\./;
  const shares: Record<string, number> = {};
  let total = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    if (t < from || t > to) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    let kind = "other (event loop, GC, console)";
    const leaf = byId.get(p.samples[i]!)!;
    if (leaf.callFrame.functionName === "(idle)") kind = "idle";
    else {
      let guest = false;
      for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id)!.callFrame;
        if (netPath.test(f.url)) {
          kind = "network path (netvsp, VMBus, switch link)";
          break;
        }
        if (f.functionName === "runVp") guest = true;
      }
      if (guest && kind.startsWith("other")) kind = "guest processor (and its other exits)";
    }
    shares[kind] = (shares[kind] ?? 0) + dt;
    total += dt;
  }
  for (const k of Object.keys(shares)) shares[k] = shares[k]! / total;
  return shares;
}

async function measure(emulator: Emulator): Promise<Figures> {
  const rt = mkdtempSync(join(tmpdir(), "viridian-bench-net-"));
  const profileDir =
    emulator === "viridian" && process.env.VIRIDIAN_BENCH_NET_PROFILE === "1" ? join(rt, "prof") : undefined;
  const guests: GuestConsole[] = [];
  const host = await sink();
  try {
    switchCli(rt, "create", "nat", "--nat", "--keep");
    switchCli(rt, "create", "lab", "--keep");
    const nat = switchInfo(rt, "nat");
    const lab = switchInfo(rt, "lab");
    const a = start(
      emulator,
      [
        { socket: nat.portsSocket, mac: "00:15:5d:00:0d:01" },
        { socket: lab.portsSocket, mac: "00:15:5d:00:0d:02" },
      ],
      profileDir,
    );
    guests.push(a);
    const b = start(emulator, [{ socket: lab.portsSocket, mac: "00:15:5d:00:0d:03" }], profileDir);
    guests.push(b);
    await Promise.all([a.waitForPrompt(), b.waitForPrompt()]);
    // A's eth0 takes a lease from passt (the guest's device handler runs udhcpc on eth0); B's eth0 runs
    // udhcpc too, with no server: its start clears the address, so the static one goes on after that.
    await run(a, "ip link set eth1 up; ip addr add 10.0.2.1/24 dev eth1");
    await run(
      b,
      "until grep -q discover /run/udhcpc.eth0.log 2>/dev/null; do sleep 1; done; ip addr add 10.0.2.2/24 dev eth0",
    );
    const gateway = await run(
      a,
      "until ip route | grep -q '^default'; do sleep 1; done; ip route | awk '/^default/ { print $3 }'",
    );
    await run(a, "ping -c 1 -W 10 10.0.2.2");
    const pingOut = await run(a, `ping -c ${PINGS} 10.0.2.2`);
    const rtt = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(pingOut);
    if (!rtt || !pingOut.includes(`${PINGS} packets received`)) throw new Error(`ping: ${pingOut}`);

    const pids = (): Record<string, number> => {
      const p: Record<string, number> = {
        "VM A": a.pid!,
        "VM B": b.pid!,
        "switch lab": lab.pid,
        "switch nat": nat.pid,
      };
      for (const c of childrenOf(nat.pid)) p[`passt (${c})`] = c;
      return p;
    };
    const cpuNow = (): Record<string, number> =>
      Object.fromEntries(Object.entries(pids()).map(([k, pid]) => [k, cpuSeconds(pid)]));
    const cpuSince = (before: Record<string, number>): Record<string, number> => {
      const now = cpuNow();
      return Object.fromEntries(Object.keys(now).map((k) => [k, now[k]! - (before[k] ?? NaN)]));
    };
    const blocks = MIB * 16;
    const dd = `dd if=/dev/zero bs=64k count=${blocks} 2>/dev/null`;

    // Guest -> guest: B listens first; A's wall time from typing to its prompt (the prompt's round trip is
    // in it, on both emulators alike).
    const received = run(b, "nc -l -p 5001 | wc -c");
    await new Promise((r) => setTimeout(r, 3000));
    let cpu0 = cpuNow();
    const window0 = process.hrtime.bigint();
    let t0 = performance.now();
    await run(a, `until ${dd} | nc 10.0.2.2 5001; do sleep 1; done`);
    const g2gS = (performance.now() - t0) / 1000;
    const window1 = process.hrtime.bigint();
    const count = (await received).trim();
    if (count !== String(blocks * 65536)) throw new Error(`B received ${count} bytes`);
    const guestToGuest = { mibS: MIB / g2gS, seconds: g2gS, cpu: cpuSince(cpu0) };

    // Guest -> host through the NAT: the host's server times it from the first byte to the end.
    cpu0 = cpuNow();
    t0 = performance.now();
    await run(a, `${dd} | nc ${gateway} ${host.port}`);
    const got = await host.done;
    if (got.bytes !== blocks * 65536) throw new Error(`the host received ${got.bytes} bytes`);
    const guestToHost = { mibS: MIB / got.seconds, seconds: got.seconds, cpu: cpuSince(cpu0) };

    for (const g of guests) {
      g.type("poweroff");
      await g.waitExit(limits(emulator).bootMs);
    }
    const figures: Figures = {
      ping: { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]) },
      guestToGuest,
      guestToHost,
    };
    if (profileDir !== undefined) {
      // Profiles carry the process's monotonic clock in µs, the same clock as process.hrtime here.
      const from = Number(window0 / 1000n);
      const to = Number(window1 / 1000n);
      figures.profile = {};
      for (const [name, g] of [
        ["VM A (sender)", a],
        ["VM B (receiver)", b],
      ] as const) {
        const file = readdirSync(profileDir).find((f) => f.includes(`.${g.pid}.`));
        if (file !== undefined) figures.profile[name] = profileShares(join(profileDir, file), from, to);
      }
    }
    return figures;
  } catch (e) {
    const reports = await Promise.all(guests.map((g) => g.failure(e)));
    throw new Error(`${emulator}: ${reports.map((r) => r.message).join("\n")}`);
  } finally {
    for (const g of guests) await g.close();
    host.close();
    for (const name of ["nat", "lab"])
      spawnSync(process.execPath, [BIN, "switch", "delete", name], {
        env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
      });
    rmSync(rt, { recursive: true, force: true });
  }
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "-");

export async function benchNet(): Promise<void> {
  const emulators: Emulator[] = ["viridian"];
  const qemuMissing = skipReason("qemu");
  if (qemuMissing) console.log(`net: no QEMU figures: ${qemuMissing}`);
  else emulators.push("qemu");
  const results = new Map<Emulator, Figures | { error: string }>();
  for (const e of emulators) {
    const load = loadavg()[0]!.toFixed(1);
    try {
      results.set(e, await measure(e));
    } catch (err) {
      console.error((err as Error).message);
      results.set(e, { error: (err as Error).message.split("\n")[0]! });
    }
    console.log(`net: ${e} done (load average ${load} at its start, ${loadavg()[0]!.toFixed(1)} now)`);
  }
  const v = results.get("viridian");
  const q = results.get("qemu");
  const ok = (r: Figures | { error: string } | undefined): r is Figures => r !== undefined && !("error" in r);
  console.log(`\nnet: ${MIB} MiB per transfer, 256 MiB guests, the bundled guest on both`);
  console.log("| | Viridian (hv_netvsc) | QEMU TCG (virtio-net) | Viridian / QEMU |");
  console.log("|---|---|---|---|");
  const row = (what: string, pick: (f: Figures) => number, unit: string, ratio: boolean) => {
    const vv = ok(v) ? pick(v) : NaN;
    const qq = ok(q) ? pick(q) : NaN;
    console.log(
      `| ${what} | ${f1(vv)} ${unit} | ${f1(qq)} ${unit} | ${ratio ? `${(100 * (vv / qq)).toFixed(0)} %` : ""} |`,
    );
  };
  row("TCP guest -> guest", (f) => f.guestToGuest.mibS, "MiB/s", true);
  row("TCP guest -> host (NAT)", (f) => f.guestToHost.mibS, "MiB/s", true);
  row("ping round trip, avg", (f) => f.ping.avg, "ms", false);
  row("ping round trip, min", (f) => f.ping.min, "ms", false);
  for (const [e, r] of results) {
    if (!ok(r)) {
      console.log(`net: ${e}: ${r.error}`);
      continue;
    }
    for (const [what, t] of [
      ["guest -> guest", r.guestToGuest],
      ["guest -> host", r.guestToHost],
    ] as const) {
      const cpu = Object.entries(t.cpu)
        .map(([k, s]) => `${k} ${f1(s)} s`)
        .join(", ");
      console.log(`net: ${e} ${what}: ${f1(t.seconds)} s wall; CPU: ${cpu}`);
    }
    for (const [vm, shares] of Object.entries(r.profile ?? {})) {
      const parts = Object.entries(shares)
        .sort((x, y) => y[1] - x[1])
        .map(([k, s]) => `${k} ${(100 * s).toFixed(1)} %`)
        .join(", ");
      console.log(`net: ${e} ${vm} during guest -> guest (--cpu-prof): ${parts}`);
    }
  }
  if (ok(v) && ok(q)) {
    const share = v.guestToGuest.mibS / q.guestToGuest.mibS;
    console.log(
      `net: goal Viridian >= ${GOAL * 100} % of QEMU TCG guest -> guest: ${share >= GOAL ? "met" : "not met"}`,
    );
  }
}

// Two Viridian VMs (the bundled guest, `viridian run --nic`, one boot each) on a private switch run by
// `viridian switch`: static addresses, they ping each other while a capture of VM A's port runs (tcpdump
// reads the pcap and shows the echo requests and replies between the two MACs), then 100 MiB streamed from
// A to B with busybox nc arrive with the md5 A computed of what it sent.
// Must not: assert timings (limits only keep a hang from hanging the suite) or send anything beyond the
// switch (both guests' only NIC is on it; the switch has no NAT or TAP port).
// Spec: issue 13 acceptance 3 (two VMs, static addresses, ping, 100 MiB with nc, same md5) and 5 (a pcap
// of a switch port during test 3 opens with `tcpdump -r` and shows the echo requests and replies).
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  forbiddenLines,
  limits,
  REPO,
  skipReason,
  startGuest,
  type GuestConsole,
  withoutControlSequences,
} from "../linux/guest-console.js";

const lim = limits("viridian");
const BIN = resolve(REPO, "bin/viridian.js");
const MAC_A = "00:15:5d:00:0c:01";
const MAC_B = "00:15:5d:00:0c:02";
/**
 * The issue's figure (VIRIDIAN_PAIR_MIB=N for another). 130 s wall for the file at load 2-3, 213 s of CPU; under
 * a load of 10-20 the same took 11-25 min, since the guests' kernels then move well under 1 MiB/s.
 */
const MIB = Number(process.env.VIRIDIAN_PAIR_MIB ?? 100);
const CAPTURED = 2000;
const TRANSFER_MS = 60 * 60_000;
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;

function switchCli(rt: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, "switch", ...args], {
    encoding: "utf8",
    env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface PortInfo {
  id: number;
  kind: string;
  stats: { rxFrames: number; txFrames: number };
}

function ports(rt: string): PortInfo[] {
  const r = switchCli(rt, "info", "lab", "--json");
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { ports: PortInfo[] }).ports;
}

/** Waits (the test's timeout bounds it) until `what` gives a value. */
async function until<T>(what: () => T | undefined): Promise<T> {
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const skip =
  skipReason("viridian") ||
  (spawnSync("sh", ["-c", "command -v tcpdump"]).status !== 0 &&
    "tcpdump not installed (Debian package tcpdump)");

describe("two Viridian VMs on a private switch (viridian run --nic, one boot each)", { skip }, () => {
  const h: { a?: GuestConsole; b?: GuestConsole; rt?: string; portA?: number } = {};
  before(async () => {
    const rt = mkdtempSync(join(tmpdir(), "viridian-pair-"));
    h.rt = rt;
    const created = switchCli(rt, "create", "lab", "--keep");
    assert.equal(created.status, 0, created.stderr);
    const socket = (JSON.parse(switchCli(rt, "info", "lab", "--json").stdout) as { portsSocket: string })
      .portsSocket;
    h.a = await startGuest({ emulator: "viridian", nics: [`switch=${socket},mac=${MAC_A}`] }, lim);
    // A's port is the first one: B starts only once it is there.
    h.portA = await until(() => ports(rt)[0]?.id);
    h.b = await startGuest({ emulator: "viridian", nics: [`switch=${socket},mac=${MAC_B}`] }, lim);
  });
  after(async () => {
    await h.a?.close();
    await h.b?.close();
    if (h.rt) {
      switchCli(h.rt, "delete", "lab");
      rmSync(h.rt, { recursive: true, force: true });
    }
  });
  const run = async (g: GuestConsole, command: string, ms?: number): Promise<string> =>
    withoutControlSequences(await g.run(command, ms)).trim();
  const step = (name: string, body: (a: GuestConsole, b: GuestConsole) => Promise<void>, timeout = STEP_MS) =>
    it(name, { timeout }, async () => {
      const { a, b } = h;
      assert.ok(a && b, "the guests were not started");
      await a.step(() => b.step(() => body(a, b)));
    });

  step("both boot, bind hv_netvsc and take static addresses", async (a, b) => {
    await Promise.all([a.waitForPrompt(), b.waitForPrompt()]);
    for (const [g, ip, mac] of [
      [a, "10.0.1.1/24", MAC_A],
      [b, "10.0.1.2/24", MAC_B],
    ] as const) {
      assert.equal(await run(g, "cat /sys/class/net/eth0/address"), mac);
      // The guest's device handler runs udhcpc on eth0 (no server answers here), and its start clears the
      // interface's addresses: the static one goes on once it is past that (its first discover).
      await run(g, "until grep -q discover /run/udhcpc.eth0.log 2>/dev/null; do sleep 1; done");
      await run(g, `ip addr add ${ip} dev eth0`);
      assert.equal(await run(g, "cat /sys/class/net/eth0/carrier"), "1");
    }
  });

  step("they ping each other, and a capture of A's port shows the requests and replies", async (a, b) => {
    const pcap = join(h.rt!, "a.pcap");
    let capture: ChildProcess | undefined;
    try {
      capture = spawn(
        process.execPath,
        [BIN, "switch", "capture", "lab", "--port", String(h.portA), "--out", pcap],
        {
          env: { ...process.env, VIRIDIAN_RUNTIME_DIR: h.rt },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      let log = "";
      capture.stderr!.on("data", (d: Buffer) => (log += d.toString()));
      await until(() => (log.includes("capturing") ? true : undefined));
      // ARP first, then three echoes each way.
      assert.match(await run(a, "ping -c 3 -W 5 10.0.1.2"), /3 packets transmitted, 3 packets received/);
      assert.match(await run(b, "ping -c 3 -W 5 10.0.1.1"), /3 packets transmitted, 3 packets received/);
      const c = capture;
      c.kill("SIGINT");
      await new Promise((r) => c.once("exit", r));
    } finally {
      capture?.kill("SIGKILL");
    }
    const dump = spawnSync("tcpdump", ["-r", pcap, "-nn", "-e", "icmp"], { encoding: "utf8" });
    assert.equal(dump.status, 0, dump.stderr);
    const lines = dump.stdout.split("\n");
    const count = (from: string, to: string, what: string): number =>
      lines.filter((l) => l.includes(`${from} > ${to}`) && l.includes(`ICMP echo ${what}`)).length;
    assert.ok(count(MAC_A, MAC_B, "request") >= 3, dump.stdout);
    assert.ok(count(MAC_B, MAC_A, "reply") >= 3, dump.stdout);
    assert.ok(count(MAC_B, MAC_A, "request") >= 3, dump.stdout);
    assert.ok(count(MAC_A, MAC_B, "reply") >= 3, dump.stdout);
  });

  step(
    `${MIB} MiB streamed from A to B with nc arrive with A's md5`,
    async (a, b) => {
      // 1 MiB of random bytes sent 100 times: A hashes exactly the stream it then sends. The chunk's length
      // is no multiple of a TCP segment, so a lost, repeated or reordered segment changes B's digest.
      await run(a, "dd if=/dev/urandom of=/tmp/chunk bs=1024 count=1024 2>/dev/null");
      const stream = `for i in $(seq 1 ${MIB}); do cat /tmp/chunk; done`;
      const sent = (await run(a, `${stream} | md5sum`, TRANSFER_MS)).split(/\s+/)[0]!;
      assert.match(sent, /^[0-9a-f]{32}$/);
      const received = run(b, "nc -l -p 5001 | md5sum", TRANSFER_MS);
      // The first CAPTURED frames of the stream on A's port: the host completed their checksums (and splits
      // large sends when LSO is offered), so tcpdump must find every checksum right and no frame too long.
      const pcap = join(h.rt!, "stream.pcap");
      const capture = spawn(
        process.execPath,
        [
          BIN,
          "switch",
          "capture",
          "lab",
          "--port",
          String(h.portA),
          "--out",
          pcap,
          "--count",
          String(CAPTURED),
        ],
        { env: { ...process.env, VIRIDIAN_RUNTIME_DIR: h.rt }, stdio: ["ignore", "ignore", "pipe"] },
      );
      const captured = new Promise((r) => capture.once("exit", r));
      try {
        let log = "";
        capture.stderr!.on("data", (d: Buffer) => (log += d.toString()));
        await until(() => (log.includes("capturing") ? true : undefined));
        // B listens before A connects: A retries until the port answers.
        await run(a, `until ${stream} | nc 10.0.1.2 5001; do sleep 1; done`, TRANSFER_MS);
        assert.equal((await received).split(/\s+/)[0], sent);
        await captured;
      } finally {
        capture.kill("SIGKILL");
      }
      const dump = spawnSync("tcpdump", ["-r", pcap, "-nn", "-e", "-vv", "tcp"], {
        encoding: "utf8",
        maxBuffer: 64 << 20,
      });
      assert.equal(dump.status, 0, dump.stderr);
      const frames = dump.stdout.split("\n").filter((l) => / > .*ethertype IPv4/.test(l));
      assert.ok(frames.length >= CAPTURED / 2, `${frames.length} TCP frames captured`);
      assert.deepEqual(
        dump.stdout
          .split("\n")
          .filter((l) => /incorrect|bad cksum/.test(l))
          .slice(0, 5),
        [],
      );
      assert.ok((dump.stdout.match(/\(correct\)/g) ?? []).length >= frames.length, "tcpdump checked them");
      const lengths = frames.map((l) => Number(/, length (\d+):/.exec(l)?.[1] ?? 0));
      assert.ok(
        Math.max(...lengths) <= 1514 && Math.min(...lengths) >= 54,
        `lengths ${Math.max(...lengths)}`,
      );
      // 100 MiB in frames of at most 1514 bytes left A's port.
      const stats = ports(h.rt!).find((p) => p.id === h.portA)!.stats;
      assert.ok(stats.rxFrames > MIB * 690, JSON.stringify(stats));
    },
    TRANSFER_MS + STEP_MS,
  );

  step("both power off (status 0) with clean boot logs", async (a, b) => {
    for (const g of [a, b]) {
      assert.deepEqual(forbiddenLines(g.consoleLog()), []);
      assert.deepEqual(
        g
          .consoleLog()
          .filter((l) => /probe failed|probe of .* failed|hv_netvsc.*(error|fail|invalid)/i.test(l)),
        [],
      );
      g.type("poweroff");
      assert.equal(await g.waitExit(lim.bootMs), 0, `exit status (${g.exitText()})\n${g.stderr}`);
    }
  });
});

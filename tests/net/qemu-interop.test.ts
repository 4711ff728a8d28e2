// Interop and capture: QEMU TCG guests (Debian's stock kernel, virtio-net, `-netdev stream`) on a switch run
// by `viridian switch`: two guests on a private switch ping each other and move 10 MiB over HTTP with
// matching md5, a capture of one port opens with tcpdump and shows the echo requests and replies between the
// two MACs; a guest on a NAT switch (passt) gets an address by DHCP, fetches a file from an HTTP server on
// the host's 127.0.0.1 through the gateway, and serves a page the host fetches through a port forward.
// Traffic goes only to loopback: guests reach nothing but the switch, and the NAT's host side is 127.0.0.1.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REPO, skipReason } from "../linux/guest-console.js";
import { netGuestImages, startNetGuest, type NetGuest } from "./net-guest.js";

const BIN = resolve(REPO, "bin/viridian.js");
const MAC_A = "52:54:00:00:00:0a";
const MAC_B = "52:54:00:00:00:0b";
const TIMEOUT = 30 * 60_000;

function have(program: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${program}`]).status === 0;
}

function cli(rt: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, "switch", ...args], {
    encoding: "utf8",
    env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Info {
  ports: { id: number; kind: string; stats: { rxFrames: number; txFrames: number } }[];
  portsSocket: string;
}

function info(rt: string, name: string): Info {
  const r = cli(rt, "info", name, "--json");
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Info;
}

/** Waits (no time limit of its own: the test's timeout bounds it) until `ok` holds. */
async function until<T>(what: () => T | undefined): Promise<T> {
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const skip = skipReason("qemu") || (!have("dpkg-deb") && "dpkg-deb not found");

test(
  "two QEMU guests on a private switch ping each other, move 10 MiB intact, and a capture shows the pings",
  { skip, timeout: TIMEOUT },
  async () => {
    const rt = mkdtempSync(join(tmpdir(), "viridian-net-"));
    const guests: NetGuest[] = [];
    let capture: ChildProcess | undefined;
    try {
      const images = netGuestImages();
      const created = cli(rt, "create", "lab");
      assert.equal(created.status, 0, created.stderr);
      const socket = info(rt, "lab").portsSocket;
      const a = startNetGuest(images, socket, MAC_A, {
        role: "serve",
        ip: "10.0.0.1/24",
        peer: "10.0.0.2",
        mib: "10",
        stay: "1",
      });
      guests.push(a);
      const portA = await until(() => info(rt, "lab").ports[0]?.id);
      const pcap = join(rt, "a.pcap");
      capture = spawn(
        process.execPath,
        [BIN, "switch", "capture", "lab", "--port", String(portA), "--out", pcap],
        {
          env: { ...process.env, VIRIDIAN_RUNTIME_DIR: rt },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      let captureLog = "";
      capture.stderr!.on("data", (d: Buffer) => (captureLog += d.toString()));
      await until(() => (captureLog.includes("capturing") ? true : undefined));
      const b = startNetGuest(images, socket, MAC_B, { role: "fetch", ip: "10.0.0.2/24", peer: "10.0.0.1" });
      guests.push(b);

      assert.equal(await a.waitFor("DRIVER"), "virtio_net");
      const sent = await a.waitFor("MD5");
      await b.waitFor("PING3 OK");
      await a.waitFor("PING3 OK");
      const received = await b.waitFor("MD5");
      assert.match(sent, /^[0-9a-f]{32}$/);
      assert.equal(received, sent, "the 10 MiB file arrived intact");
      assert.equal(await b.exited, 0, "guest B powered off");

      const stats = info(rt, "lab").ports.find((p) => p.id === portA)!.stats;
      // 10 MiB in frames of at most 1514 bytes: at least 6,900 frames left A's port.
      assert.ok(stats.rxFrames > 6900, JSON.stringify(stats));
      const captured = capture;
      captured.kill("SIGINT");
      await new Promise((r) => captured.once("exit", r));
      a.stop();
      await a.exited;
      // The last endpoint left: the switch stops by itself.
      await until(() => (existsSync(join(rt, "switches/lab")) ? undefined : true));

      const dump = spawnSync("tcpdump", ["-r", pcap, "-nn", "-e", "icmp"], { encoding: "utf8" });
      if (dump.error) {
        assert.fail("tcpdump is not installed (Debian package tcpdump)");
      }
      assert.equal(dump.status, 0, dump.stderr);
      const lines = dump.stdout.split("\n");
      const requests = lines.filter(
        (l) => l.includes(`${MAC_B} > ${MAC_A}`) && l.includes("ICMP echo request"),
      );
      const replies = lines.filter((l) => l.includes(`${MAC_A} > ${MAC_B}`) && l.includes("ICMP echo reply"));
      const aRequests = lines.filter(
        (l) => l.includes(`${MAC_A} > ${MAC_B}`) && l.includes("ICMP echo request"),
      );
      assert.ok(requests.length >= 3 && replies.length >= 3 && aRequests.length >= 3, dump.stdout);
    } finally {
      for (const g of guests) g.stop();
      capture?.kill("SIGKILL");
      cli(rt, "delete", "lab");
      rmSync(rt, { recursive: true, force: true });
    }
  },
);

function serve(body: Buffer): Promise<Server> {
  return new Promise((resolveServer) => {
    const server = createServer((req, res) => {
      if (req.url !== "/file") return res.writeHead(404).end();
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    server.listen(0, "127.0.0.1", () => resolveServer(server));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

test(
  "a QEMU guest on a NAT switch gets DHCP, fetches from the host's 127.0.0.1, and serves a forwarded port",
  { skip: skip || (!have("passt") && "passt not installed (Debian package passt)"), timeout: TIMEOUT },
  async () => {
    const rt = mkdtempSync(join(tmpdir(), "viridian-net-"));
    const body = randomBytes(1024 * 1024);
    const server = await serve(body);
    let guest: NetGuest | undefined;
    try {
      const images = netGuestImages();
      const hostPort = (server.address() as { port: number }).port;
      const forwarded = await freePort();
      const created = cli(rt, "create", "natlab", "--nat", `--hostfwd=tcp:127.0.0.1:${forwarded}-:80`);
      assert.equal(created.status, 0, created.stderr);
      const page = `hello-from-guest-${forwarded}`;
      guest = startNetGuest(images, info(rt, "natlab").portsSocket, MAC_A, {
        role: "nat",
        port: String(hostPort),
        path: "file",
        page,
        stay: "1",
      });
      assert.match(await guest.waitFor("ADDR"), /^\d+\.\d+\.\d+\.\d+\/\d+$/, "an address by DHCP");
      assert.equal(await guest.waitFor("MD5"), createHash("md5").update(body).digest("hex"));
      await guest.waitFor("READY");
      // A forwarded connection that the guest never answers would otherwise wait for undici's 300 s headers
      // timeout with nothing to show; fail sooner, with the guest's console and the switch's ports.
      let text: string;
      try {
        const res = await fetch(`http://127.0.0.1:${forwarded}/index.html`, {
          signal: AbortSignal.timeout(120_000),
        });
        text = await res.text();
      } catch (e) {
        const ports = JSON.stringify(info(rt, "natlab"));
        throw new Error(
          `GET 127.0.0.1:${forwarded} (forwarded to the guest's port 80): ${String(e)}\nswitch: ${ports}\nguest console:\n${guest.output()}`,
        );
      }
      assert.equal(text.trim(), page);
    } finally {
      guest?.stop();
      server.close();
      cli(rt, "delete", "natlab");
      rmSync(rt, { recursive: true, force: true });
    }
  },
);

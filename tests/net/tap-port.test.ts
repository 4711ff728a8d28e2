// The external port: a switch with `--tap DEV` (vde_plug) bridges its endpoints to a TAP device. The TAP
// device lives in a network namespace this test creates (so nothing touches the host's own network); the
// switch runs inside it, and an endpoint on the switch's ports socket (UNIX sockets cross network
// namespaces) asks by ARP for the TAP's address and gets the namespace kernel's answer. Needs root (to
// create the namespace and the TAP device) and vde_plug; skipped otherwise.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { encodeFrame, FrameDecoder } from "../../src/net/frame-stream.js";
import { REPO } from "../linux/guest-console.js";

const BIN = resolve(REPO, "bin/viridian.js");
const NS = `viridian-tap-${process.pid}`;

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return "needs root to create a network namespace and a TAP device";
  if (spawnSync("sh", ["-c", "command -v vde_plug"]).status !== 0) return "vde_plug not installed (vdeplug)";
  const r = spawnSync("ip", ["netns", "add", NS], { encoding: "utf8" });
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  return false;
}

const ME = [0x02, 0, 0, 0, 0, 0x0a];
const MY_IP = [10, 9, 0, 2];
const TAP_IP = [10, 9, 0, 1];

function arpRequest(): Uint8Array {
  const f = new Uint8Array(42);
  f.fill(0xff, 0, 6);
  f.set(ME, 6);
  f.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1], 12);
  f.set(ME, 22);
  f.set(MY_IP, 28);
  f.set(TAP_IP, 38);
  return f;
}

const SETUP = "ip tuntap add vtap0 mode tap && ip addr add 10.9.0.1/24 dev vtap0 && ip link set vtap0 up";

test(
  "a switch's TAP port joins its endpoints to a TAP device",
  { skip: skipReason(), timeout: 120_000 },
  async () => {
    const rt = mkdtempSync(join(tmpdir(), "viridian-tap-"));
    const env = { ...process.env, VIRIDIAN_RUNTIME_DIR: rt };
    try {
      const setup = spawnSync("ip", ["netns", "exec", NS, "sh", "-c", SETUP], { encoding: "utf8" });
      assert.equal(setup.status, 0, setup.stderr);
      const serve = spawn(
        "ip",
        ["netns", "exec", NS, process.execPath, BIN, "switch", "serve", "ext", "--tap", "vtap0", "--keep"],
        { env, stdio: ["ignore", "ignore", "pipe"] },
      );
      let log = "";
      serve.stderr.on("data", (d: Buffer) => (log += d.toString()));
      try {
        while (!log.includes("ports socket")) {
          if (serve.exitCode !== null) assert.fail(`switch serve exited: ${log}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const socket = connect(join(rt, "switches/ext/ports.sock"));
        const decoder = new FrameDecoder();
        const reply = new Promise<Uint8Array>((resolveReply) => {
          socket.on("data", (c: Buffer) => {
            for (const f of decoder.push(c)) {
              const isArpReply = f[12] === 0x08 && f[13] === 0x06 && f[21] === 2;
              if (isArpReply && f.subarray(28, 32).every((b, i) => b === TAP_IP[i])) resolveReply(f);
            }
          });
        });
        // The TAP's carrier comes up when vde_plug attaches; ask until the namespace's kernel answers.
        const ask = setInterval(() => socket.write(encodeFrame(arpRequest())), 200);
        const f = await reply;
        clearInterval(ask);
        assert.deepEqual([...f.subarray(0, 6)], ME, "the reply is addressed to the endpoint");
        assert.deepEqual([...f.subarray(32, 38)], ME);
        socket.destroy();
        const info = spawnSync(process.execPath, [BIN, "switch", "info", "ext", "--json"], {
          env,
          encoding: "utf8",
        });
        const ports = (JSON.parse(info.stdout) as { ports: { kind: string; stats: { rxFrames: number } }[] })
          .ports;
        assert.ok(
          ports.some((p) => p.kind === "tap" && p.stats.rxFrames > 0),
          info.stdout,
        );
      } finally {
        serve.kill("SIGTERM");
        await new Promise((r) => serve.once("exit", r));
      }
    } finally {
      spawnSync("ip", ["netns", "del", NS]);
      rmSync(rt, { recursive: true, force: true });
    }
  },
);

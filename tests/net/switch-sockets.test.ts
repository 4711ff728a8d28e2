// The switch daemon over real UNIX sockets with raw frames (no guests): endpoints exchange frames in the
// wire format, a stream that breaks the framing loses its port and nobody else notices, an endpoint that
// stops reading loses frames (counted) while the others get every frame, the control socket answers, and a
// capture streams a pcap. The switch runs in this process; its sockets are in a temporary directory.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame, FrameDecoder } from "../../src/net/frame-stream.js";
import { SwitchDaemon, portsSocketOf } from "../../src/host/switch-daemon.js";
import { controlRequest, openCapture } from "../../src/host/switch-client.js";
import type { SwitchInfo } from "../../src/host/switch-daemon.js";

function frame(dst: number, src: number, size = 60, fill = 0): Uint8Array {
  const f = new Uint8Array(size).fill(fill);
  f.set([0x02, 0, 0, 0, 0, dst], 0);
  if (dst === 0xff) f.fill(0xff, 0, 6);
  f.set([0x02, 0, 0, 0, 0, src], 6);
  f[12] = 0x88;
  f[13] = 0xb5; // the local experimental EtherType
  return f;
}

interface Endpoint {
  socket: Socket;
  frames: Uint8Array[];
  /** Resolves once `n` frames have arrived. */
  received(n: number): Promise<void>;
  closed: Promise<void>;
}

function endpoint(path: string, read = true): Promise<Endpoint> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const decoder = new FrameDecoder();
    const frames: Uint8Array[] = [];
    const waiters: (() => void)[] = [];
    if (read) {
      socket.on("data", (c: Buffer) => {
        frames.push(...decoder.push(c));
        for (const w of [...waiters]) w();
      });
    } else socket.pause();
    socket.on("error", () => undefined);
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () =>
      resolve({
        socket,
        frames,
        closed,
        received: (n) =>
          new Promise((r) => {
            const check = () => {
              if (frames.length >= n) {
                waiters.splice(waiters.indexOf(check), 1);
                r();
              }
            };
            waiters.push(check);
            check();
          }),
      }),
    );
  });
}

async function withSwitch(
  body: (d: SwitchDaemon, name: string, ports: string) => Promise<void>,
): Promise<void> {
  const rt = mkdtempSync(join(tmpdir(), "viridian-sw-"));
  const saved = process.env.VIRIDIAN_RUNTIME_DIR;
  process.env.VIRIDIAN_RUNTIME_DIR = rt;
  const dir = join(rt, "switches", "t");
  const d = await SwitchDaemon.start({ name: "t", dir, nat: false, forwards: [], stopWhenIdle: false });
  try {
    await body(d, "t", portsSocketOf(dir));
  } finally {
    d.stop();
    if (saved === undefined) delete process.env.VIRIDIAN_RUNTIME_DIR;
    else process.env.VIRIDIAN_RUNTIME_DIR = saved;
    rmSync(rt, { recursive: true, force: true });
  }
}

/** Waits until the switch has `n` ports (connections are accepted asynchronously). */
async function ports(d: SwitchDaemon, n: number): Promise<void> {
  while (d.switch.ports().length !== n) await new Promise((r) => setImmediate(r));
}

const LIMIT = { timeout: 120_000 };

test(
  "endpoints on the ports socket exchange frames; unicast is learnt, broadcast floods",
  LIMIT,
  async () => {
    await withSwitch(async (d, name, path) => {
      const [a, b, c] = [await endpoint(path), await endpoint(path), await endpoint(path)];
      await ports(d, 3);
      a.socket.write(encodeFrame(frame(0xff, 0x0a)));
      await b.received(1);
      await c.received(1);
      b.socket.write(encodeFrame(frame(0x0a, 0x0b, 1514, 7)));
      await a.received(1);
      assert.deepEqual(a.frames[0], frame(0x0a, 0x0b, 1514, 7));
      const info = await controlRequest<SwitchInfo>(name, { op: "info" });
      assert.equal(info.ports.length, 3);
      assert.deepEqual(info.macTable.map((e) => e.mac).sort(), ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]);
      // The unicast frame went to A only.
      assert.deepEqual(
        info.ports.map((p) => p.stats.txFrames),
        [1, 1, 1],
      );
      for (const e of [a, b, c]) e.socket.destroy();
    });
  },
);

test(
  "a stream announcing a 4 GiB frame loses its port; the other endpoints keep working",
  LIMIT,
  async () => {
    await withSwitch(async (d, _name, path) => {
      const [a, b, evil] = [await endpoint(path), await endpoint(path), await endpoint(path)];
      await ports(d, 3);
      evil.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      await evil.closed;
      await ports(d, 2);
      a.socket.write(encodeFrame(frame(0xff, 0x0a)));
      await b.received(1);
      for (const e of [a, b]) e.socket.destroy();
    });
  },
);

test(
  "an endpoint that stops reading loses frames, counted; a reading endpoint gets every frame",
  LIMIT,
  async () => {
    await withSwitch(async (d, name, path) => {
      const sender = await endpoint(path);
      const fast = await endpoint(path);
      const slow = await endpoint(path, false);
      await ports(d, 3);
      // 4,000 full-size frames (6 MB): far more than a UNIX socket buffer plus the 512-frame port queue. The
      // sender goes in batches of 256 that the reading endpoint has taken before the next: a switch has no
      // flow control towards senders, so an endpoint faster than the reader would lose frames there too.
      const n = 4000;
      for (let i = 0; i < n;) {
        const batch = Math.min(256, n - i);
        for (let k = 0; k < batch; k++, i++)
          sender.socket.write(encodeFrame(frame(0xff, 0x0a, 1514, i & 0xff)));
        await fast.received(i);
      }
      assert.ok(
        fast.frames.every((f, i) => f[100] === (i & 0xff)),
        "in order, none lost",
      );
      const info = await controlRequest<SwitchInfo>(name, { op: "info" });
      const slowStats = info.ports[2]!.stats;
      assert.ok(slowStats.txDropped > 0, JSON.stringify(slowStats));
      assert.equal(slowStats.txFrames + slowStats.txDropped, n);
      assert.equal(info.ports[1]!.stats.txDropped, 0);
      for (const e of [sender, fast, slow]) e.socket.destroy();
    });
  },
);

test("a capture over the control socket streams a pcap of the port's frames", LIMIT, async () => {
  await withSwitch(async (d, name, path) => {
    const a = await endpoint(path);
    const b = await endpoint(path);
    await ports(d, 2);
    const bytes: Buffer[] = [];
    const cap = await openCapture(name, d.switch.ports()[1]!.id, (x) => bytes.push(x));
    a.socket.write(encodeFrame(frame(0xff, 0x0a, 100, 1)));
    await b.received(1);
    b.socket.write(encodeFrame(frame(0x0a, 0x0b, 80, 2)));
    await a.received(1);
    while (Buffer.concat(bytes).length < 24 + 16 + 100 + 16 + 80) await new Promise((r) => setImmediate(r));
    cap.destroy();
    const all = Buffer.concat(bytes);
    assert.equal(all.readUInt32LE(0), 0xa1b2c3d4);
    assert.equal(all.readUInt32LE(24 + 8), 100);
    assert.equal(all.readUInt32LE(24 + 16 + 100 + 8), 80);
    await assert.rejects(
      openCapture(name, 999, () => undefined),
      /no port 999/,
    );
    for (const e of [a, b]) e.socket.destroy();
  });
});

test("VLAN sockets: endpoints on different VLANs never see each other's frames", LIMIT, async () => {
  await withSwitch(async (d, name, path) => {
    const { path: red } = await controlRequest<{ path: string }>(name, { op: "listen", vlan: 10 });
    const plain = await endpoint(path);
    const r1 = await endpoint(red);
    const r2 = await endpoint(red);
    await ports(d, 3);
    r1.socket.write(encodeFrame(frame(0xff, 0x0a)));
    plain.socket.write(encodeFrame(frame(0xff, 0x0c)));
    await r2.received(1);
    // A marker from r2 that r1 gets after the broadcast from `plain` would have arrived, were it delivered.
    r2.socket.write(encodeFrame(frame(0x0a, 0x0b)));
    await r1.received(1);
    assert.equal(r1.frames.length + r2.frames.length, 2);
    assert.equal(plain.frames.length, 0);
    await assert.rejects(controlRequest(name, { op: "listen", vlan: 5000 }), /outside 1\.\.4094/);
    for (const e of [plain, r1, r2]) e.socket.destroy();
  });
});

test("the control socket answers bad requests with an error, not a crash", LIMIT, async () => {
  await withSwitch(async (_d, name) => {
    await assert.rejects(controlRequest(name, { op: "nope" } as never), /unknown op/);
    await assert.rejects(controlRequest("no-such-switch", { op: "info" }), /no switch 'no-such-switch'/);
  });
});

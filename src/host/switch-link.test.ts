// Tests of a NIC's link (src/host/switch-link.ts) over real sockets: a connection to a ports socket and a link
// on one end of a socketpair-like pair of connected sockets carry frames both ways in the wire format,
// report their end once with the peer's name, refuse what the wire cannot carry, and a socket that cannot
// be reached is an error naming it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame, FrameDecoder } from "../net/frame-stream.js";
import { NetError } from "../net/net-error.js";
import { connectSwitchLink, streamLink, type SwitchLinkEvents } from "./switch-link.js";

function recorder(): SwitchLinkEvents & { frames: Uint8Array[]; closes: string[] } {
  const r = {
    frames: [] as Uint8Array[],
    closes: [] as string[],
    onFrame: (f: Uint8Array) => void r.frames.push(f),
    onDrain: () => undefined,
    onClose: (reason: string) => void r.closes.push(reason),
  };
  return r;
}

const frame = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ok(), "condition not reached");
}

test("a switch connection carries frames both ways and reports the switch's end once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-link-"));
  const path = join(dir, "ports.sock");
  let peer: Socket | undefined;
  const fromLink: Uint8Array[] = [];
  const server = createServer((s) => {
    peer = s;
    const d = new FrameDecoder();
    s.on("data", (c: Buffer) => fromLink.push(...d.push(c)));
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    const events = recorder();
    const link = await connectSwitchLink(path, events);
    assert.equal(link.send(frame(60, 1)), true);
    // Shorter than an Ethernet header: never put on the wire.
    link.send(frame(13, 2));
    await until(() => peer !== undefined && fromLink.length === 1);
    assert.deepEqual(fromLink[0], frame(60, 1));
    peer!.write(encodeFrame(frame(1514, 3)));
    await until(() => events.frames.length === 1);
    assert.deepEqual(events.frames[0], frame(1514, 3));
    peer!.end();
    await until(() => events.closes.length > 0);
    assert.equal(link.open, false);
    link.close();
    assert.deepEqual(events.closes, ["the switch closed the connection"]);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a socket that cannot be reached is a NetError naming it", async () => {
  const path = join(tmpdir(), `viridian-no-such-${process.pid}.sock`);
  await assert.rejects(
    () => connectSwitchLink(path, recorder()),
    (e: unknown) => e instanceof NetError && e.message.includes(path) && e.message.includes("ENOENT"),
  );
});

test("a link on a connected socket names its peer when it ends; a broken framing ends it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-link-"));
  const path = join(dir, "pair.sock");
  const accepted: Socket[] = [];
  const server = createServer((s) => void accepted.push(s));
  await new Promise<void>((r) => server.listen(path, r));
  try {
    for (const how of ["end", "garbage"] as const) {
      const events = recorder();
      const socket = connect(path);
      await new Promise<void>((r) => socket.once("connect", () => r()));
      const link = streamLink(socket, events, "the user NAT");
      await until(() => accepted.length > 0);
      const peer = accepted.shift()!;
      if (how === "end") peer.end();
      // A length of 4 GiB: the stream has lost its framing.
      else peer.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
      await until(() => events.closes.length > 0);
      assert.equal(link.open, false);
      assert.equal(events.closes.length, 1);
      if (how === "end") assert.equal(events.closes[0], "the user NAT closed the connection");
      else assert.match(events.closes[0]!, /frame|length/i);
      peer.destroy();
    }
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

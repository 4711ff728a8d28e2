// Tests of a NIC's private NAT (src/host/user-nat.ts) with Debian's passt and no guest: passt starts with
// QEMU's address plan and the forwards on the addresses given, it quits by itself when the NIC's socket
// closes (no orphan), and every way of failing to start is an error that names its cause: passt not
// installed (the Debian package), a forwarded port in use (before passt runs), a passt that exits before it
// is ready (its own words), an address this host lacks. Nothing leaves this machine's loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetError } from "../net/net-error.js";
import { checkForwardsFree, startUserNat, userNatArgs } from "./user-nat.js";
import { requireProgram } from "./external-programs.js";

const havePasst = (() => {
  try {
    requireProgram("passt");
    return true;
  } catch {
    return false;
  }
})();

function listening(host: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen({ host, port: 0 }, () => {
      const a = server.address();
      resolve({ server, port: typeof a === "object" && a ? a.port : 0 });
    });
  });
}

async function freePort(): Promise<number> {
  const { server, port } = await listening("127.0.0.1");
  await new Promise((r) => server.close(r));
  return port;
}

/** Whether something accepts TCP connections at 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function withPath<T>(path: string, body: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = path;
  return body().finally(() => {
    process.env.PATH = saved;
  });
}

test("passt's arguments: QEMU's addresses, the MTU, each forward on its own address", () => {
  const args = userNatArgs(
    [
      { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 },
      { protocol: "udp", hostAddress: "0.0.0.0", hostPort: 5353, guestPort: 53 },
    ],
    "/p/passt.pid",
  );
  assert.deepEqual(args, [
    "-f",
    "--fd",
    "3",
    "-P",
    "/p/passt.pid",
    "-m",
    "1500",
    "-a",
    "10.0.2.15",
    "-n",
    "24",
    "-g",
    "10.0.2.2",
    "--dns-forward",
    "10.0.2.3",
    "-t",
    "127.0.0.1/8080:80",
    "-u",
    "0.0.0.0/5353:53",
  ]);
  // A forward without an address would listen everywhere: refused.
  assert.throws(
    () => userNatArgs([{ protocol: "tcp", hostAddress: "", hostPort: 1, guestPort: 1 }], "/p"),
    NetError,
  );
});

test("a forwarded port in use, or an address this host lacks, is an error naming the forward", async () => {
  const { server, port } = await listening("127.0.0.1");
  try {
    await assert.rejects(
      () => checkForwardsFree([{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: port, guestPort: 80 }]),
      (e: unknown) =>
        e instanceof NetError &&
        e.message === `hostfwd=tcp:127.0.0.1:${port}-:80: TCP port ${port} on 127.0.0.1 is in use`,
    );
  } finally {
    server.close();
  }
  await assert.rejects(
    () => checkForwardsFree([{ protocol: "tcp", hostAddress: "192.0.2.77", hostPort: 8080, guestPort: 80 }]),
    /hostfwd=tcp:192\.0\.2\.77:8080-:80: 192\.0\.2\.77 is not an address of this host/,
  );
  // Free ports are left free.
  const free = await freePort();
  await checkForwardsFree([
    { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: free, guestPort: 80 },
    { protocol: "udp", hostAddress: "127.0.0.1", hostPort: free, guestPort: 53 },
  ]);
  assert.equal(await accepts(free), false);
});

test("passt missing from PATH: the error names the Debian package", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-nopasst-"));
  try {
    await withPath(dir, async () => {
      await assert.rejects(
        () => startUserNat({ forwards: [], logPath: join(dir, "log") }),
        /passt is not installed: install the Debian package 'passt'/,
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a passt that exits before it is ready: the error has its output and the log's path", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-badpasst-"));
  try {
    // A stand-in with passt's name that fails as passt does when a port is taken between our check and its bind.
    writeFileSync(
      join(dir, "passt"),
      "#!/bin/sh\necho \"Failed to bind any port for '-t 127.0.0.1/1:80', exiting\" >&2\nexit 1\n",
      { mode: 0o755 },
    );
    const log = join(dir, "nat.log");
    await withPath(`${dir}:${process.env.PATH ?? ""}`, async () => {
      await assert.rejects(
        () => startUserNat({ forwards: [], logPath: log }),
        (e: unknown) =>
          e instanceof NetError &&
          e.message.startsWith("passt exited (1) before it was ready: Failed to bind any port") &&
          e.message.includes(`(log: ${log})`),
      );
    });
    assert.match(readFileSync(log, "utf8"), /Failed to bind any port/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "passt starts, listens only where a forward says, and quits by itself when the NIC's socket closes",
  { skip: !havePasst && "passt is not installed", timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "viridian-usernat-"));
    try {
      const port = await freePort();
      const nat = await startUserNat({
        forwards: [{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: port, guestPort: 80 }],
        logPath: join(dir, "nat.log"),
      });
      assert.ok(existsSync(`/proc/${nat.pid}`), "passt runs");
      assert.equal(nat.exitStatus(), null);
      // Ready means the forward listens (a connection is accepted; with no guest behind it, it just closes).
      assert.equal(await accepts(port), true);
      // Closing only the socket (as a killed worker's kernel does) ends passt, with status 0.
      nat.socket.destroy();
      await nat.exited;
      assert.equal(nat.exitStatus(), "0");
      assert.equal(await accepts(port), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "a log that cannot be written is an error naming it, and no passt is started",
  { skip: !havePasst && "passt is not installed" },
  async () => {
    const log = join(tmpdir(), `viridian-no-such-dir-${process.pid}`, "nat.log");
    await assert.rejects(
      () => startUserNat({ forwards: [], logPath: log }),
      (e: unknown) =>
        e instanceof NetError && e.message.startsWith(`cannot write passt's log ${log}: ENOENT`),
    );
  },
);

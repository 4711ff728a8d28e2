// The bundled Linux guest on user networking, as a user runs it: `viridian run --nic user,hostfwd=tcp:
// 127.0.0.1:P-:80` in one boot. hv_netvsc binds eth0; udhcpc, typed at the prompt, gets a lease from the NIC's
// own NAT (QEMU's plan: 10.0.2.15/24, gateway 10.0.2.2; the host's name servers); the guest fetches a 3 MiB file with
// wget from an HTTP server this test runs on the host's 127.0.0.1, through the gateway address, and its md5
// matches; busybox httpd in the guest serves a page that the test fetches from the host at 127.0.0.1:P. After
// `poweroff` (status 0) the NIC's passt has exited, nothing listens on P, the NAT's log is gone, and the boot
// log is clean. Also without a guest boot: `viridian run` refusals (a forwarded port in use, passt not
// installed, a bad port), no orphan passt after `viridian run` is killed with SIGKILL, and a passt killed
// under a running VM reported on stderr with its log kept.
// Must not: assert timings (limits only keep a hang from hanging the suite), or send anything beyond this
// machine's loopback (the guest reaches only the test's server, through the gateway).
// Spec: issue 13 acceptance 1 (the bundled guest's part: hv_netvsc, DHCP, wget through the gateway) and 2
// (port forward); QEMU's `-nic user` address plan.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, get, type Server } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
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
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;
const BIN = resolve(REPO, "bin/viridian.js");
const MAC = "00:15:5d:00:0d:01";
const PAGE = `served by busybox httpd in the Viridian guest ${randomBytes(8).toString("hex")}`;

const havePasst = spawnSync("sh", ["-c", "command -v passt"]).status === 0;
const skip = skipReason("viridian") || (!havePasst && "passt is not installed (Debian package 'passt')");

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const s = createTcpServer();
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      s.close(() => resolvePort(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** Whether something accepts TCP connections at 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      r(true);
    });
    s.once("error", () => r(false));
  });
}

/**
 * The pids of passt processes whose parent is `parent` (from /proc/PID/stat: pid (comm) state ppid). Debian's
 * passt re-executes itself as passt.avx2 on processors with AVX2.
 */
function passtChildren(parent: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const m = /^(\d+) \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && /^passt(\.avx2)?$/.test(m[2]!) && Number(m[3]) === parent) found.push(Number(m[1]));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** A process that is gone or a zombie no longer runs. */
function runs(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function waitUntil(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `viridian run --nic user` of the bundled guest, once its console shows the guest running with passt as the
 * run's child (so the NAT is past its start): the process, its passt pids, its stderr so far, and its end.
 */
async function runningUserNic(env: NodeJS.ProcessEnv): Promise<{
  child: ChildProcessWithoutNullStreams;
  pids: number[];
  stderr: () => string;
  exited: Promise<void>;
}> {
  const child = spawn(process.execPath, [BIN, "run", "--nic", "user"], {
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  let consoleBytes = 0;
  child.stdout.on("data", (c: Buffer) => (consoleBytes += c.length));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((r) => child.once("close", () => r()));
  let pids: number[] = [];
  try {
    await waitUntil(
      "the guest runs, with passt as a child of viridian run",
      () => consoleBytes > 0 && (pids = passtChildren(child.pid!)).length > 0,
      120_000,
    );
  } catch (e) {
    child.kill("SIGKILL");
    await exited;
    throw new Error(`${(e as Error).message}\nviridian stderr:\n${stderr}`);
  }
  return { child, pids, stderr: () => stderr, exited };
}

/** GET http://127.0.0.1:port/path from the host: status and body. */
function fetchLocal(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = get({ host: "127.0.0.1", port, path, timeout: 60_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolveGet({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("no answer within 60 s")));
    req.on("error", reject);
  });
}

function viridianRun(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, "run", ...args], { encoding: "utf8", env, timeout: 120_000 });
  return { status: r.status, stderr: r.stderr };
}

describe("viridian run --nic user: refusals and no orphan NAT (no guest boot)", { skip }, () => {
  const rt = mkdtempSync(join(tmpdir(), "viridian-usernet-rt-"));
  const env = { ...process.env, VIRIDIAN_RUNTIME_DIR: rt };
  after(() => rmSync(rt, { recursive: true, force: true }));

  it("a forwarded port in use is an error naming it (status 2), before the guest starts", async () => {
    const busy = createTcpServer();
    await new Promise<void>((r) => busy.listen({ host: "127.0.0.1", port: 0 }, r));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = viridianRun(["--nic", `user,hostfwd=tcp:127.0.0.1:${port}-:80`], env);
      assert.equal(r.status, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `NIC 0 \\(.*\\): hostfwd=tcp:127\\.0\\.0\\.1:${port}-:80: TCP port ${port} on 127\\.0\\.0\\.1 is in use`,
        ),
      );
    } finally {
      busy.close();
    }
  });

  it("passt not installed: the error names the Debian package (status 2)", () => {
    const r = viridianRun(["--nic", "user"], { ...env, PATH: join(rt, "empty") });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /passt is not installed: install the Debian package 'passt'/);
  });

  it("a bad port or a forward in the wrong form is a usage error (status 2)", () => {
    for (const [nic, message] of [
      ["user,hostfwd=tcp::70000-:80", /host port '70000' is not a port/],
      ["user,hostfwd=tcp:127.0.0.1:8080-:0", /guest port '0' is not a port/],
      ["user,hostfwd=tcp:localhost:8080-:80", /is not \[tcp\|udp\]:\[hostaddr\]:hostport-:guestport/],
      ["user,switch=lab", /cannot use 'switch=lab'/],
    ] as const) {
      const r = viridianRun(["--nic", nic], env);
      assert.equal(r.status, 2, `${nic}: ${r.stderr}`);
      assert.match(r.stderr, message, nic);
    }
  });

  it(
    "the NIC's passt ends when viridian run is killed with SIGKILL (no orphan)",
    { timeout: 180_000 },
    async () => {
      // The NAT starts while the VM is built, before the guest runs; the kill comes as soon as the guest's
      // console shows the VM running (passt past its start, so nothing of the start is left behind either).
      const { child, pids, exited } = await runningUserNic(env);
      try {
        assert.equal(pids.length, 1);
        child.kill("SIGKILL");
        await exited;
        // Its socketpair's other end died with the process: passt quits (--fd implies --one-off).
        await waitUntil(`passt ${pids[0]} has exited`, () => !runs(pids[0]!), 60_000);
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
    },
  );
  it(
    "a NAT that dies while the VM runs is reported on stderr, and its log is kept",
    { timeout: 180_000 },
    async () => {
      const { child, pids, stderr, exited } = await runningUserNic(env);
      try {
        process.kill(pids[0]!, "SIGKILL");
        await waitUntil(
          "viridian run reports the NAT's end",
          () => /its NAT \(passt\) exited/.test(stderr()),
          60_000,
        ).catch((e: Error) => {
          throw new Error(`${e.message}\nviridian stderr:\n${stderr()}`);
        });
        const m =
          /NIC 0 \(00:15:5d(:[0-9a-f]{2}){3}\): its NAT \(passt\) exited \(SIGKILL\): .*; the guest's link is down; log: (\S+)\r?\n/.exec(
            stderr(),
          );
        assert.ok(m, stderr());
        assert.ok(existsSync(m[2]!), `the log ${m[2]} is kept`);
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
    },
  );
});

describe("the bundled guest on --nic user: DHCP, wget through the gateway, a port forward", { skip }, () => {
  const holder: {
    g?: GuestConsole;
    server?: Server;
    serverPort?: number;
    fwdPort?: number;
    md5?: string;
    rt?: string;
    passt?: number;
  } = {};
  before(async () => {
    const rt = mkdtempSync(join(tmpdir(), "viridian-usernet-"));
    holder.rt = rt;
    // The NAT's log goes to this runtime directory (the guest session is a child process with our environment).
    process.env.VIRIDIAN_RUNTIME_DIR = rt;
    const data = randomBytes(3 * 1024 * 1024);
    holder.md5 = createHash("md5").update(data).digest("hex");
    holder.server = createServer((req, res) => {
      if (req.url !== "/data") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-length": data.length }).end(data);
    });
    await new Promise<void>((r) => holder.server!.listen({ host: "127.0.0.1", port: 0 }, r));
    holder.serverPort = (holder.server.address() as { port: number }).port;
    holder.fwdPort = await freePort();
    holder.g = await startGuest(
      { emulator: "viridian", nics: [`user,hostfwd=tcp:127.0.0.1:${holder.fwdPort}-:80,mac=${MAC}`] },
      lim,
    );
  });
  after(async () => {
    await holder.g?.close();
    holder.server?.close();
    if (holder.rt) rmSync(holder.rt, { recursive: true, force: true });
  });
  const step = (name: string, body: (g: GuestConsole) => Promise<void>, afterFailureToo = false) =>
    it(name, { timeout: STEP_MS }, async () => {
      const { g } = holder;
      assert.ok(g, "the guest was not started");
      await g.step(() => body(g), afterFailureToo);
    });
  const run = async (g: GuestConsole, command: string): Promise<string> =>
    withoutControlSequences(await g.run(command)).trim();

  step("hv_netvsc binds eth0, and the NIC's own passt runs beside the VM", async (g) => {
    await g.waitForPrompt();
    assert.equal(await run(g, "cat /sys/class/net/eth0/address"), MAC);
    assert.equal(await run(g, "basename $(readlink /sys/class/net/eth0/device/driver)"), "hv_netvsc");
    const pids = passtChildren(g.pid!);
    assert.equal(pids.length, 1, `one passt child of ${g.pid}: ${pids.join(" ")}`);
    holder.passt = pids[0];
    const logs = readdirSync(join(holder.rt!, "logs"));
    assert.deepEqual(logs, [`user-nat-${g.pid}-nic0.log`]);
  });

  step(
    "udhcpc gets a lease from the NAT: 10.0.2.15/24, default route via 10.0.2.2, the host's name servers",
    async (g) => {
      const out = await run(g, "udhcpc -i eth0 -n -q -t 20 -T 3 -s /etc/udhcpc/default.script 2>&1");
      assert.match(out, /lease of 10\.0\.2\.15 obtained/);
      assert.equal(await run(g, "ip -4 -o addr show dev eth0 | awk '{ print $4 }'"), "10.0.2.15/24");
      assert.equal(await run(g, "ip route | awk '/^default/ { print $3 }'"), "10.0.2.2");
      // passt offers the host's IPv4 name servers (no query is sent: that would leave this machine).
      const hostServers = readFileSync("/etc/resolv.conf", "utf8")
        .split("\n")
        .map((l) => /^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
        .filter((a): a is string => a !== undefined);
      const guestServers = (await run(g, "awk '$1 == \"nameserver\" { print $2 }' /etc/resolv.conf"))
        .split("\n")
        .filter((l) => l !== "");
      assert.deepEqual(guestServers, hostServers);
    },
  );

  step("wget through the gateway reaches the host's 127.0.0.1: a 3 MiB file with its md5", async (g) => {
    const gw = "$(ip route | awk '/^default/ { print $3 }')";
    const got = await run(
      g,
      `wget -q -O /tmp/data http://${gw}:${holder.serverPort}/data && md5sum /tmp/data`,
    );
    assert.equal(got.split(/\s+/)[0], holder.md5, got);
  });

  step("the port forward: the host fetches busybox httpd's page at 127.0.0.1:P", async (g) => {
    await run(g, `mkdir -p /www && echo '${PAGE}' > /www/index.html && httpd -p 80 -h /www`);
    const r = await fetchLocal(holder.fwdPort!, "/index.html");
    assert.equal(r.status, 200);
    assert.equal(r.body, `${PAGE}\n`);
  });

  step(
    "after poweroff (status 0) passt has exited, nothing listens on P, and the NAT's log is gone",
    async (g) => {
      g.type("poweroff");
      const status = await g.waitExit(lim.bootMs);
      assert.equal(status, 0, `exit status (${g.exitText()})\n${g.stderr}`);
      await waitUntil(`passt ${holder.passt} has exited`, () => !runs(holder.passt!), 60_000);
      assert.equal(await accepts(holder.fwdPort!), false);
      assert.equal(existsSync(join(holder.rt!, "logs", `user-nat-${g.pid}-nic0.log`)), false);
    },
  );

  step(
    "the boot log has no unchecked MSR access, WARNING, BUG, Call Trace, probe failed or netvsc error",
    async (g) => {
      const log = g.consoleLog();
      assert.deepEqual(forbiddenLines(log), []);
      assert.deepEqual(
        log.filter((l) => /probe failed|probe of .* failed|hv_netvsc.*(error|fail|invalid)/i.test(l)),
        [],
      );
    },
    true,
  );
});

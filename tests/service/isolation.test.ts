// Isolation (issue 12, acceptance 3): two VMs, each a real worker process booting the bundled guest.
// `kill -9` of one worker while the other runs a console loop: the killed VM is reported Critical with the
// reason and a lifecycle event, the other VM and the service keep answering. `kill -9` of the service: both
// workers keep running, and a restarted service reattaches (pid file + socket): it lists them Running and
// their consoles work (the loop's output goes on; a command typed after the restart is answered). On the way,
// the guest's heartbeat reaches the VM's view (`worker.heartbeat`), a `health` event, and, from the worker's
// hello, the restarted service.
// Real HTTP over the service's UNIX socket; WebSockets for the consoles and the event stream.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type WebSocket from "ws";
import { routePath } from "../../src/api/routes.js";
import { Console, opened, TestService } from "./harness.js";

const PROMPT = "viridian-guest:~ # ";

/** The event stream (WebSocket), collected. */
async function events(
  svc: TestService,
): Promise<{ list: Array<{ type: string; data: Record<string, unknown> }>; ws: WebSocket }> {
  const ws = await opened(svc.websocket(routePath("events")));
  const list: Array<{ type: string; data: Record<string, unknown> }> = [];
  ws.on("message", (d: Buffer) => list.push(JSON.parse(d.toString("utf8")) as (typeof list)[number]));
  return { list, ws };
}

interface VmView {
  id: string;
  name: string;
  state: string;
  reason: string | null;
  worker: { pid: number; heartbeat: string | null } | null;
}

async function vm(svc: TestService, name: string): Promise<VmView> {
  return (await svc.ok("GET", routePath("getVm", { vm: name }))).body as VmView;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("isolation (issue 12, acceptance 3)", { timeout: 1_200_000 }, () => {
  let svc: TestService;
  before(async () => {
    svc = new TestService("isolation");
    await svc.start();
  });
  after(async () => {
    await svc.close();
  });

  it("kill -9 of a worker marks only its VM Critical; kill -9 of the service leaves the VMs running and a new service reattaches", async () => {
    const early = await events(svc);
    for (const name of ["victim", "survivor"]) {
      await svc.ok("POST", routePath("createVm"), { body: { name, memoryBytes: 128 * 1024 * 1024 } });
      const j = await svc.job(await svc.ok("POST", routePath("startVm", { vm: name })));
      assert.equal(j.state, "completed", JSON.stringify(j));
    }
    const victim = await vm(svc, "victim");
    const survivor = await vm(svc, "survivor");
    assert.ok(victim.worker && survivor.worker);
    assert.notEqual(victim.worker.pid, survivor.worker.pid);

    // The survivor's guest runs a console loop.
    let con = await Console.open(svc, "survivor");
    await con.waitFor(PROMPT);
    con.type("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done");
    await con.waitFor("tick-2\r\n");

    // The guest's heartbeat (its hv_utils answering the heartbeat IC) reaches the VM's view and the events.
    let hb = await vm(svc, "survivor");
    for (let tries = 0; hb.worker?.heartbeat !== "ok"; tries++) {
      assert.ok(tries < 1200, `no heartbeat from the survivor: ${JSON.stringify(hb.worker)}`);
      await new Promise((r) => setTimeout(r, 100));
      hb = await vm(svc, "survivor");
    }
    assert.ok(
      early.list.some((e) => e.type === "health" && e.data.name === "survivor" && e.data.heartbeat === "ok"),
      `a health event: ${JSON.stringify(early.list.filter((e) => e.type === "health"))}`,
    );
    early.ws.close();

    // kill -9 of the victim's worker.
    const ev = await events(svc);
    process.kill(victim.worker.pid, "SIGKILL");
    let v = await vm(svc, "victim");
    while (v.state !== "Critical") {
      assert.ok(["Running", "Starting"].includes(v.state), `victim went ${v.state}`);
      await new Promise((r) => setTimeout(r, 100));
      v = await vm(svc, "victim");
    }
    assert.equal(v.worker, null);
    assert.match(v.reason ?? "", /was killed by SIGKILL/);
    const lost = ev.list.find(
      (e) => e.type === "lifecycle" && e.data.name === "victim" && e.data.state === "Critical",
    );
    assert.ok(lost, `a lifecycle event for the lost worker: ${JSON.stringify(ev.list)}`);
    assert.equal(lost.data.reason, v.reason);
    ev.ws.close();
    // The other VM and the service are untouched: its loop goes on, the service answers.
    const mark = con.out.length;
    await con.waitFor(/tick-\d+\r\n/, mark);
    assert.equal((await vm(svc, "survivor")).state, "Running");
    assert.equal((await vm(svc, "survivor")).worker?.pid, survivor.worker.pid);
    await svc.ok("GET", routePath("listVms"));

    // A Critical VM starts again.
    const j = await svc.job(await svc.ok("POST", routePath("startVm", { vm: "victim" })));
    assert.equal(j.state, "completed", JSON.stringify(j));
    const restarted = (await vm(svc, "victim")).worker!.pid;
    con.close();

    // kill -9 of the service: both workers keep running.
    await svc.kill();
    assert.ok(alive(survivor.worker.pid), "the survivor's worker outlives the service");
    assert.ok(alive(restarted), "the victim's new worker outlives the service");

    // A restarted service reattaches: both Running, same workers, consoles work.
    await svc.start();
    for (const [name, pid] of [
      ["survivor", survivor.worker.pid],
      ["victim", restarted],
    ] as const) {
      const r = await vm(svc, name);
      assert.equal(r.state, "Running", `${name}: ${r.reason}`);
      assert.equal(r.worker?.pid, pid, `${name} keeps its worker`);
    }
    // The reattached worker tells the new service its guest's heartbeat at once (in its hello).
    assert.equal((await vm(svc, "survivor")).worker?.heartbeat, "ok");
    con = await Console.open(svc, "survivor");
    // The loop kept running across the restart: new ticks arrive on the new connection.
    const seen = con.out.length;
    await con.waitFor(/tick-\d+\r\n/, seen);
    con.type("\x03");
    await con.waitFor(PROMPT, seen);
    const at = con.out.length;
    con.type("echo after-restart-$((40+2))");
    await con.waitFor("after-restart-42\r\n", at);
    con.close();
    const vcon = await Console.open(svc, "victim");
    await vcon.waitFor(PROMPT);
    const vat = vcon.out.length;
    vcon.type("echo victim-$((1+1))");
    await vcon.waitFor("victim-2\r\n", vat);
    vcon.close();
  });
});

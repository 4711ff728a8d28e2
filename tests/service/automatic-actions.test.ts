// Automatic start and stop actions across a service restart (issue 12, "Lifecycle"), with real workers: a VM
// running when the service stops (SIGTERM) is turned off by its stop action and, with "start if it was
// running", started again by the next service; one that was not running stays Off; "start" starts whatever
// happened before. What the next service relies on is each VM's state.json, written off the event loop
// (BackgroundDurableWrites) and flushed before the service exits.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { routePath } from "../../src/api/routes.js";
import { TestService } from "./harness.js";

interface VmView {
  id: string;
  state: string;
  reason: string | null;
  worker: { pid: number } | null;
}

async function view(svc: TestService, name: string): Promise<VmView> {
  return (await svc.ok("GET", routePath("getVm", { vm: name }))).body as VmView;
}

/** Waits (no time limit but the test's) until the VM is in one of `states`. */
async function until(svc: TestService, name: string, states: string[]): Promise<VmView> {
  for (;;) {
    const v = await view(svc, name);
    if (states.includes(v.state)) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("automatic start and stop actions across a service restart", { timeout: 300_000 }, () => {
  const svc = new TestService("auto-actions");
  before(() => svc.start());
  after(() => svc.close());

  it("start-if-running restarts the VM that was running, leaves the other Off; start starts regardless", async () => {
    const mk = async (name: string, automaticStartAction: string) =>
      (
        (
          await svc.ok("POST", routePath("createVm"), {
            body: {
              name,
              memoryBytes: 64 * 1024 * 1024,
              automaticStartAction,
              automaticStopAction: "turn-off",
            },
          })
        ).body as VmView
      ).id;
    const wasRunning = await mk("was-running", "start-if-running");
    const wasOff = await mk("was-off", "start-if-running");
    await mk("always", "start");
    const j = await svc.job(await svc.ok("POST", routePath("startVm", { vm: "was-running" })));
    assert.equal(j.state, "completed", JSON.stringify(j));
    const pid = (await until(svc, "was-running", ["Running"])).worker!.pid;

    assert.equal(await svc.stop(), 0, svc.log);
    // The stop action turned the worker off (it exits right after answering); what the VMs were doing is on
    // disk for the next service.
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
    const state = (id: string) => join(svc.dataDir, "vms", id, "state.json");
    assert.deepEqual(JSON.parse(readFileSync(state(wasRunning), "utf8")), {
      running: true,
      scope: "default",
    });
    assert.ok(
      !existsSync(state(wasOff)) || JSON.parse(readFileSync(state(wasOff), "utf8")).running === false,
      "the VM never started must not be recorded as running",
    );

    await svc.start();
    const back = await until(svc, "was-running", ["Running"]);
    assert.notEqual(back.worker?.pid, pid, "a new worker");
    await until(svc, "always", ["Running"]);
    assert.equal((await view(svc, "was-off")).state, "Off");
    for (const name of ["was-running", "always"]) {
      const k = await svc.job(
        await svc.ok("POST", routePath("stopVm", { vm: name }), { body: { turnOff: true } }),
      );
      assert.equal(k.state, "completed", JSON.stringify(k));
    }
  });
});

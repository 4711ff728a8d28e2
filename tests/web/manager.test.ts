// The web UI in a real browser (issue 14, acceptance 1, 2, 3 and 5's wizard): playwright-core drives Debian's
// chromium (headless, a fresh profile) against a real `viridian serve` whose worker boots the bundled guest,
// once for the whole file. The administrator signs in; the wizard refuses a bad name and a bad disk size with
// the API's messages next to their fields (and creates nothing), then creates a VM with a new 1 GiB VHDX, a
// differencing child of a base image and an adapter on a switch; the VM starts, its state changes without a
// reload, the serial console shows the guest's prompt, `uname -a` answers, the new disks are the guest's sda
// and sdb; the graph of guest instructions per second (its data, not pixels) rises when a CPU loop runs in
// the guest; heartbeat and the guest's KVP host name and OS appear; the DVD is swapped while it runs; it
// shuts down and the job completes in the jobs panel; the settings editor refuses an edit made on a stale
// version with a plain 412 message and saves after a reload; a disk is added and removed from the page. A VM
// Operator of scope `lab` sees only lab's VMs and no administrator's controls (no settings editor on its VM
// page), and an API call forged from its page gets 403. axe-core finds no serious or critical violation on
// each page. A worker killed with SIGKILL shows its VM Critical with the reason, without a reload.
// Screenshots go to test-artifacts/web/.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BrowserContext } from "playwright-core";
import WebSocket from "ws";
import { REPO, TestService, opened } from "../service/harness.js";
import { ARTIFACTS, Browser, LONG, PROMPT, axeCheck, signIn, waitText } from "./browser.js";

// The callbacks given to page.evaluate/waitForFunction run in the page: the little of the DOM they use, typed
// here for this module only (the project compiles without the DOM library).
interface TextNode {
  id: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): TextNode | null;
  getElementById(id: string): TextNode | null;
};
declare const sessionStorage: { getItem(key: string): string | null };
declare const window: {
  viridian: { consoleText(): string };
  noReload?: true;
};

describe("Viridian Manager in chromium (issue 14)", { timeout: 1_200_000 }, () => {
  let svc: TestService;
  let browser: Browser;
  let context: BrowserContext;
  let base: string;
  let adminToken: string;
  let operatorToken: string;

  before(async () => {
    svc = new TestService("web");
    await svc.start();
    base = `http://${svc.tcp}/`;
    adminToken = await svc.principal("admin", "Administrator", "host");
    await svc.ok("POST", "/v1/scopes", { body: { name: "lab" } });
    operatorToken = await svc.principal("operator", "VM Operator", "lab");
    browser = await Browser.launch();
    context = browser.context;
  });
  after(async () => {
    await browser?.close();
    await svc?.close();
  });

  it("serves the page and its bundle with their content types, and nothing else, without a token", async () => {
    const page = await svc.call("GET", "/", { via: "tcp" });
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
    const js = await svc.call("GET", "/ui/app.js", { via: "tcp" });
    assert.equal(js.status, 200);
    assert.match(String(js.headers["content-type"]), /^text\/javascript/);
    const css = await svc.call("GET", "/ui/xterm.css", { via: "tcp" });
    assert.match(String(css.headers["content-type"]), /^text\/css/);
    for (const stray of ["/ui/..%2Fpackage.json", "/ui/main.ts", "/ui/%2e%2e%2f%2e%2e%2fpackage.json"])
      assert.equal((await svc.call("GET", stray, { via: "tcp" })).status, 404, stray);
    // The API itself still wants a token.
    assert.equal((await svc.call("GET", "/v1/vms", { via: "tcp" })).status, 401);
  });

  it("a browser's WebSocket authenticates with its token as a subprotocol, never echoed back", async () => {
    const events = `ws://${svc.tcp}/v1/events`;
    const ws = await opened(new WebSocket(events, ["viridian", `viridian.bearer.${adminToken}`]));
    assert.equal(ws.protocol, "viridian");
    ws.close();
    await assert.rejects(opened(new WebSocket(events, ["viridian", "viridian.bearer.vrd_0.bad"])), {
      status: 401,
    });
    await assert.rejects(opened(new WebSocket(events, ["viridian"])), { status: 401 });
  });

  it("administrator: create, start, live state, console (uname -a), shut down, the job completes", async () => {
    // A switch for the wizard's network adapter (listed when the wizard is built).
    await svc.ok("POST", "/v1/switches", { body: { name: "weblan" } });
    const page = await context.newPage();
    // A bad token is refused plainly.
    await page.goto(base);
    await page.fill("#token", "vrd_nothing.wrong");
    await page.click("button[type=submit]");
    await page.waitForFunction(() =>
      /Not signed in/.test(document.getElementById("status")?.textContent ?? ""),
    );

    await page.fill("#token", adminToken);
    await page.click("button[type=submit]");
    await page.waitForSelector("#vms-title");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("viridian.token")), adminToken);
    assert.doesNotMatch(page.url(), /vrd_/, "the token is never in the URL");

    // The wizard: the API's validation messages, next to their fields (acceptance 5), and nothing created.
    await page.fill("#new-name", "bad name!");
    await page.click("#new-vm button[type=submit]");
    await page.waitForFunction(() =>
      /body\/name must match pattern/.test(document.getElementById("new-name-error")?.textContent ?? ""),
    );
    assert.equal(await page.getAttribute("#new-name", "aria-invalid"), "true");
    assert.match(String(await page.getAttribute("#new-name", "aria-describedby")), /new-name-error/);
    await page.fill("#new-name", "web1");
    await page.fill("#new-memory", "256");
    await page.click("#add-disk");
    const disk = join(svc.dataDir, "images", "web1.vhdx");
    await page.fill('[data-row="disk"] [data-disk="path"]', disk);
    await page.fill('[data-row="disk"] [data-disk="size"]', "0");
    await page.click("#new-vm button[type=submit]");
    const sizeError = await page.waitForFunction(
      () => {
        const e = document.querySelector('[data-row="disk"] .field-error:not(:empty)');
        return e ? { id: e.id, text: e.textContent } : null;
      },
      null,
      { timeout: 60_000 },
    );
    const refused = (await sizeError.jsonValue()) as { id: string; text: string };
    assert.match(refused.id, /^disk\d+-size-error$/, "the message is next to the size");
    assert.match(refused.text, /body\/disks\/0\/sizeBytes must be >= 1048576/);
    assert.equal(await page.getAttribute(`#${refused.id.replace(/-error$/, "")}`, "aria-invalid"), "true");
    assert.equal((await svc.call("GET", "/v1/vms/web1")).status, 404, "a refused wizard creates nothing");
    assert.equal(existsSync(disk), false);
    await page.screenshot({ path: join(ARTIFACTS, "wizard-1366.png"), fullPage: true });
    await axeCheck(page, "the wizard with its errors");
    // A new 1 GiB dynamic VHDX and a differencing child of a 64 MiB base, created with the VM.
    await page.fill('[data-row="disk"] [data-disk="size"]', "1");
    const baseImage = join(svc.dataDir, "images", "base.vhdx");
    const child = join(svc.dataDir, "images", "web1-child.vhdx");
    const made0 = await svc.cli(["vhd", "new", baseImage, "--size", "64M"]);
    assert.equal(made0.status, 0, made0.stderr);
    await page.click("#add-disk");
    const second = '[data-row="disk"]:nth-of-type(2)';
    await page.selectOption(`${second} [data-disk="kind"]`, "child");
    await page.fill(`${second} [data-disk="path"]`, child);
    await page.fill(`${second} [data-disk="parent"]`, baseImage);
    await page.click("#add-nic");
    await page.selectOption('[data-row="nic"] select', "weblan");
    await page.click("#new-vm button[type=submit]");
    await page.waitForSelector('tr[data-vm="web1"]');
    const made = (await svc.ok("GET", "/v1/vms/web1")).body as {
      config: {
        machine: { disks: Array<{ path: string; readOnly: boolean }>; nics: Array<{ switch: string }> };
      };
    };
    assert.deepEqual(
      made.config.machine.nics.map((n) => n.switch),
      ["weblan"],
    );
    assert.deepEqual(made.config.machine.disks, [
      { path: disk, readOnly: false },
      { path: child, readOnly: false },
    ]);
    assert.ok(existsSync(disk) && existsSync(child), "the wizard's new disks exist");
    await page.screenshot({ path: join(ARTIFACTS, "vm-list-1366.png"), fullPage: true });
    await axeCheck(page, "VM list");

    await page.click('tr[data-vm="web1"] a');
    await waitText(page, "#vm-state", "Off");
    await page.evaluate(() => (window.noReload = true));
    await page.click('button[data-action="start"]');
    await waitText(page, "#vm-state", "Running");

    await page.click("#open-console");
    await page.waitForFunction((p) => window.viridian.consoleText().includes(p), PROMPT, { timeout: LONG });
    await page.click("#terminal");
    await page.keyboard.type("uname -a");
    await page.keyboard.press("Enter");
    const answer = await page.waitForFunction(
      (p) => {
        const t = window.viridian.consoleText();
        const at = t.lastIndexOf("uname -a\n");
        if (at < 0) return null;
        const rest = t.slice(at + "uname -a\n".length);
        const end = rest.indexOf(p);
        return end < 0 ? null : rest.slice(0, end);
      },
      PROMPT,
      { timeout: LONG },
    );
    assert.match(String(await answer.jsonValue()), /^Linux viridian-guest 6\.1\.\S+ .*x86_64 GNU\/Linux\n$/);
    // The wizard's disks are the guest's sda (1 GiB: 1048576 KiB blocks) and sdb (the child: its base's 64 MiB,
    // read through the parent the worker may open).
    await page.keyboard.type("grep sd /proc/partitions");
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      () => /\b1048576 sda\b[\s\S]*\b65536 sdb\b/.test(window.viridian.consoleText()),
      null,
      { timeout: LONG },
    );

    // Acceptance 3: the graph of guest instructions per second rises with a CPU loop in the guest.
    const ips = async (): Promise<Array<number | null>> =>
      (
        JSON.parse((await page.getAttribute("#graph-ips", "data-values")) ?? "[]") as Array<
          Array<number | null>
        >
      )[1] ?? [];
    const samples = async (n: number): Promise<number[]> => {
      const start = (await ips()).length;
      await page.waitForFunction(
        ([el, want]) =>
          ((JSON.parse(document.getElementById(el!)?.getAttribute("data-values") ?? "[]") as unknown[][])[0]
            ?.length ?? 0) >= Math.min(Number(want), 120),
        ["graph-ips", String(start + n)],
        { timeout: LONG },
      );
      return (await ips()).slice(-n).filter((v): v is number => typeof v === "number");
    };
    // The idle rate is what the guest asks for (timer ticks, daemons); with the loop it is what the emulator
    // can do, several times more even on a loaded host. The median ignores a late boot-time burst.
    const idle = (await samples(5)).sort((a, b) => a - b);
    assert.ok(idle.length >= 3, `idle rates: ${JSON.stringify(idle)}`);
    const idleMedian = idle[Math.floor(idle.length / 2)]!;
    // Only samples taken a second after the loop began count, and the median of three in a row: one busy
    // second of the guest's own (a DHCP retry, a daemon) is not the loop.
    const loopFrom = Date.now() / 1000 + 1;
    await page.keyboard.type("while :; do :; done &");
    await page.keyboard.press("Enter");
    const busy = await page.waitForFunction(
      ([from, floor]) => {
        const d = JSON.parse(
          document.getElementById("graph-ips")?.getAttribute("data-values") ?? "[]",
        ) as Array<Array<number | null>>;
        const after = (d[1] ?? []).filter(
          (v, i): v is number => typeof v === "number" && (d[0]![i] ?? 0) > from!,
        );
        if (after.length < 3) return null;
        const last = after.slice(-3).sort((a, b) => a - b);
        return last[1]! > floor! ? last : null;
      },
      [loopFrom, Math.max(idleMedian * 2, 1e5)],
      { timeout: LONG },
    );
    const busyRates = (await busy.jsonValue()) as number[];
    const cpu = JSON.parse((await page.getAttribute("#graph-cpu", "data-values")) ?? "[]") as unknown[][];
    assert.equal(typeof cpu[1]?.at(-1), "number", "the host CPU graph has figures");
    console.log(
      `# guest instructions/s: idle ${idle.map(Math.round).join(" ")}, with the loop ${busyRates.map(Math.round).join(" ")}`,
    );
    await page.keyboard.type("kill %1");
    await page.keyboard.press("Enter");
    // Heartbeat and KVP (the guest's hv_kvp_daemon reports its host name; the service enumerates every 30 s).
    await waitText(page, "#vm-heartbeat", "OK");
    await waitText(page, "#kvp-hostname", "viridian-guest");
    assert.match(String(await page.textContent("#kvp-os")), /^Viridian guest 6\.1/);
    // The list shows the heartbeat too (from the VM view and its health events), then back to the VM page.
    await page.click('a[href="#/"]');
    await waitText(page, 'tr[data-vm="web1"] [data-field="heartbeat"]', "OK");
    await page.click('tr[data-vm="web1"] a');
    await page.waitForSelector("#dvd-path");

    // The DVD swapped while the VM runs.
    const iso = join(svc.dataDir, "images", "tools.iso");
    execFileSync("genisoimage", ["-quiet", "-o", iso, "-V", "TOOLS", join(REPO, "package.json")]);
    await page.fill("#dvd-path", iso);
    await page.click("#dvd-form button[type=submit]");
    await waitText(page, "#dvd-current", `Inserted: ${iso}`);
    await page.screenshot({ path: join(ARTIFACTS, "vm-page-console-1366.png"), fullPage: true });
    await axeCheck(page, "VM page with its console");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(ARTIFACTS, "vm-page-console-390.png"), fullPage: true });
    await page.setViewportSize({ width: 1366, height: 768 });

    await page.click('button[data-action="stop"]');
    await waitText(page, "#vm-state", "Off");
    await page.waitForSelector('tr[data-type="vm.stop"][data-state="completed"]', { timeout: LONG });
    await page.waitForSelector('tr[data-type="vm.start"][data-state="completed"]');
    assert.equal(await page.evaluate(() => window.noReload), true, "the page was never reloaded");

    // The settings editor (Off): an edit made elsewhere since the page showed the settings is refused (412)
    // and said so; reloaded, the edit goes through.
    assert.equal(await page.isDisabled("#set-memory"), false, "memory is editable while Off");
    const now = await svc.ok("GET", "/v1/vms/web1");
    await svc.ok("PATCH", "/v1/vms/web1", { body: { processors: 2 }, ifMatch: String(now.headers.etag) });
    await page.fill("#set-memory", "192");
    await page.click("#settings-form button[type=submit]");
    await page.waitForFunction(() =>
      /changed elsewhere.*\(412\)/.test(document.getElementById("settings-error")?.textContent ?? ""),
    );
    await page.click("#settings-reload");
    await page.waitForFunction(
      () => (document.getElementById("set-processors") as unknown as { value: string } | null)?.value === "2",
    );
    await page.fill("#set-memory", "192");
    await page.click("#settings-form button[type=submit]");
    await waitText(page, "#vm-memory", "192 MiB");
    const saved = (await svc.ok("GET", "/v1/vms/web1")).body as {
      config: { machine: { memoryBytes: number; processors: number } };
    };
    assert.equal(saved.config.machine.memoryBytes, 192 * 1024 * 1024);
    assert.equal(saved.config.machine.processors, 2, "the other client's edit is kept");
    // Disks from the page: a second differencing child of the base added (a job the page waits for), then
    // removed again.
    const extra = join(svc.dataDir, "images", "web1-extra.vhdx");
    await page.selectOption("#add-disk-kind", "child");
    await page.fill("#add-disk-path", extra);
    await page.fill("#add-disk-parent", baseImage);
    await page.click("#add-disk-form button[type=submit]");
    await page.waitForSelector('tr[data-disk-index="2"]', { timeout: LONG });
    assert.match(String(await page.textContent('tr[data-disk-index="2"] td.path')), /web1-extra\.vhdx$/);
    await page.click('tr[data-disk-index="2"] button');
    await page.waitForSelector('tr[data-disk-index="2"]', { state: "detached" });
    const disks = (await svc.ok("GET", "/v1/vms/web1")).body as { config: { machine: { disks: unknown[] } } };
    assert.equal(disks.config.machine.disks.length, 2);
    assert.ok(existsSync(extra), "a removed disk's image stays");
    await page.close();
  });

  it("a VM Operator of lab sees only lab's VMs and no administrator's controls; a forged call gets 403", async () => {
    await svc.ok("POST", "/v1/vms", { body: { name: "labvm", scope: "lab", memoryBytes: 64 * 1024 * 1024 } });
    const other = (
      await svc.ok("POST", "/v1/vms", { body: { name: "defaultvm", memoryBytes: 64 * 1024 * 1024 } })
    ).body as { id: string };
    const page = await context.newPage();
    await signIn(page, base, operatorToken);
    await page.waitForSelector('tr[data-vm="labvm"]');
    const names = await page.$$eval("tr[data-vm]", (rows) => rows.map((r) => r.getAttribute("data-vm")));
    assert.deepEqual(names, ["labvm"]);
    assert.equal(await page.$("#new-vm"), null, "no new-VM form without vm.create");
    assert.equal(await page.$('[data-action="delete"]'), null, "no delete without vm.delete");
    assert.notEqual(await page.$('tr[data-vm="labvm"] [data-action="start"]'), null, "start is offered");
    // Its VM page: graphs and the console, no settings editor (no vm.config.reconfigure, hardware or media).
    await page.click('tr[data-vm="labvm"] a');
    await waitText(page, "#vm-state", "Off");
    await page.waitForSelector("#graph-ips");
    assert.equal(await page.$("#settings-form"), null, "no settings editor without vm.config.reconfigure");
    assert.equal(await page.$("#add-disk-form"), null, "no disk form without vm.hardware.add");
    assert.equal(await page.$("#dvd-form"), null, "no DVD form without vm.media.change");
    await page.click('a[href="#/"]');
    await page.waitForSelector('tr[data-vm="labvm"]');
    await page.screenshot({ path: join(ARTIFACTS, "vm-list-operator-1366.png"), fullPage: true });
    await axeCheck(page, "the operator's VM list");

    const forged = await page.evaluate(async (otherVm) => {
      const auth = { authorization: `Bearer ${sessionStorage.getItem("viridian.token")}` };
      const create = await fetch("/v1/vms", {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ name: "forged", scope: "lab" }),
      });
      const start = await fetch(`/v1/vms/${otherVm}/start`, { method: "POST", headers: auth });
      return [create.status, start.status];
    }, other.id);
    assert.deepEqual(forged, [403, 403]);
    await page.close();
  });

  it("a worker's crash shows the VM Critical with the reason, live", async () => {
    // The VM of the operator's test, started here and killed as soon as its worker runs (no boot to wait for).
    const page = await context.newPage();
    await signIn(page, base, adminToken);
    await page.goto(`${base}#/vm/defaultvm`);
    await waitText(page, "#vm-state", "Off");
    await page.click('button[data-action="start"]');
    await waitText(page, "#vm-state", "Running");
    const vm = (await svc.ok("GET", "/v1/vms/defaultvm")).body as { worker: { pid: number } | null };
    assert.ok(vm.worker, "its worker runs");
    process.kill(vm.worker.pid, "SIGKILL");
    await waitText(page, "#vm-state", "Critical");
    await page.waitForFunction(() => (document.getElementById("vm-reason")?.textContent ?? "") !== "", null, {
      timeout: LONG,
    });
    const reason = await page.$eval("#vm-reason", (e) => e.textContent);
    assert.match(String(reason), /SIGKILL|signal|exit/i);
    assert.notEqual(
      await page.$('button[data-action="start"]:not([disabled])'),
      null,
      "a Critical VM may start",
    );
    await page.close();
  });
});

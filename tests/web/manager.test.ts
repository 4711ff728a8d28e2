// The web UI in a real browser (issue 14, acceptance 1 and 2's core): playwright-core drives Debian's chromium
// (headless, a fresh profile) against a real `viridian serve` whose worker boots the bundled guest, once for
// the whole file. The administrator signs in, is refused a bad name with the API's message, creates a VM with
// the page's form, starts it, watches its state change without a reload, opens the serial console, waits for
// the guest's prompt, types `uname -a` and reads the answer from xterm's buffer, shuts the guest down and sees
// the job complete in the jobs panel. A VM Operator of scope `lab` sees only lab's VMs and no administrator's
// controls, and an API call forged from its page gets 403. axe-core finds no serious or critical violation on
// each page. A worker killed with SIGKILL shows its VM Critical with the reason, without a reload.
// Screenshots go to test-artifacts/web/.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BrowserContext } from "playwright-core";
import WebSocket from "ws";
import { TestService, opened } from "../service/harness.js";
import { ARTIFACTS, Browser, LONG, PROMPT, axeCheck, signIn, waitText } from "./browser.js";

// The callbacks given to page.evaluate/waitForFunction run in the page: the little of the DOM they use, typed
// here for this module only (the project compiles without the DOM library).
interface TextNode {
  textContent: string | null;
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

    // The API's validation message, next to its field.
    await page.fill("#new-name", "bad name!");
    await page.click("#new-vm button[type=submit]");
    await page.waitForFunction(() =>
      /name/.test(document.getElementById("new-name-error")?.textContent ?? ""),
    );

    await page.fill("#new-name", "web1");
    await page.fill("#new-memory", "256");
    await page.click("#new-vm button[type=submit]");
    await page.waitForSelector('tr[data-vm="web1"]');
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

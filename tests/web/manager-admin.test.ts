// The web UI's administrator pages, VM list and resilience in a real browser (issue 14, acceptance 2, 4 and 5):
// playwright-core drives Debian's chromium against a real `viridian serve`, one guest boot for the file.
// An administrator creates a scope, a user, a group with that user, a role, a token (its secret shown once)
// and a VM Operator assignment on `lab` through the Access pages; the user signs in with that token in a
// second tab and sees only lab's VM and none of the administrator's pages, and the call it forges is refused
// and shows up denied in the administrator's audit view; a revoked token stops working at once. The VM list
// filters by scope and state, its bulk actions act only on the selected VMs they can act on, and the keyboard
// focus survives a live redraw. Then the service is killed and restarted on the same address while the guest
// runs: the events stream and the console reconnect by themselves, the console resumes (a command typed after
// the reconnect is answered) and the list follows state changes again. Every page is screenshotted at 1366x768
// and 390x844 into test-artifacts/web/ (light, and the list in the dark theme) and checked by axe-core.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { TestService } from "../service/harness.js";
import {
  ARTIFACTS,
  Browser,
  LONG,
  PROMPT,
  axeCheck,
  screenshotsAndAxe,
  signIn,
  waitText,
} from "./browser.js";

// The callbacks given to page.evaluate/waitForFunction run in the page: the little of the DOM they use, typed
// here for this module only (the project compiles without the DOM library).
interface Node {
  textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): Node | null;
  getElementById(id: string): Node | null;
  activeElement: Node | null;
};
declare const sessionStorage: { getItem(key: string): string | null };
declare const location: { hash: string };
declare const window: { viridian: { consoleText(): string } };

/** Types a command into the console and waits for its answer (the text between the command and the next prompt). */
async function run(page: Page, command: string): Promise<string> {
  await page.click("#terminal");
  await page.keyboard.type(command);
  await page.keyboard.press("Enter");
  const answer = await page.waitForFunction(
    ([cmd, p]) => {
      const t = window.viridian.consoleText();
      const at = t.lastIndexOf(`${cmd!}\n`);
      if (at < 0) return null;
      const rest = t.slice(at + cmd!.length + 1);
      const end = rest.indexOf(p!);
      return end < 0 ? null : rest.slice(0, end);
    },
    [command, PROMPT],
    { timeout: LONG },
  );
  return String(await answer.jsonValue());
}

const statusText = (page: Page) => page.evaluate(() => document.getElementById("status")?.textContent ?? "");

describe(
  "Viridian Manager: administrator pages, VM list, resilience (issue 14)",
  { timeout: 1_500_000 },
  () => {
    let svc: TestService;
    let browser: Browser;
    let base: string;
    let adminToken: string;
    let admin: Page;

    before(async () => {
      svc = new TestService("web-admin");
      await svc.start();
      base = `http://${svc.tcp}/`;
      adminToken = await svc.principal("admin", "Administrator", "host");
      browser = await Browser.launch();
      admin = await browser.context.newPage();
      await signIn(admin, base, adminToken);
    });
    after(async () => {
      await browser?.close();
      await svc?.close();
    });

    it("Access pages: scope, user, group, role, token (shown once), assignment; the user sees only lab; audit", async () => {
      await admin.click('#nav a[href="#/access"]');
      await admin.waitForSelector("#new-scope");
      await admin.fill("#scope-name", "lab");
      await admin.click("#new-scope button[type=submit]");
      await admin.waitForSelector('#scopes tr[data-scope="lab"]');
      // The API's refusal appears next to the form that asked.
      await admin.fill("#principal-name", "bad name!");
      await admin.click("#new-principal button[type=submit]");
      await admin.waitForFunction(() =>
        /name/.test(document.getElementById("new-principal-error")?.textContent ?? ""),
      );
      await admin.fill("#principal-name", "carol");
      await admin.click("#new-principal button[type=submit]");
      await admin.waitForSelector('#principals tr[data-principal="carol"]');
      await admin.fill("#principal-name", "ops");
      await admin.selectOption("#principal-kind", "group");
      await admin.click("#new-principal button[type=submit]");
      await admin.waitForSelector('#groups tr[data-group="ops"]');
      await admin.selectOption("#member-group", "ops");
      await admin.selectOption("#member-user", "carol");
      await admin.click("#new-member button[type=submit]");
      await admin.waitForFunction(() =>
        /carol/.test(document.querySelector('#groups tr[data-group="ops"]')?.textContent ?? ""),
      );
      await admin.fill("#role-name", "Watcher");
      await admin.check('#new-role input[value="vm.config.read"]');
      await admin.check('#new-role input[value="vm.console.output"]');
      await admin.click("#new-role button[type=submit]");
      await admin.waitForSelector('#roles tr[data-role="Watcher"]');
      assert.match(
        String(await admin.textContent('#roles tr[data-role="Watcher"]')),
        /vm\.config\.read, vm\.console\.output/,
      );

      await admin.selectOption("#token-user", "carol");
      await admin.click("#new-token button[type=submit]");
      await admin.waitForSelector("#token-secret");
      const secret = String(await admin.textContent("#token-secret"));
      assert.match(secret, /^vrd_/);
      await admin.selectOption("#assign-principal", "carol");
      await admin.selectOption("#assign-role", "VM Operator");
      await admin.selectOption("#assign-scope", "lab");
      await admin.click("#new-assignment button[type=submit]");
      await admin.waitForSelector('#assignments tr[data-assignment="carol|VM Operator|lab"]');
      assert.equal(await admin.$("#token-secret"), null, "the secret is shown once, then gone");
      await screenshotsAndAxe(admin, "access", "the Access pages");

      await svc.ok("POST", "/v1/vms", {
        body: { name: "labvm", scope: "lab", memoryBytes: 256 * 1024 * 1024 },
      });
      await svc.ok("POST", "/v1/vms", { body: { name: "defvm", memoryBytes: 64 * 1024 * 1024 } });

      // The user signs in with the new token in a second tab: lab's VM only, no administrator's pages.
      const carol = await browser.context.newPage();
      await signIn(carol, base, secret);
      await carol.waitForSelector('tr[data-vm="labvm"]');
      assert.deepEqual(
        await carol.$$eval("tr[data-vm]", (rows) => rows.map((r) => r.getAttribute("data-vm"))),
        ["labvm"],
      );
      assert.equal(await carol.$('#nav a[href="#/access"]'), null, "no Access page offered");
      assert.equal(await carol.$('#nav a[href="#/audit"]'), null, "no audit page offered");
      assert.equal(await carol.$("#new-vm"), null, "no new-VM form");
      await carol.evaluate(() => (location.hash = "#/access"));
      await carol.waitForFunction(() =>
        /Not offered/.test(document.getElementById("view")?.textContent ?? ""),
      );
      assert.equal(await carol.$("#new-principal"), null);
      const forged = await carol.evaluate(async () => {
        const auth = { authorization: `Bearer ${sessionStorage.getItem("viridian.token")}` };
        const create = await fetch("/v1/vms", {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ name: "forged", scope: "lab" }),
        });
        const principals = await fetch("/v1/principals", { headers: auth });
        return [create.status, principals.status];
      });
      assert.deepEqual(forged, [403, 403]);
      // The operator starts lab's VM from the list (the file's one boot).
      await carol.evaluate(() => (location.hash = "#/"));
      await carol.click('tr[data-vm="labvm"] [data-action="start"]');
      await carol.waitForSelector('tr[data-vm="labvm"][data-state="Running"]', { timeout: LONG });
      // ... and uses its console (vm.console.input and output are in VM Operator).
      await carol.click('tr[data-vm="labvm"] a');
      await carol.click("#open-console");
      await carol.waitForFunction((p) => window.viridian.consoleText().includes(p), PROMPT, {
        timeout: LONG,
      });
      await carol.click("#terminal");
      await carol.keyboard.type("echo operator-$((6*7))");
      await carol.keyboard.press("Enter");
      await carol.waitForFunction(() => window.viridian.consoleText().includes("operator-42\n"), undefined, {
        timeout: LONG,
      });

      // The administrator's audit view shows the denied calls, live or read back.
      await admin.click('#nav a[href="#/audit"]');
      await admin.waitForSelector(
        '#audit-table tr[data-result="deny"][data-principal="carol"][data-operation="vm.create"]',
      );
      await admin.waitForSelector(
        '#audit-table tr[data-result="deny"][data-principal="carol"][data-operation="auth.admin"]',
      );
      await admin.selectOption("#audit-result", "deny");
      assert.equal(
        await admin.$('#audit-table tr[data-result="allow"]'),
        null,
        "the filter shows denials only",
      );
      await admin.waitForSelector('#live-events li[data-type="lifecycle"]');
      await screenshotsAndAxe(admin, "audit", "the events and audit page");

      // Revoked from the Access page: carol's next call is refused.
      await admin.click('#nav a[href="#/access"]');
      admin.once("dialog", (d) => void d.accept());
      await admin.click('#tokens tr[data-user="carol"] button');
      await admin.waitForFunction(() => document.querySelector('#tokens tr[data-user="carol"]') === null);
      const after = await carol.evaluate(
        async () =>
          (
            await fetch("/v1/vms", {
              headers: { authorization: `Bearer ${sessionStorage.getItem("viridian.token")}` },
            })
          ).status,
      );
      assert.equal(after, 401);
      await carol.close();
    });

    it("VM list: filters, bulk actions only where they can act, focus kept across live redraws; screenshots", async () => {
      // The VMs of the first test, made here if it stopped early (each test can fail on its own).
      const as = { token: adminToken };
      const scopes = (await svc.ok("GET", "/v1/scopes", as)).body as Array<{ name: string }>;
      if (!scopes.some((x) => x.name === "lab"))
        await svc.ok("POST", "/v1/scopes", { ...as, body: { name: "lab" } });
      for (const [name, scope, mib] of [
        ["labvm", "lab", 256],
        ["defvm", "default", 64],
      ] as const)
        if ((await svc.call("GET", `/v1/vms/${name}`, as)).status === 404)
          await svc.ok("POST", "/v1/vms", { ...as, body: { name, scope, memoryBytes: mib * 1024 * 1024 } });
      if (((await svc.ok("GET", "/v1/vms/labvm", as)).body as { state: string }).state === "Off")
        await svc.ok("POST", "/v1/vms/labvm/start", as);
      await admin.click('#nav a[href="#/"]');
      await admin.waitForSelector('tr[data-vm="labvm"][data-state="Running"]', { timeout: LONG });
      await admin.waitForSelector('tr[data-vm="defvm"][data-state="Off"]');
      await admin.waitForFunction(() =>
        /\d+s|\d+m/.test(
          document.querySelector('tr[data-vm="labvm"] [data-field="uptime"]')?.textContent ?? "",
        ),
      );
      const listed = () => admin.$$eval("tr[data-vm]", (rows) => rows.map((r) => r.getAttribute("data-vm")));
      await admin.selectOption("#filter-scope", "lab");
      assert.deepEqual(await listed(), ["labvm"]);
      await admin.selectOption("#filter-scope", "");
      await admin.selectOption("#filter-state", "Off");
      assert.deepEqual(await listed(), ["defvm"]);
      await admin.selectOption("#filter-state", "");
      assert.deepEqual(await listed(), ["defvm", "labvm"]);

      // Both selected: each bulk action counts only the VMs it can act on.
      await admin.check("#select-all");
      const bulk = (key: string) => admin.textContent(`[data-bulk="${key}"]`);
      assert.equal(await bulk("start"), "Start (1)");
      assert.equal(await bulk("pause"), "Pause (1)");
      assert.equal(await bulk("stop"), "Shut down (1)");
      assert.equal(await admin.getAttribute('[data-bulk="resume"]', "disabled"), "");
      await admin.click('[data-bulk="pause"]');
      await admin.waitForSelector('tr[data-vm="labvm"][data-state="Paused"]', { timeout: LONG });
      assert.equal(await bulk("resume"), "Resume (1)");
      await admin.click('[data-bulk="resume"]');
      await admin.waitForSelector('tr[data-vm="labvm"][data-state="Running"]', { timeout: LONG });

      // Keyboard: a checkbox toggled with Space keeps the focus through the redraw it causes.
      await admin.focus('[data-select="defvm"]');
      await admin.keyboard.press("Space");
      await waitText(admin, "#selected-count", "1 selected", 30_000);
      assert.equal(
        await admin.evaluate(() => document.activeElement?.getAttribute("data-select") ?? null),
        "defvm",
      );
      await admin.keyboard.press("Space");
      await waitText(admin, "#selected-count", "2 selected", 30_000);

      await screenshotsAndAxe(admin, "vm-list", "the VM list");
      const wizard = await admin.$("#new-vm");
      assert.ok(wizard, "the new-VM form is on the administrator's list");
      for (const size of [1366, 390]) {
        await admin.setViewportSize({ width: size, height: size === 390 ? 844 : 768 });
        await wizard.screenshot({ path: join(ARTIFACTS, `wizard-${size}.png`) });
      }
      await admin.setViewportSize({ width: 1366, height: 768 });
      // The dark theme follows the system setting, and passes the same check (contrast included).
      await admin.emulateMedia({ colorScheme: "dark" });
      await admin.screenshot({ path: join(ARTIFACTS, "vm-list-dark-1366.png"), fullPage: true });
      await axeCheck(admin, "the VM list in the dark theme");
      await admin.emulateMedia({ colorScheme: "light" });
    });

    it("the service restarts under the page: events and console reconnect, the console resumes", async () => {
      await admin.evaluate(() => (location.hash = "#/vm/labvm"));
      await waitText(admin, "#vm-state", "Running");
      await admin.click("#open-console");
      await admin.waitForFunction((p) => window.viridian.consoleText().includes(p), PROMPT, {
        timeout: LONG,
      });
      assert.equal(await run(admin, "echo before-$((6*7))"), "before-42\n");
      await screenshotsAndAxe(admin, "vm-page-console", "the VM page with its console");

      const tcp = svc.tcp;
      await svc.kill();
      await admin.waitForFunction(() =>
        /Live updates interrupted/.test(document.getElementById("status")?.textContent ?? ""),
      );
      await admin.waitForFunction(() =>
        /reconnecting/.test(document.getElementById("console-note")?.textContent ?? ""),
      );
      await svc.start(tcp);
      assert.equal(svc.tcp, tcp, "the service is back on the page's address");
      // Generous for a restart on a loaded machine, short of LONG: the retry delay is at most 10 s.
      await admin.waitForFunction(
        () => document.getElementById("console-note")?.textContent === "Console reconnected.",
        null,
        { timeout: 180_000 },
      );
      await admin.waitForFunction(
        () => !/Live updates/.test(document.getElementById("status")?.textContent ?? ""),
        null,
        {
          timeout: 180_000,
        },
      );
      assert.equal(await run(admin, "echo resumed-$((7*6))"), "resumed-42\n");
      assert.equal(await statusText(admin), "");

      // The list follows state changes again (the events stream is back), without a reload.
      await admin.evaluate(() => (location.hash = "#/"));
      await admin.waitForSelector('tr[data-vm="labvm"][data-state="Running"]');
      await svc.ok("POST", "/v1/vms/labvm/pause");
      await admin.waitForSelector('tr[data-vm="labvm"][data-state="Paused"]', { timeout: LONG });
      await svc.ok("POST", "/v1/vms/labvm/stop", { body: { turnOff: true } });
      await admin.waitForSelector('tr[data-vm="labvm"][data-state="Off"]', { timeout: LONG });
    });
  },
);

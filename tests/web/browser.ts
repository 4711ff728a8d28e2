// Owns: what the web UI's browser tests share: Debian's chromium launched headless by playwright-core in a
// fresh profile, signing in with a token, waiting for a page's text, screenshots in test-artifacts/web/ and
// axe-core's accessibility check.
// Must not: start services or guests (the test files do, with tests/service/harness.ts) or leave a browser or
// its profile behind (`close()` removes both).
// Spec: docs/architecture.md "The web UI (src/web/)"; issue 14's acceptance (playwright-core, axe-core).

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { REPO } from "../service/harness.js";

export const CHROMIUM = process.env.VIRIDIAN_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** The guest's shell prompt (guest/init). */
export const PROMPT = "viridian-guest:~ # ";
/** Generous: a guest boots in the emulator on a shared, loaded machine. Waits end on the page, not a clock. */
export const LONG = 600_000;
export const ARTIFACTS = join(REPO, "test-artifacts", "web");
/** The two screen sizes every page is checked at (issue 14: 1366x768 and a phone). */
export const SIZES = [
  { name: "1366", width: 1366, height: 768 },
  { name: "390", width: 390, height: 844 },
] as const;

// The callbacks given to page.evaluate/waitForFunction run in the page: the little of the DOM they use, typed
// here for this module only (the project compiles without the DOM library).
declare const document: { querySelector(selector: string): { textContent: string | null } | null };
interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: unknown }>;
}
declare const window: { axe: { run(): Promise<{ violations: AxeViolation[] }> } };

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** A headless chromium with a fresh profile at 1366x768. */
export class Browser {
  private constructor(
    readonly context: BrowserContext,
    private readonly profile: string,
  ) {}

  static async launch(): Promise<Browser> {
    assert.ok(existsSync(CHROMIUM), `chromium is missing at ${CHROMIUM}: apt-get install chromium`);
    mkdirSync(ARTIFACTS, { recursive: true });
    const profile = mkdtempSync(join(tmpdir(), "viridian-chromium-"));
    try {
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: FLAGS,
        viewport: { width: 1366, height: 768 },
      });
      return new Browser(context, profile);
    } catch (e) {
      rmSync(profile, { recursive: true, force: true });
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.context.close();
    rmSync(this.profile, { recursive: true, force: true });
  }
}

/**
 * axe-core's check of the page as it stands: no serious or critical violation. The library is evaluated over
 * the DevTools protocol (the page's CSP allows no injected script tags).
 */
export async function axeCheck(page: Page, what: string): Promise<void> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () =>
    (await window.axe.run()).violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target),
    })),
  );
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${what}: ${JSON.stringify(bad, null, 1)}`);
}

/**
 * The page as it stands at both sizes: a full-page screenshot `<name>-<width>.png` in test-artifacts/web/ and
 * axe-core's check at each; the viewport is 1366x768 again afterwards.
 */
export async function screenshotsAndAxe(page: Page, name: string, what: string): Promise<void> {
  for (const size of SIZES) {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${size.name}.png`), fullPage: true });
    await axeCheck(page, `${what} at ${size.width}x${size.height}`);
  }
  await page.setViewportSize({ width: 1366, height: 768 });
}

export async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(base);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("#vms-title");
}

export async function waitText(page: Page, selector: string, text: string, timeout = LONG): Promise<void> {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel!)?.textContent === want,
    [selector, text],
    { timeout },
  );
}

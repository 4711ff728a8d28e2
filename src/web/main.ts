// Owns: the Viridian Manager page: sign-in, the sections (the VM list, a VM's page, and for administrators the
// Access and audit pages) chosen by the URL's hash and offered by the principal's rights (GET /whoami), and the
// events WebSocket that keeps them current (no polling); the views live in their own modules.
// Must not: reach the service any other way than its documented API, or treat a hidden button as security.
// Spec: docs/architecture.md "The web UI (src/web/)"; issue 14.

import {
  ApiFailure,
  Client,
  Rights,
  forgetToken,
  saveToken,
  savedToken,
  type Job,
  type Vm,
  type WhoAmI,
} from "./client.js";
import { ConsoleView } from "./console-view.js";
import { button, el, mib } from "./dom.js";
import { LiveEvents, type LiveEvent } from "./live.js";
import { renderJobs } from "./jobs-panel.js";
import { clearError, showError, type Session } from "./session.js";
import { renderList, vmActions } from "./vm-list.js";
import { isAuthAdmin, renderAdmin } from "./admin-pages.js";
import { auditOnEvent, renderAudit } from "./audit-view.js";

const main = document.getElementById("main")!;
const status = document.getElementById("status")!;
const whoLine = document.getElementById("who")!;
const nav = document.getElementById("nav")!;

/** The administrator's pages (#/access, #/audit) besides the list (#/) and a VM's page (#/vm/NAME). */
type Section = "list" | "vm" | "access" | "audit";
let section: Section = "list";

let session: Session | null = null;

/** The page's automation and accessibility hook: the console's text as the terminal holds it. */
declare global {
  interface Window {
    viridian: { consoleText(): string };
  }
}
window.viridian = { consoleText: () => session?.console?.text() ?? "" };

// ---- sign-in ----

function signInForm(message = ""): void {
  session?.live.close();
  session?.console?.dispose();
  session = null;
  whoLine.textContent = "";
  nav.replaceChildren();
  const token = el("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
  });
  const form = el(
    "form",
    { class: "stack", "aria-labelledby": "signin-title" },
    el("h2", { id: "signin-title" }, "Sign in"),
    el(
      "p",
      { class: "muted" },
      "Paste an API token (viridian auth token create). It is kept for this tab only.",
    ),
    el("label", { for: "token" }, "Token", token),
    el("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void signIn(token.value.trim());
  });
  main.replaceChildren(form);
  if (message) status.textContent = message;
  token.focus();
}

async function signIn(token: string): Promise<void> {
  const client = new Client(token);
  let who: WhoAmI;
  try {
    who = await client.call<WhoAmI>("whoAmI");
  } catch (e) {
    forgetToken();
    signInForm(e instanceof ApiFailure ? e.shown : String(e));
    return;
  }
  clearError();
  saveToken(token);
  const s: Session = {
    client,
    rights: new Rights(who),
    vms: new Map(),
    jobs: new Map(),
    console: null,
    page: null,
    live: null as unknown as LiveEvents,
  };
  session = s;
  s.live = new LiveEvents(client, {
    event: (e) => void onEvent(s, e),
    opened: () => {
      if (status.textContent?.startsWith("Live updates")) clearError();
      void reload(s);
    },
    dropped: (reason) => {
      status.textContent = `Live updates interrupted (${reason}); reconnecting…`;
    },
  });
  whoLine.replaceChildren(
    `Signed in as ${who.principal} `,
    button(
      "Sign out",
      () => {
        forgetToken();
        signInForm();
      },
      { class: "secondary" },
    ),
  );
  route();
}

// ---- data ----

async function reload(s: Session): Promise<void> {
  try {
    const [vms, jobs] = await Promise.all([s.client.call<Vm[]>("listVms"), s.client.call<Job[]>("listJobs")]);
    s.vms = new Map(vms.map((v) => [v.id, v]));
    s.jobs = new Map(jobs.map((j) => [j.id, j]));
    render(s);
  } catch (e) {
    showError(e);
  }
}

async function onEvent(s: Session, e: LiveEvent): Promise<void> {
  if (session !== s) return;
  if (isAuthAdmin(s)) auditOnEvent(s, e);
  if (e.type === "job") {
    const j = e.data as Job;
    s.jobs.set(j.id, j);
    renderJobs(s);
    return;
  }
  if (e.type !== "lifecycle") return;
  const d = e.data as { vm: string; state: Vm["state"]; reason: string | null };
  const known = s.vms.get(d.vm);
  if (known) {
    s.vms.set(d.vm, { ...known, state: d.state, reason: d.reason });
    render(s);
  }
  // The event carries the state; the VM's configuration (and whether it still exists) is read once.
  try {
    s.vms.set(d.vm, await s.client.call<Vm>("getVm", { vm: d.vm }));
  } catch (err) {
    if (err instanceof ApiFailure && (err.status === 404 || err.status === 403)) s.vms.delete(d.vm);
    else showError(err);
  }
  render(s);
}

// ---- views ----

function route(): void {
  const s = session;
  if (!s) return;
  const m = /^#\/vm\/(.+)$/.exec(location.hash);
  const page = m ? decodeURIComponent(m[1]!) : null;
  if (page !== s.page) {
    s.console?.dispose();
    s.console = null;
  }
  s.page = page;
  section =
    page !== null
      ? "vm"
      : location.hash === "#/access"
        ? "access"
        : location.hash === "#/audit"
          ? "audit"
          : "list";
  drawNav(s);
  main.replaceChildren(
    el("div", { id: "view" }),
    el("section", { id: "jobs", class: "panel", "aria-labelledby": "jobs-title" }),
  );
  if (section === "access" || section === "audit") {
    if (!isAuthAdmin(s))
      document
        .getElementById("view")!
        .replaceChildren(el("h2", {}, "Not offered"), el("p", {}, "This page needs auth.admin on the host."));
    else if (section === "access") void renderAdmin(s);
    else void renderAudit(s);
  }
  render(s);
}

/** The sections the principal may use; administrators' pages only with auth.admin. */
function drawNav(s: Session): void {
  const links: Array<[string, string, Section]> = [["#/", "Virtual machines", "list"]];
  if (isAuthAdmin(s)) links.push(["#/access", "Access", "access"], ["#/audit", "Events and audit", "audit"]);
  nav.replaceChildren(
    el(
      "ul",
      {},
      ...links.map(([href, text, which]) =>
        el(
          "li",
          {},
          el(
            "a",
            {
              href,
              "aria-current":
                which === section || (which === "list" && section === "vm") ? "page" : undefined,
            },
            text,
          ),
        ),
      ),
    ),
  );
}

function render(s: Session): void {
  if (session !== s) return;
  if (section === "list") {
    const keep = document.querySelector("#new-vm");
    renderList(s);
    if (s.rights.scopesWith("vm.create").length > 0)
      document.getElementById("view")?.append(keep ?? newVmForm(s));
  } else if (section === "vm" && s.page !== null) renderVmPage(s, s.page);
  renderJobs(s);
}

function newVmForm(s: Session): HTMLElement {
  const scopes = s.rights.scopesWith("vm.create");
  const field = (id: string, label: string, input: HTMLElement) =>
    el(
      "label",
      { for: id },
      label,
      input,
      el("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" }),
    );
  const name = el("input", {
    id: "new-name",
    name: "name",
    required: true,
    autocomplete: "off",
    "aria-describedby": "new-name-error",
  });
  const scope = scopes.includes("host")
    ? el("input", { id: "new-scope", name: "scope", value: "default", "aria-describedby": "new-scope-error" })
    : el("select", { id: "new-scope", name: "scope" }, ...scopes.map((x) => el("option", { value: x }, x)));
  const memory = el("input", {
    id: "new-memory",
    name: "memory",
    type: "number",
    value: "256",
    min: "2",
    "aria-describedby": "new-memory-error",
  });
  const cpus = el("input", {
    id: "new-processors",
    name: "processors",
    type: "number",
    value: "1",
    min: "1",
    "aria-describedby": "new-processors-error",
  });
  const form = el(
    "form",
    { class: "stack panel", id: "new-vm", "aria-labelledby": "new-vm-title" },
    el("h2", { id: "new-vm-title" }, "New VM"),
    field("new-name", "Name", name),
    field("new-scope", "Scope", scope),
    field("new-memory", "Memory (MiB)", memory),
    field("new-processors", "Processors", cpus),
    el("p", { class: "muted" }, "Boots the bundled guest kernel."),
    el("button", { type: "submit" }, "Create"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
    clearError();
    const body = {
      name: name.value.trim(),
      scope: (scope as HTMLInputElement).value.trim(),
      memoryBytes: Math.round(Number(memory.value) * 1024 * 1024),
      processors: Number(cpus.value),
    };
    s.client
      .call<Vm>("createVm", {}, body)
      .then((vm) => {
        s.vms.set(vm.id, vm);
        name.value = "";
        render(s);
      })
      .catch((e: unknown) => {
        // The API names the field it refused (e.g. "body/name must match pattern"): shown next to it.
        const msg = e instanceof ApiFailure ? e.shown : String(e);
        const f = /body\/(name|scope|memoryBytes|processors)/.exec(msg)?.[1];
        const target = {
          name: "new-name",
          scope: "new-scope",
          memoryBytes: "new-memory",
          processors: "new-processors",
        }[f ?? ""];
        if (target) document.getElementById(`${target}-error`)!.textContent = msg;
        else showError(e);
      });
  });
  return form;
}

function renderVmPage(s: Session, name: string): void {
  const view = document.getElementById("view");
  if (!view) return;
  const v = [...s.vms.values()].find((x) => x.name === name || x.id === name);
  if (!v) {
    view.replaceChildren(
      el("h2", {}, name),
      el("p", {}, s.vms.size ? "No such VM, or you may not see it." : "Loading…"),
    );
    return;
  }
  let head = view.querySelector<HTMLElement>("#vm-head");
  let consoleBox = view.querySelector<HTMLElement>("#console-section");
  if (!head || !consoleBox) {
    head = el("div", { id: "vm-head" });
    consoleBox = el("section", { id: "console-section", "aria-labelledby": "console-title" });
    view.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← All VMs")), head, consoleBox);
  }
  head.replaceChildren(
    el("h2", {}, v.name),
    el(
      "dl",
      {},
      el("dt", {}, "State"),
      el("dd", { class: "state", id: "vm-state" }, v.state),
      v.reason ? el("dt", {}, "Reason") : null,
      v.reason ? el("dd", { id: "vm-reason" }, v.reason) : null,
      el("dt", {}, "Scope"),
      el("dd", {}, v.scope),
      el("dt", {}, "Memory"),
      el("dd", {}, v.config ? mib(v.config.machine.memoryBytes) : "—"),
      el("dt", {}, "Processors"),
      el("dd", {}, v.config ? String(v.config.machine.processors) : "—"),
    ),
    vmActions(s, v),
  );
  renderConsole(s, v, consoleBox);
}

function renderConsole(s: Session, v: Vm, box: HTMLElement): void {
  const canOut = s.rights.can("vm.console.output", v.scope);
  const canIn = s.rights.can("vm.console.input", v.scope);
  const live =
    v.state === "Running" || v.state === "Paused" || v.state === "Stopping" || v.state === "Starting";
  if (!canOut && !canIn) {
    box.replaceChildren(
      el("h3", { id: "console-title" }, "Console"),
      el("p", {}, "You may not use this VM's console."),
    );
    return;
  }
  if (!box.firstChild) {
    const note = el("p", { id: "console-note", class: "muted", "aria-live": "polite" });
    box.replaceChildren(
      el("h3", { id: "console-title" }, "Serial console"),
      note,
      button("Open console", () => openConsole(s, v, box, canIn), { id: "open-console" }),
      el("div", { id: "terminal", class: "console" }),
    );
  }
  const open = box.querySelector<HTMLButtonElement>("#open-console")!;
  open.disabled = !live;
  open.title = live ? "" : "The VM is not running";
  if (live && s.console) s.console.reconnect();
}

function openConsole(s: Session, v: Vm, box: HTMLElement, canIn: boolean): void {
  const note = box.querySelector<HTMLElement>("#console-note")!;
  if (!s.console) {
    s.console = new ConsoleView(
      s.client,
      v.id,
      box.querySelector<HTMLElement>("#terminal")!,
      canIn,
      (t) => (note.textContent = t),
    );
  } else s.console.reconnect();
  s.console.focus();
}

window.addEventListener("hashchange", route);
const token = savedToken();
if (token) void signIn(token);
else signInForm();

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
import { button, el } from "./dom.js";
import { LiveEvents, type LiveEvent } from "./live.js";
import { renderJobs } from "./jobs-panel.js";
import { clearError, showError, type Session } from "./session.js";
import { renderList, vmActions } from "./vm-list.js";
import { isAuthAdmin, renderAdmin } from "./admin-pages.js";
import { auditOnEvent, renderAudit } from "./audit-view.js";
import { leaveVmPage, renderVmPage } from "./vm-page.js";
import { newVmForm } from "./wizard.js";

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
  leaveVmPage();
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
  if (e.type === "health") {
    const h = e.data as { vm: string; heartbeat: NonNullable<Vm["worker"]>["heartbeat"] };
    const known = s.vms.get(h.vm);
    if (known?.worker) {
      s.vms.set(h.vm, { ...known, worker: { ...known.worker, heartbeat: h.heartbeat } });
      render(s);
    }
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
    leaveVmPage();
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
      document.getElementById("view")?.append(keep ?? newVmForm(s, () => render(s)));
  } else if (section === "vm" && s.page !== null) renderVmPage(s, s.page, vmActions);
  renderJobs(s);
}

window.addEventListener("hashchange", route);
const token = savedToken();
if (token) void signIn(token);
else signInForm();

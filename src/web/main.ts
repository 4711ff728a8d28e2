// Owns: the Viridian Manager page: sign-in, routing, the VM list and the jobs panel (the wizard and the VM
// page are their own modules), all kept current by the events WebSocket (no polling), showing only the
// actions the principal's rights allow (GET /whoami) and every API refusal plainly.
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
import { button, el, mib } from "./dom.js";
import { LiveEvents, type LiveEvent } from "./live.js";
import { clearError, showError, type Session } from "./session.js";
import { leaveVmPage, renderVmPage } from "./vm-page.js";
import { newVmForm } from "./wizard.js";

const main = document.getElementById("main")!;
const status = document.getElementById("status")!;
const whoLine = document.getElementById("who")!;

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

async function act(s: Session, id: string, vm: string, body?: unknown): Promise<void> {
  clearError();
  try {
    const r = await s.client.call<{ job?: Job } | Vm>(id, { vm }, body);
    if (r && "job" in r && r.job) {
      s.jobs.set(r.job.id, r.job);
      renderJobs(s);
    }
  } catch (e) {
    showError(e);
  }
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
  main.replaceChildren(
    el("div", { id: "view" }),
    el("section", { id: "jobs", class: "panel", "aria-labelledby": "jobs-title" }),
  );
  render(s);
}

function render(s: Session): void {
  if (session !== s) return;
  if (s.page === null) renderList(s);
  else renderVmPage(s, s.page, vmActions);
  renderJobs(s);
}

function vmActions(s: Session, v: Vm): HTMLElement {
  const r = s.rights;
  const box = el("div", { class: "actions", role: "group", "aria-label": `Actions for ${v.name}` });
  const st = v.state;
  if (r.can("vm.start", v.scope))
    box.append(
      button("Start", () => void act(s, "startVm", v.id), {
        "data-action": "start",
        ...(st === "Off" || st === "Critical" ? {} : { disabled: "" }),
      }),
    );
  if (r.can("vm.stop", v.scope)) {
    box.append(
      button("Shut down", () => void act(s, "stopVm", v.id, {}), {
        "data-action": "stop",
        ...(st === "Running" ? {} : { disabled: "" }),
      }),
    );
    box.append(
      button("Turn off", () => void act(s, "stopVm", v.id, { turnOff: true }), {
        class: "secondary",
        "data-action": "turn-off",
        ...(st === "Running" || st === "Paused" || st === "Stopping" ? {} : { disabled: "" }),
      }),
    );
  }
  if (r.can("vm.pause", v.scope)) {
    if (st === "Paused")
      box.append(button("Resume", () => void act(s, "resumeVm", v.id), { "data-action": "resume" }));
    else
      box.append(
        button("Pause", () => void act(s, "pauseVm", v.id), {
          "data-action": "pause",
          ...(st === "Running" ? {} : { disabled: "" }),
        }),
      );
  }
  if (r.can("vm.delete", v.scope))
    box.append(
      button(
        "Delete",
        () => {
          if (confirm(`Delete ${v.name}? Its disks are kept.`)) void act(s, "deleteVm", v.id);
        },
        { class: "secondary", "data-action": "delete", ...(st === "Off" ? {} : { disabled: "" }) },
      ),
    );
  // Disabled buttons say why (a tooltip, and the accessible description).
  for (const b of box.querySelectorAll("button[disabled]"))
    b.setAttribute("title", `Not possible while ${st}`);
  return box;
}

function renderList(s: Session): void {
  const view = document.getElementById("view");
  if (!view) return;
  const vms = [...s.vms.values()].sort((a, b) => a.name.localeCompare(b.name));
  const rows = vms.map((v) =>
    el(
      "tr",
      { "data-vm": v.name },
      el("th", { scope: "row" }, el("a", { href: `#/vm/${encodeURIComponent(v.name)}` }, v.name)),
      el("td", { class: "state", "data-field": "state" }, v.state),
      el("td", {}, v.scope),
      el("td", {}, v.config ? mib(v.config.machine.memoryBytes) : "—"),
      el("td", {}, v.config ? String(v.config.machine.processors) : "—"),
      el("td", {}, vmActions(s, v)),
    ),
  );
  const table = el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { "aria-labelledby": "vms-title" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...["Name", "State", "Scope", "Memory", "Processors", "Actions"].map((h) =>
            el("th", { scope: "col" }, h),
          ),
        ),
      ),
      el("tbody", {}, ...rows),
    ),
  );
  const keep = view.querySelector("#new-vm");
  view.replaceChildren(
    el("h2", { id: "vms-title" }, "Virtual machines"),
    vms.length ? table : el("p", { class: "muted" }, "No VMs you may see."),
  );
  if (s.rights.scopesWith("vm.create").length > 0) view.append(keep ?? newVmForm(s, () => render(s)));
}

function renderJobs(s: Session): void {
  const panel = document.getElementById("jobs");
  if (!panel) return;
  const jobs = [...s.jobs.values()].sort((a, b) => b.created.localeCompare(a.created)).slice(0, 20);
  const rows = jobs.map((j) =>
    el(
      "tr",
      { "data-job": j.id, "data-type": j.type, "data-state": j.state },
      el("td", {}, j.type),
      el("td", {}, j.vm?.name ?? "—"),
      el("td", { "data-field": "state" }, j.state),
      el(
        "td",
        {},
        el("progress", { max: "100", value: String(j.percentComplete), "aria-label": `${j.type} progress` }),
        ` ${j.percentComplete}%`,
      ),
      el("td", {}, j.error ? `${j.error.code}: ${j.error.message}` : ""),
      el(
        "td",
        {},
        j.cancellable && (j.state === "running" || j.state === "queued")
          ? button(
              "Cancel",
              () => {
                s.client.call<Job>("cancelJob", { id: j.id }).catch(showError);
              },
              { class: "secondary" },
            )
          : null,
      ),
    ),
  );
  panel.replaceChildren(
    el("h2", { id: "jobs-title" }, "Jobs"),
    jobs.length
      ? el(
          "div",
          { class: "table-wrap" },
          el(
            "table",
            { "aria-labelledby": "jobs-title" },
            el(
              "thead",
              {},
              el(
                "tr",
                {},
                ...["Operation", "VM", "State", "Progress", "Error", ""].map((h) =>
                  el("th", { scope: "col" }, h),
                ),
              ),
            ),
            el("tbody", {}, ...rows),
          ),
        )
      : el("p", { class: "muted" }, "No recent jobs."),
  );
}

window.addEventListener("hashchange", route);
const token = savedToken();
if (token) void signIn(token);
else signInForm();

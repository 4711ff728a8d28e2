// Owns: the VM list (one row per VM the principal may see: name, state, scope, processors, memory,
// uptime, the guest's heartbeat), its filters by scope and state, the selection with its bulk actions, and
// each VM's action buttons, offered only where the principal holds the operation and enabled only in the states where it can
// act (a bulk action acts only on the selected VMs it can act on).
// Must not: treat a hidden button as security (the API checks every call), poll (the session's VMs change
// with lifecycle and health events), or lose the keyboard focus when a live update redraws the table.
// Spec: docs/architecture.md "The web UI (src/web/)"; Hyper-V Manager's virtual machines pane.

import type { Job, Vm } from "./client.js";
import { el, mib, scrollBox } from "./dom.js";
import { renderJobs } from "./jobs-panel.js";
import { clearError, showError, type Session } from "./session.js";

type State = Vm["state"];

interface VmAction {
  key: string;
  label: string;
  /** The operation the principal must hold in the VM's scope. */
  op: string;
  route: string;
  body?: unknown;
  /** The states in which the action can act. */
  when: readonly State[];
  /** Offered for a selection of VMs too. */
  bulk: boolean;
  secondary?: true;
}

const ACTIONS: readonly VmAction[] = [
  { key: "start", label: "Start", op: "vm.start", route: "startVm", when: ["Off", "Critical"], bulk: true },
  {
    key: "stop",
    label: "Shut down",
    op: "vm.stop",
    route: "stopVm",
    body: {},
    when: ["Running"],
    bulk: true,
  },
  {
    key: "turn-off",
    label: "Turn off",
    op: "vm.stop",
    route: "stopVm",
    body: { turnOff: true },
    when: ["Running", "Paused", "Stopping"],
    bulk: true,
    secondary: true,
  },
  { key: "pause", label: "Pause", op: "vm.pause", route: "pauseVm", when: ["Running"], bulk: true },
  { key: "resume", label: "Resume", op: "vm.pause", route: "resumeVm", when: ["Paused"], bulk: true },
  {
    key: "delete",
    label: "Delete",
    op: "vm.delete",
    route: "deleteVm",
    when: ["Off", "InvalidConfiguration"],
    bulk: false,
    secondary: true,
  },
];

const STATES: readonly State[] = [
  "Off",
  "Starting",
  "Running",
  "Paused",
  "Stopping",
  "Critical",
  "InvalidConfiguration",
];

/** What the list remembers between redraws: the filters and the selection (VM ids). */
interface ListState {
  scope: string;
  state: string;
  selected: Set<string>;
}
const lists = new WeakMap<Session, ListState>();
function listState(s: Session): ListState {
  let l = lists.get(s);
  if (!l) lists.set(s, (l = { scope: "", state: "", selected: new Set() }));
  return l;
}

export async function act(s: Session, id: string, vm: string, body?: unknown): Promise<void> {
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

function actionButton(label: string, attrs: Record<string, string | undefined>, onClick: () => void) {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

export function vmActions(s: Session, v: Vm): HTMLElement {
  const box = el("div", { class: "actions", role: "group", "aria-label": `Actions for ${v.name}` });
  const st = v.state;
  for (const a of ACTIONS) {
    if (!s.rights.can(a.op, v.scope)) continue;
    // Pause and Resume share a place: the one that fits the state (Pause, disabled, when neither does).
    if (a.key === "pause" && st === "Paused") continue;
    if (a.key === "resume" && st !== "Paused") continue;
    const can = a.when.includes(st);
    box.append(
      actionButton(
        a.label,
        {
          class: a.secondary ? "secondary" : undefined,
          "data-action": a.key,
          "data-key": `${v.id}:${a.key}`,
          // Disabled buttons say why (a tooltip, and the accessible description).
          disabled: can ? undefined : "",
          title: can ? undefined : `Not possible while ${st}`,
        },
        () => {
          if (a.key === "delete" && !confirm(`Delete ${v.name}? Its disks are kept.`)) return;
          void act(s, a.route, v.id, a.body);
        },
      ),
    );
  }
  return box;
}

/** Which of the selected VMs an action can act on now. */
function targets(s: Session, a: VmAction, vms: Vm[]): Vm[] {
  return vms.filter((v) => s.rights.can(a.op, v.scope) && a.when.includes(v.state));
}

function bulkBar(s: Session, l: ListState, visible: Vm[]): HTMLElement {
  const chosen = visible.filter((v) => l.selected.has(v.id));
  const bar = el(
    "div",
    { class: "actions bulk", role: "group", "aria-label": "Actions for the selected VMs", id: "bulk" },
    el("span", { id: "selected-count", "aria-live": "polite" }, `${chosen.length} selected`),
  );
  for (const a of ACTIONS) {
    if (!a.bulk) continue;
    // Offered only when the principal holds the operation for some VM it sees.
    if (!visible.some((v) => s.rights.can(a.op, v.scope))) continue;
    const on = targets(s, a, chosen);
    bar.append(
      actionButton(
        on.length ? `${a.label} (${on.length})` : a.label,
        {
          class: a.secondary ? "secondary" : undefined,
          "data-bulk": a.key,
          "data-key": `bulk:${a.key}`,
          disabled: on.length ? undefined : "",
          title: on.length
            ? `${a.label}: ${on.map((v) => v.name).join(", ")}`
            : chosen.length
              ? `No selected VM can ${a.label.toLowerCase()} now`
              : "Select VMs first",
        },
        () => {
          for (const v of on) void act(s, a.route, v.id, a.body);
        },
      ),
    );
  }
  return bar;
}

function filterSelect(
  id: string,
  label: string,
  value: string,
  all: string,
  options: string[],
  set: (v: string) => void,
) {
  const select = el(
    "select",
    { id, "data-key": id },
    el("option", { value: "" }, all),
    ...options.map((o) => el("option", { value: o, selected: o === value }, o)),
  );
  select.addEventListener("change", () => set(select.value));
  return el("label", { for: id }, label, select);
}

/** "3d 4h", "2h 05m", "4m 09s", "12s": how long a worker has run. */
export function uptimeText(startedIso: string, now = Date.now()): string {
  const t = Math.max(0, Math.floor((now - Date.parse(startedIso)) / 1000));
  const d = Math.floor(t / 86400);
  const h = Math.floor((t % 86400) / 3600);
  const m = Math.floor((t % 3600) / 60);
  const two = (n: number) => String(n).padStart(2, "0");
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${two(m)}m`;
  if (m) return `${m}m ${two(t % 60)}s`;
  return `${t}s`;
}

/** What the heartbeat integration service says of a running guest (the guest's hv_utils answering). */
const HEARTBEAT_TEXT = { ok: "OK", lost: "Lost", "no-contact": "No contact" } as const;

function heartbeatCell(v: Vm): HTMLElement {
  const h = v.worker && (v.state === "Running" || v.state === "Paused") ? v.worker.heartbeat : null;
  return el(
    "td",
    { "data-field": "heartbeat", "data-label": "Heartbeat", "data-heartbeat": h ?? undefined },
    h ? HEARTBEAT_TEXT[h] : "—",
  );
}

function uptimeCell(v: Vm): HTMLElement {
  const started = v.worker && (v.state === "Running" || v.state === "Paused") ? v.worker.started : null;
  return el(
    "td",
    { "data-field": "uptime", "data-label": "Uptime", "data-started": started ?? undefined },
    started ? uptimeText(started) : "—",
  );
}

// The uptime cells count on by themselves: a clock, not a request (the page never polls the API).
let ticking = false;
function tickUptimes(): void {
  if (ticking) return;
  ticking = true;
  setInterval(() => {
    for (const c of document.querySelectorAll<HTMLElement>("td[data-started]"))
      c.textContent = uptimeText(c.dataset["started"]!);
  }, 1000);
}

/** Redraws `view` and gives the focus back to the control (by its data-key) that held it before. */
function keepingFocus(view: HTMLElement, draw: () => void): void {
  const had = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>("[data-key]");
  const key = had && view.contains(had) ? had.dataset["key"] : undefined;
  draw();
  if (key) view.querySelector<HTMLElement>(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

export function renderList(s: Session): void {
  const view = document.getElementById("view");
  if (!view) return;
  const l = listState(s);
  tickUptimes();
  const all = [...s.vms.values()].sort((a, b) => a.name.localeCompare(b.name));
  const visible = all.filter((v) => (!l.scope || v.scope === l.scope) && (!l.state || v.state === l.state));
  // A VM that left the list (deleted, filtered out, no longer visible) leaves the selection.
  for (const id of l.selected) if (!visible.some((v) => v.id === id)) l.selected.delete(id);
  const redraw = () => renderList(s);

  const selectAll = el("input", {
    type: "checkbox",
    id: "select-all",
    "data-key": "select-all",
    "aria-label": "Select all listed VMs",
    checked: visible.length > 0 && l.selected.size === visible.length,
  });
  selectAll.indeterminate = l.selected.size > 0 && l.selected.size < visible.length;
  selectAll.addEventListener("change", () => {
    if (selectAll.checked) for (const v of visible) l.selected.add(v.id);
    else l.selected.clear();
    redraw();
  });

  const rows = visible.map((v) => {
    const pick = el("input", {
      type: "checkbox",
      "data-key": `${v.id}:select`,
      "data-select": v.name,
      "aria-label": `Select ${v.name}`,
      checked: l.selected.has(v.id),
    });
    pick.addEventListener("change", () => {
      if (pick.checked) l.selected.add(v.id);
      else l.selected.delete(v.id);
      redraw();
    });
    return el(
      "tr",
      { "data-vm": v.name, "data-scope": v.scope, "data-state": v.state },
      el("td", {}, pick),
      el(
        "th",
        { scope: "row" },
        el("a", { href: `#/vm/${encodeURIComponent(v.name)}`, "data-key": `${v.id}:link` }, v.name),
      ),
      el("td", { class: "state", "data-field": "state", "data-label": "State" }, v.state),
      el("td", { "data-field": "scope", "data-label": "Scope" }, v.scope),
      el(
        "td",
        { "data-field": "cpu", "data-label": "CPUs" },
        v.config ? String(v.config.machine.processors) : "—",
      ),
      el(
        "td",
        { "data-field": "memory", "data-label": "Memory" },
        v.config ? mib(v.config.machine.memoryBytes) : "—",
      ),
      uptimeCell(v),
      heartbeatCell(v),
      el("td", {}, vmActions(s, v)),
    );
  });

  const scopes = [...new Set(all.map((v) => v.scope))].sort();
  const filters = el(
    "div",
    { class: "filters", role: "search", "aria-label": "Filter the VMs" },
    filterSelect("filter-scope", "Scope", l.scope, "All scopes", scopes, (x) => {
      l.scope = x;
      redraw();
    }),
    filterSelect("filter-state", "State", l.state, "All states", [...STATES], (x) => {
      l.state = x;
      redraw();
    }),
  );
  const table = scrollBox(
    "Virtual machines",
    el(
      "table",
      { "aria-labelledby": "vms-title", id: "vm-table" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("td", {}, selectAll),
          ...["Name", "State", "Scope", "CPUs", "Memory", "Uptime", "Heartbeat", "Actions"].map((h) =>
            el("th", { scope: "col" }, h),
          ),
        ),
      ),
      el("tbody", {}, ...rows),
    ),
  );
  keepingFocus(view, () => {
    // The new-VM form (another module's) stays where it is: only the list's own nodes are replaced.
    const keep = [...view.children].filter((c) => c.id === "new-vm");
    view.replaceChildren(
      el("h2", { id: "vms-title" }, "Virtual machines"),
      ...(all.length ? [filters, bulkBar(s, l, visible)] : []),
      visible.length
        ? table
        : el("p", { class: "muted" }, all.length ? "No VM matches the filters." : "No VMs you may see."),
      ...keep,
    );
  });
}

// Owns: the VM list (one row per VM the principal may see) and each VM's action buttons, offered only where
// the principal holds the operation and enabled only in the states where it can act.
// Must not: treat a hidden button as security (the API checks every call) or poll (the session's VMs change
// with lifecycle events).
// Spec: docs/architecture.md "The web UI (src/web/)"; Hyper-V Manager's virtual machines pane.

import type { Job, Vm } from "./client.js";
import { button, el, mib } from "./dom.js";
import { renderJobs } from "./jobs-panel.js";
import { clearError, showError, type Session } from "./session.js";

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

export function vmActions(s: Session, v: Vm): HTMLElement {
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

export function renderList(s: Session): void {
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
  view.replaceChildren(
    el("h2", { id: "vms-title" }, "Virtual machines"),
    vms.length ? table : el("p", { class: "muted" }, "No VMs you may see."),
  );
}

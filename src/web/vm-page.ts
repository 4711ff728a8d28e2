// Owns: a VM's page (`#/vm/<name>`): its state and reason, its actions (given by the caller) and its serial
// console.
// Must not: offer what the principal's rights do not allow (the API decides anyway), or poll.
// Spec: docs/architecture.md "The web UI (src/web/)"; issue 14 (VM page).

import type { Vm } from "./client.js";
import { ConsoleView } from "./console-view.js";
import { button, el, mib } from "./dom.js";
import type { Session } from "./session.js";

export function renderVmPage(s: Session, name: string, actions: (s: Session, v: Vm) => HTMLElement): void {
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
    actions(s, v),
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

// Owns: a VM's page (`#/vm/<name>`): its state and reason, its actions (given by the caller), what the guest
// reports through the integration services (heartbeat, KVP host name, OS, addresses), the live graphs fed by
// the VM's metrics WebSocket, the serial console and the settings editor (memory and processors while Off,
// sent with If-Match so a concurrent edit is refused with 412 and said so; disks added and removed; the DVD
// swapped, also while it runs), each offered only with the right that allows it.
// Must not: poll (the metrics stream pushes, the events stream tells state changes), take a stale version
// for a fresh one (the editor keeps the ETag of what it showed), or treat a hidden control as security.
// Spec: docs/architecture.md "The web UI (src/web/)"; issue 14 (VM page).

import type { VmMetricsSample } from "../api/schemas.js";
import { ApiFailure, type Job, type Vm } from "./client.js";
import { ConsoleView } from "./console-view.js";
import { button, el, mib } from "./dom.js";
import { VmGraphs } from "./graphs.js";
import { clearError, showError, type Session } from "./session.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const EDITABLE = new Set<Vm["state"]>(["Off", "Critical"]);

/** What the page holds while it shows one VM: its metrics stream, graphs and the editor's version. */
interface PageState {
  vmId: string;
  root: HTMLElement;
  graphs: VmGraphs;
  metrics: WebSocket | null;
  retry: ReturnType<typeof setTimeout> | null;
  closed: boolean;
  /** Refits the graphs when the window's width changes (a phone turned, a window resized). */
  onResize: () => void;
  /** The configuration version the settings editor showed (sent as If-Match). */
  etag: string | null;
}

let current: PageState | null = null;

/** Ends the VM page's streams (the route changed, or the user signed out). */
export function leaveVmPage(): void {
  const p = current;
  current = null;
  if (!p) return;
  p.closed = true;
  window.removeEventListener("resize", p.onResize);
  if (p.retry) clearTimeout(p.retry);
  p.metrics?.close();
  p.graphs.dispose();
}

function openMetrics(s: Session, p: PageState, delay = 1000): void {
  if (p.closed) return;
  const ws = s.client.websocket("vmMetrics", { vm: p.vmId });
  p.metrics = ws;
  ws.onmessage = (m) => {
    if (typeof m.data !== "string") return;
    let sample: VmMetricsSample;
    try {
      sample = JSON.parse(m.data) as VmMetricsSample;
    } catch {
      return;
    }
    delay = 1000;
    p.graphs.push(sample);
    renderGuest(sample);
  };
  ws.onclose = (c) => {
    if (p.closed || c.reason === "the VM was deleted") return;
    // The service restarted or the network dropped: the graphs resume (with a gap) when it answers again.
    p.retry = setTimeout(() => openMetrics(s, p, Math.min(delay * 2, 10_000)), delay);
  };
}

function renderGuest(sample: VmMetricsSample): void {
  const set = (id: string, text: string) => {
    const e = document.getElementById(id);
    if (e && e.textContent !== text) e.textContent = text;
  };
  const hb = sample.heartbeat;
  set(
    "vm-heartbeat",
    hb === null
      ? "— (not running)"
      : hb === "ok"
        ? "OK"
        : hb === "lost"
          ? "Lost (the guest stopped answering)"
          : "No contact yet",
  );
  const k = sample.kvp;
  set("kvp-hostname", k.FullyQualifiedDomainName ?? "—");
  set("kvp-os", [k.OSName, k.OSVersion].filter(Boolean).join(" ") || "—");
  set("kvp-addresses", [k.NetworkAddressIPv4, k.NetworkAddressIPv6].filter(Boolean).join("; ") || "—");
}

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
  if (current && (current.vmId !== v.id || !view.contains(current.root))) leaveVmPage();
  if (!current) current = buildPage(s, v, view);
  const p = current;
  p.root
    .querySelector("#vm-head")!
    .replaceChildren(
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
        el("dd", { id: "vm-memory" }, v.config ? mib(v.config.machine.memoryBytes) : "—"),
        el("dt", {}, "Processors"),
        el("dd", { id: "vm-processors" }, v.config ? String(v.config.machine.processors) : "—"),
      ),
      actions(s, v),
    );
  renderConsole(s, v, p.root.querySelector<HTMLElement>("#console-section")!);
  renderSettings(s, v, p);
}

function buildPage(s: Session, v: Vm, view: HTMLElement): PageState {
  const graphs = new VmGraphs();
  const dd = (id: string) => el("dd", { id }, "—");
  const root = el(
    "div",
    { id: "vm-page" },
    el("p", {}, el("a", { href: "#/" }, "← All VMs")),
    el("div", { id: "vm-head" }),
    el(
      "section",
      { id: "guest-section", "aria-labelledby": "guest-title" },
      el("h3", { id: "guest-title" }, "Guest"),
      el(
        "dl",
        {},
        el("dt", {}, "Heartbeat"),
        dd("vm-heartbeat"),
        el("dt", {}, "Host name"),
        dd("kvp-hostname"),
        el("dt", {}, "Operating system"),
        dd("kvp-os"),
        el("dt", {}, "Addresses"),
        dd("kvp-addresses"),
      ),
    ),
    el(
      "section",
      { id: "graphs-section", "aria-labelledby": "graphs-title" },
      el("h3", { id: "graphs-title" }, "Live graphs"),
      graphs.root,
    ),
    el("section", { id: "console-section", "aria-labelledby": "console-title" }),
    el("section", { id: "settings-section", "aria-labelledby": "settings-title" }),
  );
  view.replaceChildren(root);
  const p: PageState = {
    vmId: v.id,
    root,
    graphs,
    metrics: null,
    retry: null,
    closed: false,
    onResize: () => graphs.fit(),
    etag: v.etag,
  };
  window.addEventListener("resize", p.onResize);
  requestAnimationFrame(() => graphs.fit());
  openMetrics(s, p);
  return p;
}

// ---- console ----

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

// ---- settings ----

/** The API's answer to an edit, said plainly; 412 means someone else changed the VM since it was shown. */
function editFailed(e: unknown, out: HTMLElement): void {
  if (e instanceof ApiFailure && e.status === 412)
    out.textContent =
      "Not saved: the VM's settings were changed elsewhere since this page showed them (412). " +
      "Reload the settings to see the current ones, then edit again.";
  else out.textContent = e instanceof ApiFailure ? e.shown : String(e);
}

async function refreshVm(s: Session, id: string): Promise<Vm> {
  const vm = await s.client.call<Vm>("getVm", { vm: id });
  s.vms.set(vm.id, vm);
  return vm;
}

/** Waits for a job the page started (the events stream updates the jobs panel meanwhile). */
async function finished(s: Session, job: Job): Promise<Job> {
  let j = job;
  while (j.state === "queued" || j.state === "running")
    j = await s.client.call<Job>("waitJob", { id: j.id }, undefined, { timeout: "60" });
  return j;
}

function renderSettings(s: Session, v: Vm, p: PageState): void {
  const box = p.root.querySelector<HTMLElement>("#settings-section")!;
  const r = s.rights;
  const can = {
    reconfigure: r.can("vm.config.reconfigure", v.scope),
    add: r.can("vm.hardware.add", v.scope),
    remove: r.can("vm.hardware.remove", v.scope),
    media: r.can("vm.media.change", v.scope),
  };
  if (!v.config || !(can.reconfigure || can.add || can.remove || can.media)) {
    box.replaceChildren();
    return;
  }
  const m = v.config.machine;
  if (!box.querySelector("#settings-title")) {
    box.replaceChildren(
      el("h3", { id: "settings-title" }, "Settings"),
      el("div", { id: "settings-machine" }),
      el("div", { id: "settings-disks" }),
      el("div", { id: "settings-dvd", "data-dvd": "-" }),
    );
  }
  const editable = EDITABLE.has(v.state);
  const machine = box.querySelector<HTMLElement>("#settings-machine")!;
  if (can.reconfigure && !machine.firstChild) machine.append(machineForm(s, v, p));
  for (const c of machine.querySelectorAll<HTMLInputElement>("input, button[type=submit]")) {
    c.disabled = !editable;
    c.title = editable ? "" : `Memory and processors change only while the VM is Off (it is ${v.state})`;
  }
  const note = machine.querySelector<HTMLElement>("#settings-offline");
  if (note) note.textContent = editable ? "" : `Memory and processors change only while the VM is Off.`;

  // Disks and the DVD show what the configuration holds now (they are lists, not a form being edited).
  const disks = box.querySelector<HTMLElement>("#settings-disks")!;
  const rows = m.disks.map((d, i) =>
    el(
      "tr",
      { "data-disk-index": String(i) },
      el("td", {}, String(i)),
      el("td", { class: "path" }, d.path),
      el("td", {}, d.readOnly ? "read only" : "read/write"),
      el(
        "td",
        {},
        can.remove
          ? button(
              "Remove",
              () =>
                void s.client
                  .call<Vm>("removeDisk", { vm: v.id, index: String(i) }, undefined, undefined, ifMatch(p))
                  .then((vm) => {
                    s.vms.set(vm.id, vm);
                    p.etag = vm.etag;
                    rerender(s, vm, p);
                  })
                  .catch((e: unknown) => editFailed(e, disks.querySelector("#disk-error")!)),
              { class: "secondary", "aria-label": `Remove disk ${i} (${d.path})` },
            )
          : null,
      ),
    ),
  );
  const table = m.disks.length
    ? el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { "aria-labelledby": "disks-title" },
          el(
            "thead",
            {},
            el("tr", {}, ...["#", "Image", "Access", ""].map((h) => el("th", { scope: "col" }, h))),
          ),
          el("tbody", {}, ...rows),
        ),
      )
    : el("p", { class: "muted" }, "No disks.");
  const keepAdd = disks.querySelector("#add-disk-form");
  disks.replaceChildren(
    el("h4", { id: "disks-title" }, "Disks"),
    table,
    el("p", { id: "disk-error", class: "field-error", role: "status" }),
    ...(can.add ? [keepAdd ?? addDiskForm(s, v, p)] : []),
  );

  // The DVD's form is rebuilt only when the medium changed, so what the user is typing survives events.
  const dvdBox = box.querySelector<HTMLElement>("#settings-dvd")!;
  if (dvdBox.getAttribute("data-dvd") !== (m.dvd ?? "")) {
    dvdBox.setAttribute("data-dvd", m.dvd ?? "");
    dvdBox.replaceChildren(
      el("h4", {}, "DVD drive"),
      el("p", { id: "dvd-current" }, m.dvd ? `Inserted: ${m.dvd}` : "Empty"),
      ...(can.media ? [dvdForm(s, v, p)] : []),
    );
  }
}

function ifMatch(p: PageState): Record<string, string> {
  return p.etag ? { "if-match": p.etag } : {};
}

function rerender(s: Session, vm: Vm, p: PageState): void {
  const box = p.root.querySelector<HTMLElement>("#settings-machine");
  box?.replaceChildren();
  renderSettings(s, vm, p);
  // The header shows the new memory and processors too.
  const mem = document.getElementById("vm-memory");
  if (mem && vm.config) mem.textContent = mib(vm.config.machine.memoryBytes);
  const cpus = document.getElementById("vm-processors");
  if (cpus && vm.config) cpus.textContent = String(vm.config.machine.processors);
}

function machineForm(s: Session, v: Vm, p: PageState): HTMLElement {
  const m = v.config!.machine;
  p.etag = v.etag;
  const memory = el("input", {
    id: "set-memory",
    type: "number",
    min: "2",
    value: String(Math.round(m.memoryBytes / MIB)),
    "aria-describedby": "settings-error settings-offline",
  });
  const cpus = el("input", {
    id: "set-processors",
    type: "number",
    min: "1",
    value: String(m.processors),
    "aria-describedby": "settings-error settings-offline",
  });
  const out = el("p", { id: "settings-error", class: "field-error", role: "status" });
  const form = el(
    "form",
    { class: "stack", id: "settings-form", novalidate: true, "aria-label": "Memory and processors" },
    el("label", { for: "set-memory" }, "Memory (MiB)", memory),
    el("label", { for: "set-processors" }, "Processors", cpus),
    el("p", { id: "settings-offline", class: "muted" }),
    el(
      "div",
      { class: "actions" },
      el("button", { type: "submit" }, "Save"),
      button(
        "Reload settings",
        () =>
          void refreshVm(s, v.id)
            .then((vm) => rerender(s, vm, p))
            .catch(showError),
        { class: "secondary", id: "settings-reload" },
      ),
    ),
    out,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    out.textContent = "";
    const body = { memoryBytes: Math.round(Number(memory.value) * MIB), processors: Number(cpus.value) };
    s.client
      .call<Vm>("updateVm", { vm: v.id }, body, undefined, ifMatch(p))
      .then((vm) => {
        s.vms.set(vm.id, vm);
        rerender(s, vm, p);
        document.getElementById("settings-error")!.textContent = "Saved.";
      })
      .catch((e: unknown) => editFailed(e, out));
  });
  return form;
}

function addDiskForm(s: Session, v: Vm, p: PageState): HTMLElement {
  const kind = el(
    "select",
    { id: "add-disk-kind" },
    el("option", { value: "new" }, "New dynamic image"),
    el("option", { value: "existing" }, "Existing image"),
    el("option", { value: "child" }, "Differencing child of an image"),
  );
  const path = el("input", {
    id: "add-disk-path",
    autocomplete: "off",
    placeholder: "/srv/images/data.vhdx",
  });
  const size = el("input", { id: "add-disk-size", type: "number", value: "1", step: "any" });
  const sizeLabel = el("label", { for: "add-disk-size" }, "Size (GiB)", size);
  const parent = el("input", {
    id: "add-disk-parent",
    autocomplete: "off",
    placeholder: "/srv/images/base.vhdx",
  });
  const parentLabel = el("label", { for: "add-disk-parent", hidden: true }, "Parent image path", parent);
  kind.addEventListener("change", () => {
    sizeLabel.hidden = kind.value !== "new";
    parentLabel.hidden = kind.value !== "child";
  });
  const out = el("p", { id: "add-disk-error", class: "field-error", role: "status" });
  const form = el(
    "form",
    { class: "stack", id: "add-disk-form", novalidate: true, "aria-label": "Add a disk" },
    el("label", { for: "add-disk-kind" }, "Kind", kind),
    el("label", { for: "add-disk-path" }, "Image path", path),
    sizeLabel,
    parentLabel,
    el("button", { type: "submit" }, "Add disk"),
    out,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    out.textContent = "";
    clearError();
    const body =
      kind.value === "new"
        ? { path: path.value.trim(), create: { sizeBytes: Math.round(Number(size.value) * GIB) } }
        : kind.value === "child"
          ? { path: path.value.trim(), parent: parent.value.trim() }
          : { path: path.value.trim() };
    s.client
      .call<{ job: Job }>("addDisk", { vm: v.id }, body)
      .then(async (r) => {
        out.textContent = "Adding the disk…";
        const j = await finished(s, r.job);
        if (j.state !== "completed")
          throw new Error(j.error ? `${j.error.code}: ${j.error.message}` : j.state);
        out.textContent = "Disk added.";
        path.value = "";
        const vm = await refreshVm(s, v.id);
        p.etag = vm.etag;
        rerender(s, vm, p);
      })
      .catch((e: unknown) => editFailed(e, out));
  });
  return form;
}

function dvdForm(s: Session, v: Vm, p: PageState): HTMLElement {
  const path = el("input", { id: "dvd-path", autocomplete: "off", placeholder: "/srv/images/tools.iso" });
  const out = el("p", { id: "dvd-error", class: "field-error", role: "status" });
  const done = (vm: Vm) => {
    s.vms.set(vm.id, vm);
    p.etag = vm.etag;
    rerender(s, vm, p);
  };
  const form = el(
    "form",
    { class: "stack", id: "dvd-form", novalidate: true, "aria-label": "DVD medium" },
    el("label", { for: "dvd-path" }, "ISO path", path),
    el(
      "div",
      { class: "actions" },
      el("button", { type: "submit" }, v.config?.machine.dvd ? "Swap" : "Insert"),
      v.config?.machine.dvd
        ? button(
            "Eject",
            () =>
              void s.client
                .call<Vm>("ejectDvd", { vm: v.id })
                .then(done)
                .catch((e: unknown) => editFailed(e, out)),
            { class: "secondary", id: "dvd-eject" },
          )
        : null,
    ),
    out,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    out.textContent = "";
    s.client
      .call<Vm>("setDvd", { vm: v.id }, { path: path.value.trim() })
      .then(done)
      .catch((e: unknown) => editFailed(e, out));
  });
  return form;
}

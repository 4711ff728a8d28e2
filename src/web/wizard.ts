// Owns: the new-VM wizard: name, scope, memory, processors, boot (the bundled guest or kernel/initrd paths),
// disks (a new dynamic image of a size, an existing image, or a differencing child of one), the DVD's ISO and NICs on the service's
// switches, sent as one request (POST /v1/vms, which creates new images and the VM together or neither), and
// the API's refusal shown next to the field it names (aria-invalid, aria-describedby).
// Must not: validate what the API validates (the API's message is the one shown), or be offered to a
// principal without vm.create in some scope.
// Spec: docs/architecture.md "The web UI (src/web/)"; issue 14 (new VM wizard).

import { ApiFailure, type Vm } from "./client.js";
import { button, el } from "./dom.js";
import { clearError, showError, type Session } from "./session.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

interface Switch {
  name: string;
  kind: string;
  state: string;
}

/** A labelled control with its error line: the error is the control's accessible description. */
function field(id: string, label: string, input: HTMLElement, hint?: string): HTMLElement {
  input.setAttribute("aria-describedby", hint ? `${id}-error ${id}-hint` : `${id}-error`);
  return el(
    "label",
    { for: id },
    label,
    input,
    hint ? el("span", { class: "muted hint", id: `${id}-hint` }, hint) : null,
    el("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" }),
  );
}

function setFieldError(id: string, message: string): void {
  const input = document.getElementById(id);
  const out = document.getElementById(`${id}-error`);
  if (!input || !out) return;
  out.textContent = message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

export function newVmForm(s: Session, created: () => void): HTMLElement {
  const scopes = s.rights.scopesWith("vm.create");
  const input = (id: string, attrs: Record<string, string | boolean> = {}) =>
    el("input", { id, name: id, autocomplete: "off", ...attrs });

  const name = input("new-name", { required: true });
  const scope = scopes.includes("host")
    ? input("new-scope", { value: "default" })
    : el("select", { id: "new-scope", name: "scope" }, ...scopes.map((x) => el("option", { value: x }, x)));
  const memory = input("new-memory", { type: "number", value: "256", min: "2" });
  const cpus = input("new-processors", { type: "number", value: "1", min: "1" });

  // Boot: the bundled guest, or the kernel (and initrd) the user names.
  const bundled = el("input", {
    type: "radio",
    name: "boot",
    id: "boot-bundled",
    value: "bundled",
    checked: true,
  });
  const custom = el("input", { type: "radio", name: "boot", id: "boot-kernel", value: "kernel" });
  const kernel = input("new-kernel", { placeholder: "/srv/images/vmlinuz" });
  const initrd = input("new-initrd", { placeholder: "(none)" });
  const cmdline = input("new-cmdline", { placeholder: "(the default)" });
  const kernelBox = el(
    "div",
    { class: "stack", id: "kernel-fields", hidden: true },
    field("new-kernel", "Kernel path", kernel),
    field("new-initrd", "Initrd path (optional)", initrd),
    field("new-cmdline", "Command line (optional)", cmdline),
  );
  const bootChanged = () => (kernelBox.hidden = !custom.checked);
  bundled.addEventListener("change", bootChanged);
  custom.addEventListener("change", bootChanged);

  // Disks: rows added and removed by the user; each row's controls are numbered by its position at submit.
  const diskList = el("div", { id: "new-disks", class: "rows" });
  let diskSeq = 0;
  const addDiskRow = () => {
    const n = diskSeq++;
    const kind = el(
      "select",
      { id: `disk${n}-kind`, "data-disk": "kind" },
      el("option", { value: "new" }, "New dynamic image"),
      el("option", { value: "existing" }, "Existing image"),
      el("option", { value: "child" }, "Differencing child of an image"),
    );
    const path = input(`disk${n}-path`, { "data-disk": "path", placeholder: "/srv/images/disk.vhdx" });
    const parent = input(`disk${n}-parent`, { "data-disk": "parent", placeholder: "/srv/images/base.vhdx" });
    const parentField = field(`disk${n}-parent`, "Parent image path", parent);
    parentField.hidden = true;
    const size = input(`disk${n}-size`, { "data-disk": "size", type: "number", value: "1", step: "any" });
    const ro = el("input", { type: "checkbox", id: `disk${n}-ro`, "data-disk": "ro" });
    const sizeField = field(`disk${n}-size`, "Size (GiB)", size);
    const roField = el("label", { for: `disk${n}-ro`, class: "inline", hidden: true }, ro, " Read only");
    kind.addEventListener("change", () => {
      sizeField.hidden = kind.value !== "new";
      parentField.hidden = kind.value !== "child";
      roField.hidden = kind.value !== "existing";
    });
    const row: HTMLFieldSetElement = el(
      "fieldset",
      { class: "row", "data-row": "disk" },
      el("legend", {}, "Disk"),
      field(`disk${n}-kind`, "Kind", kind),
      field(
        `disk${n}-path`,
        "Image path",
        path,
        "An absolute path under the service's image roots; .vhdx, .vhd or raw by its extension.",
      ),
      sizeField,
      parentField,
      roField,
      button("Remove this disk", () => row.remove(), { class: "secondary" }),
    );
    diskList.append(row);
    path.focus();
  };

  const dvd = input("new-dvd", { placeholder: "(empty)" });

  // NICs: a switch each, from the service's switches (listing them needs switch.read).
  const nicList = el("div", { id: "new-nics", class: "rows" });
  const nicNote = el("p", { class: "muted", id: "nic-note" });
  let switches: Switch[] | null = null;
  let nicSeq = 0;
  const addNicRow = () => {
    const n = nicSeq++;
    const sw = el(
      "select",
      { id: `nic${n}-switch`, "data-nic": "switch" },
      ...(switches ?? []).map((x) => el("option", { value: x.name }, `${x.name} (${x.kind}, ${x.state})`)),
    );
    const row: HTMLFieldSetElement = el(
      "fieldset",
      { class: "row", "data-row": "nic" },
      el("legend", {}, "Network adapter"),
      field(`nic${n}-switch`, "Switch", sw),
      button("Remove this adapter", () => row.remove(), { class: "secondary" }),
    );
    nicList.append(row);
  };
  const addNic = button("Add a network adapter", addNicRow, {
    class: "secondary",
    id: "add-nic",
    disabled: "",
  });
  if (s.rights.can("switch.read", "host")) {
    s.client
      .call<Switch[]>("listSwitches")
      .then((list) => {
        switches = list;
        if (list.length) addNic.disabled = false;
        else nicNote.textContent = "The service has no switches (viridian switch new), so no adapters.";
      })
      .catch((e: unknown) => (nicNote.textContent = e instanceof ApiFailure ? e.shown : String(e)));
  } else nicNote.textContent = "Listing switches needs switch.read on the host: no adapters.";

  const form = el(
    "form",
    { class: "stack panel wizard", id: "new-vm", "aria-labelledby": "new-vm-title", novalidate: true },
    el("h2", { id: "new-vm-title" }, "New VM"),
    el(
      "fieldset",
      {},
      el("legend", {}, "Machine"),
      field("new-name", "Name", name),
      field("new-scope", "Scope", scope),
      field("new-memory", "Memory (MiB)", memory),
      field("new-processors", "Processors", cpus),
    ),
    el(
      "fieldset",
      { id: "boot" },
      el("legend", {}, "Boot"),
      el(
        "label",
        { for: "boot-bundled", class: "inline" },
        bundled,
        " The bundled guest (Linux and BusyBox)",
      ),
      el("label", { for: "boot-kernel", class: "inline" }, custom, " A kernel and initrd of mine"),
      kernelBox,
    ),
    el(
      "fieldset",
      {},
      el("legend", {}, "Disks"),
      diskList,
      button("Add a disk", addDiskRow, { class: "secondary", id: "add-disk" }),
    ),
    el("fieldset", {}, el("legend", {}, "DVD drive"), field("new-dvd", "ISO path (optional)", dvd)),
    el("fieldset", {}, el("legend", {}, "Network"), nicNote, nicList, addNic),
    el("button", { type: "submit" }, "Create"),
  );

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearError();
    for (const e of form.querySelectorAll<HTMLElement>(".field-error")) e.textContent = "";
    for (const e of form.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
    const diskRows = [...diskList.querySelectorAll<HTMLFieldSetElement>('[data-row="disk"]')];
    const nicRows = [...nicList.querySelectorAll<HTMLFieldSetElement>('[data-row="nic"]')];
    const ctl = (row: Element, what: string) => row.querySelector<HTMLInputElement>(`[data-disk="${what}"]`)!;
    const body = {
      name: name.value.trim(),
      scope: (scope as HTMLInputElement).value.trim(),
      memoryBytes: Math.round(Number(memory.value) * MIB),
      processors: Number(cpus.value),
      ...(custom.checked
        ? {
            kernel: kernel.value.trim() || null,
            initrd: initrd.value.trim() || null,
            cmdline: cmdline.value.trim() || null,
          }
        : {}),
      disks: diskRows.map((r) => {
        const path = ctl(r, "path").value.trim();
        const kind = ctl(r, "kind").value;
        if (kind === "new") return { path, sizeBytes: Math.round(Number(ctl(r, "size").value) * GIB) };
        if (kind === "child") return { path, parent: ctl(r, "parent").value.trim() };
        return { path, readOnly: ctl(r, "ro").checked };
      }),
      dvd: dvd.value.trim() || null,
      nics: nicRows.map((r) => ({ switch: r.querySelector<HTMLSelectElement>("select")!.value })),
    };
    s.client
      .call<Vm>("createVm", {}, body)
      .then((vm) => {
        s.vms.set(vm.id, vm);
        name.value = "";
        for (const r of [...diskRows, ...nicRows]) r.remove();
        dvd.value = "";
        created();
      })
      .catch((e: unknown) => {
        const msg = e instanceof ApiFailure ? e.shown : String(e);
        const target = fieldOf(msg, body, diskRows, nicRows);
        if (target) {
          setFieldError(target, msg);
          document.getElementById(target)?.focus();
        } else showError(e);
      });
  });
  return form;
}

/**
 * The control the API's message is about: a schema message names its field (`body/disks/0/sizeBytes must be
 * >= 1048576`), the service's own ones say `disk N:` or name the path they refused.
 */
function fieldOf(
  msg: string,
  body: {
    kernel?: string | null;
    initrd?: string | null;
    dvd: string | null;
    disks: Array<{ path: string; parent?: string }>;
  },
  diskRows: HTMLElement[],
  nicRows: HTMLElement[],
): string | null {
  const idIn = (row: HTMLElement | undefined, sel: string) => row?.querySelector(sel)?.id ?? null;
  const top: Record<string, string> = {
    name: "new-name",
    scope: "new-scope",
    memoryBytes: "new-memory",
    processors: "new-processors",
    kernel: "new-kernel",
    initrd: "new-initrd",
    cmdline: "new-cmdline",
    dvd: "new-dvd",
  };
  const disk = /body\/disks\/(\d+)(?:\/(\w+))?/.exec(msg) ?? /\bdisk (\d+):/.exec(msg);
  if (disk) {
    const i = Number(disk[1]);
    const row = diskRows[i];
    if (disk[2] === "sizeBytes") return idIn(row, '[data-disk="size"]');
    const parent = body.disks[i]?.parent;
    if (disk[2] === "parent" || (parent && msg.includes(parent))) return idIn(row, '[data-disk="parent"]');
    return idIn(row, '[data-disk="path"]');
  }
  const nic = /body\/nics\/(\d+)/.exec(msg);
  if (nic) return idIn(nicRows[Number(nic[1])], "select");
  const f = /body\/(\w+)/.exec(msg)?.[1];
  if (f && top[f]) return top[f];
  if (/VM named/.test(msg)) return "new-name";
  if (/scope/.test(msg)) return "new-scope";
  // A path the service refused (outside the roots, missing): the field that holds it.
  for (const [i, d] of body.disks.entries())
    if (d.path && msg.includes(d.path)) return idIn(diskRows[i], '[data-disk="path"]');
  if (body.kernel && msg.includes(body.kernel)) return "new-kernel";
  if (body.initrd && msg.includes(body.initrd)) return "new-initrd";
  if (body.dvd && msg.includes(body.dvd)) return "new-dvd";
  return null;
}

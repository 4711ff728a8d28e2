// Owns: the new-VM form: its fields, the request it sends (POST /v1/vms) and the API's validation messages
// shown next to the fields they name.
// Must not: validate what the API validates (the API's message is the one shown), or be offered to a
// principal without vm.create in some scope.
// Spec: docs/architecture.md "The web UI (src/web/)"; issue 14 (new VM wizard).

import { ApiFailure, type Vm } from "./client.js";
import { el } from "./dom.js";
import { clearError, showError, type Session } from "./session.js";

export function newVmForm(s: Session, created: () => void): HTMLElement {
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
        created();
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

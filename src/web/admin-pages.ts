// Owns: the administrator's authorization pages (principals and their tokens, groups and their members, roles
// and their operations, scopes and their VMs, role assignments), each listed from the API and changed through
// it; a new token's secret is shown once, in the answer that created it, and never kept.
// Must not: be offered to a principal without auth.admin on the host (main.ts does not route here; the API
// refuses every call anyway), keep a secret after the page moves on, or build markup from API text.
// Spec: docs/architecture.md "The web UI (src/web/)" and "Authorization" (AzMan's model); issue 14.

import { OPERATIONS, HOST_SCOPE } from "../api/operations.js";
import type { Assignment, Principal, Role, Scope, Token } from "../api/schemas.js";
import { ApiFailure } from "./client.js";
import { button, el, scrollBox } from "./dom.js";
import type { Session } from "./session.js";

interface Store {
  principals: Principal[];
  tokens: Token[];
  roles: Role[];
  scopes: Scope[];
  assignments: Assignment[];
}

/** Whether the principal may see these pages (auth.admin is a host-level operation). */
export function isAuthAdmin(s: Session): boolean {
  return s.rights.can("auth.admin", HOST_SCOPE);
}

async function load(s: Session): Promise<Store> {
  const [principals, tokens, roles, scopes, assignments] = await Promise.all([
    s.client.call<Principal[]>("listPrincipals"),
    s.client.call<Token[]>("listTokens"),
    s.client.call<Role[]>("listRoles"),
    s.client.call<Scope[]>("listScopes"),
    s.client.call<Assignment[]>("listAssignments"),
  ]);
  return { principals, tokens, roles, scopes, assignments };
}

const message = (e: unknown) => (e instanceof ApiFailure ? e.shown : String(e));

function table(label: string, heads: string[], rows: HTMLElement[], empty: string): HTMLElement {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  return scrollBox(
    label,
    el(
      "table",
      { "aria-label": label },
      el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows),
    ),
  );
}

function select(id: string, options: string[], attrs: Record<string, string> = {}): HTMLSelectElement {
  return el("select", { id, name: id, ...attrs }, ...options.map((o) => el("option", { value: o }, o)));
}

function field(id: string, label: string, input: HTMLElement): HTMLElement {
  return el("label", { for: id }, label, input);
}

/**
 * A form whose submit runs `act`; the API's refusal appears in the form's own message line (next to what was
 * asked), success redraws the pages.
 */
function form(
  id: string,
  title: string,
  fields: HTMLElement[],
  submit: string,
  act: () => Promise<void>,
): HTMLElement {
  const out = el("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const f = el(
    "form",
    { class: "stack inline-form", id, "aria-label": title, "aria-describedby": `${id}-error` },
    ...fields,
    el("button", { type: "submit" }, submit),
    out,
  );
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    out.textContent = "";
    act().catch((e: unknown) => (out.textContent = message(e)));
  });
  return f;
}

function section(id: string, title: string, ...children: Array<HTMLElement | null>): HTMLElement {
  return el(
    "section",
    { id, class: "panel", "aria-labelledby": `${id}-title` },
    el("h3", { id: `${id}-title` }, title),
    ...children,
  );
}

/** The pages' own state: the secret of the token just created (shown once) and the last load. */
const shown = new WeakMap<Session, { secret: { id: string; user: string; secret: string } | null }>();

export async function renderAdmin(s: Session): Promise<void> {
  const view = document.getElementById("view");
  if (!view) return;
  if (!view.querySelector("#admin-title"))
    view.replaceChildren(el("h2", { id: "admin-title" }, "Access"), el("p", { class: "muted" }, "Loading…"));
  let store: Store;
  try {
    store = await load(s);
  } catch (e) {
    view.replaceChildren(el("h2", { id: "admin-title" }, "Access"), el("p", { role: "alert" }, message(e)));
    return;
  }
  // The page may have moved on while the lists were read.
  if (document.getElementById("view") !== view || location.hash !== "#/access") return;
  const st = shown.get(s) ?? { secret: null };
  shown.set(s, st);
  const redraw = async () => renderAdmin(s);
  const call = async <T>(id: string, params: Record<string, string> = {}, body?: unknown): Promise<T> =>
    s.client.call<T>(id, params, body);

  const users = store.principals.filter((p) => p.kind === "user").map((p) => p.name);
  const groups = store.principals.filter((p) => p.kind === "group");
  const remove = (label: string, what: string, go: () => Promise<unknown>) =>
    button(
      label,
      () => {
        if (!confirm(`${label} ${what}?`)) return;
        go()
          .then(redraw)
          .catch((e: unknown) => (document.getElementById("status")!.textContent = message(e)));
      },
      { class: "secondary", "aria-label": `${label} ${what}` },
    );

  // ---- principals ----
  const pName = el("input", {
    id: "principal-name",
    name: "principal-name",
    required: true,
    autocomplete: "off",
  });
  const pKind = select("principal-kind", ["user", "group"]);
  const principals = section(
    "principals",
    "Principals",
    table(
      "Principals",
      ["Name", "Kind", "Groups / members", "Tokens", ""],
      store.principals.map((p) =>
        el(
          "tr",
          { "data-principal": p.name },
          el("th", { scope: "row" }, p.name),
          el("td", {}, p.kind),
          el("td", {}, p.members.join(", ") || "—"),
          el(
            "td",
            {},
            p.kind === "user" ? String(store.tokens.filter((t) => t.user === p.name).length) : "—",
          ),
          el(
            "td",
            {},
            remove("Delete", p.name, () => call("deletePrincipal", { name: p.name })),
          ),
        ),
      ),
      "No principals.",
    ),
    form(
      "new-principal",
      "New principal",
      [field("principal-name", "Name", pName), field("principal-kind", "Kind", pKind)],
      "Create principal",
      async () => {
        await call("createPrincipal", {}, { name: pName.value.trim(), kind: pKind.value });
        await redraw();
      },
    ),
  );

  // ---- tokens ----
  const tUser = select("token-user", users);
  const tName = el("input", { id: "token-name", name: "token-name", autocomplete: "off", maxlength: "100" });
  const secret = st.secret;
  const tokens = section(
    "tokens",
    "Tokens",
    table(
      "Tokens",
      ["Id", "User", "Name", "Created", ""],
      store.tokens.map((t) =>
        el(
          "tr",
          { "data-token": t.id, "data-user": t.user },
          el("th", { scope: "row" }, el("code", {}, t.id)),
          el("td", {}, t.user),
          el("td", {}, t.name || "—"),
          el("td", {}, new Date(t.created).toLocaleString()),
          el(
            "td",
            {},
            remove("Revoke", `token ${t.id} of ${t.user}`, () => call("revokeToken", { id: t.id })),
          ),
        ),
      ),
      "No tokens.",
    ),
    secret
      ? el(
          "div",
          { class: "secret", role: "status" },
          el("p", {}, `The new token of ${secret.user} (shown once; copy it now, only its hash is kept):`),
          el("output", { id: "token-secret", "aria-label": `Secret of token ${secret.id}` }, secret.secret),
        )
      : null,
    users.length
      ? form(
          "new-token",
          "New token",
          [field("token-user", "User", tUser), field("token-name", "Name (optional)", tName)],
          "Create token",
          async () => {
            const body: { user: string; name?: string } = { user: tUser.value };
            if (tName.value.trim()) body.name = tName.value.trim();
            const r = await call<{ token: Token; secret: string }>("createToken", {}, body);
            st.secret = { id: r.token.id, user: r.token.user, secret: r.secret };
            await redraw();
            // Shown once: gone from the page at the next redraw.
            st.secret = null;
          },
        )
      : el("p", { class: "muted" }, "Create a user first."),
  );

  // ---- groups and members ----
  const gGroup = select(
    "member-group",
    groups.map((g) => g.name),
  );
  const gUser = select("member-user", users);
  const groupSection = section(
    "groups",
    "Groups and members",
    table(
      "Groups",
      ["Group", "Members"],
      groups.map((g) =>
        el(
          "tr",
          { "data-group": g.name },
          el("th", { scope: "row" }, g.name),
          el(
            "td",
            {},
            g.members.length
              ? el(
                  "ul",
                  { class: "chips" },
                  ...g.members.map((m) =>
                    el(
                      "li",
                      {},
                      m,
                      " ",
                      remove("Remove", `${m} from ${g.name}`, () =>
                        call("removeGroupMember", { name: g.name, user: m }),
                      ),
                    ),
                  ),
                )
              : "—",
          ),
        ),
      ),
      "No groups.",
    ),
    groups.length && users.length
      ? form(
          "new-member",
          "Add a member",
          [field("member-group", "Group", gGroup), field("member-user", "User", gUser)],
          "Add member",
          async () => {
            await call("addGroupMember", { name: gGroup.value, user: gUser.value });
            await redraw();
          },
        )
      : null,
  );

  // ---- roles ----
  const rName = el("input", { id: "role-name", name: "role-name", required: true, autocomplete: "off" });
  const rDesc = el("input", {
    id: "role-description",
    name: "role-description",
    autocomplete: "off",
    maxlength: "200",
  });
  const ops = el(
    "fieldset",
    { class: "ops" },
    el("legend", {}, "Operations"),
    ...OPERATIONS.map((o) =>
      el(
        "label",
        { class: "check", title: o.description },
        el("input", { type: "checkbox", name: "role-op", value: o.id }),
        ` ${o.id}`,
      ),
    ),
  );
  const roles = section(
    "roles",
    "Roles",
    table(
      "Roles",
      ["Role", "Operations", ""],
      store.roles.map((r) =>
        el(
          "tr",
          { "data-role": r.name },
          el(
            "th",
            { scope: "row" },
            r.name,
            r.builtin ? el("span", { class: "muted" }, " (built in)") : null,
          ),
          el("td", { class: "ops-list" }, r.operations.join(", ")),
          el(
            "td",
            {},
            r.builtin ? null : remove("Delete", `role ${r.name}`, () => call("deleteRole", { name: r.name })),
          ),
        ),
      ),
      "No roles.",
    ),
    form(
      "new-role",
      "New role",
      [field("role-name", "Name", rName), field("role-description", "Description", rDesc), ops],
      "Create role",
      async () => {
        const chosen = [...ops.querySelectorAll<HTMLInputElement>("input:checked")].map((i) => i.value);
        const body: { name: string; operations: string[]; description?: string } = {
          name: rName.value.trim(),
          operations: chosen,
        };
        if (rDesc.value.trim()) body.description = rDesc.value.trim();
        await call("createRole", {}, body);
        await redraw();
      },
    ),
  );

  // ---- scopes ----
  const sName = el("input", { id: "scope-name", name: "scope-name", required: true, autocomplete: "off" });
  const vmsOf = (scope: string) =>
    [...s.vms.values()]
      .filter((v) => v.scope === scope)
      .map((v) => v.name)
      .sort();
  const scopes = section(
    "scopes",
    "Scopes",
    table(
      "Scopes",
      ["Scope", "VMs", ""],
      store.scopes.map((sc) =>
        el(
          "tr",
          { "data-scope": sc.name },
          el("th", { scope: "row" }, sc.name),
          el("td", {}, `${sc.vms}: ${vmsOf(sc.name).join(", ") || "—"}`),
          el(
            "td",
            {},
            sc.builtin
              ? null
              : remove("Delete", `scope ${sc.name}`, () => call("deleteScope", { name: sc.name })),
          ),
        ),
      ),
      "No scopes.",
    ),
    form("new-scope", "New scope", [field("scope-name", "Name", sName)], "Create scope", async () => {
      await call("createScope", {}, { name: sName.value.trim() });
      await redraw();
    }),
  );

  // ---- assignments ----
  const aWho = select(
    "assign-principal",
    store.principals.map((p) => p.name),
  );
  const aRole = select(
    "assign-role",
    store.roles.map((r) => r.name),
  );
  const aScope = select("assign-scope", [HOST_SCOPE, ...store.scopes.map((x) => x.name)]);
  const assignments = section(
    "assignments",
    "Assignments",
    table(
      "Assignments",
      ["Principal", "Role", "Scope", ""],
      store.assignments.map((a) =>
        el(
          "tr",
          { "data-assignment": `${a.principal}|${a.role}|${a.scope}` },
          el("th", { scope: "row" }, a.principal),
          el("td", {}, a.role),
          el("td", {}, a.scope),
          el(
            "td",
            {},
            remove("Remove", `${a.role} of ${a.principal} on ${a.scope}`, () =>
              call("deleteAssignment", { id: a.id }),
            ),
          ),
        ),
      ),
      "No assignments.",
    ),
    store.principals.length
      ? form(
          "new-assignment",
          "New assignment",
          [
            field("assign-principal", "Principal", aWho),
            field("assign-role", "Role", aRole),
            field("assign-scope", "Scope", aScope),
          ],
          "Assign",
          async () => {
            await call(
              "createAssignment",
              {},
              { principal: aWho.value, role: aRole.value, scope: aScope.value },
            );
            await redraw();
          },
        )
      : null,
  );

  const focused = document.activeElement?.id;
  view.replaceChildren(
    el("h2", { id: "admin-title" }, "Access"),
    el(
      "p",
      { class: "muted" },
      "Who may do what: principals sign in with tokens; roles bundle operations; assignments give a role on a scope (or the host).",
    ),
    principals,
    tokens,
    groupSection,
    roles,
    scopes,
    assignments,
  );
  if (focused) document.getElementById(focused)?.focus();
}

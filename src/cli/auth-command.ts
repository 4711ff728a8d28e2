// Owns: `viridian auth ...`: users, groups and their members, bearer tokens, roles (built-in and custom, from
// operation ids or AzMan names), scopes, assignments, whoami and the audit log, as requests to the API.
// Must not: read or write the authorization store directly (only the service does), or print a token's
// secret anywhere but once, at creation, on stdout.
// Spec: README.md "Authorization quick start"; docs/architecture.md "Authorization".

import { OPERATIONS } from "../api/operations.js";
import type { Assignment, AuditEntry, Principal, Role, Scope, Token } from "../api/schemas.js";
import { ApiClient, EXIT } from "./api-client.js";
import { CONNECTION_HELP, need, parseVerb, type Parsed } from "./api-args.js";
import { printJson, reportError, table, UsageError } from "./api-output.js";
import type { Command } from "./command.js";

const USAGE = `usage: viridian auth <noun> <verb> ...

  user add|delete NAME | user list
  group add|delete NAME | group list | group member add|remove GROUP USER
  token create USER [--name LABEL]      prints the secret once; the service keeps only a salted hash
  token list | token revoke ID          a revoked token stops working at once
  role list | role show NAME | role add NAME --ops OP,OP,... [--description TEXT] | role delete NAME
  scope list | scope add NAME | scope delete NAME
  assign PRINCIPAL ROLE SCOPE           SCOPE is a scope name or 'host' (every scope and the host)
  assign list | assign remove ID
  whoami                                your principal and rights
  audit [--after SEQ] [--limit N]       authorization decisions
  operations                            every operation with its AzMan name

${CONNECTION_HELP}`;

const OPTIONS = {
  name: { type: "string" },
  ops: { type: "string" },
  description: { type: "string" },
  after: { type: "string" },
  limit: { type: "string" },
} as const;

function out(p: Parsed, v: unknown, human: () => string): void {
  if (p.json) printJson(v);
  else console.log(human());
}

function principals(p: Parsed, list: Principal[], kind: "user" | "group"): void {
  const rows = list.filter((x) => x.kind === kind);
  out(p, rows, () =>
    table(
      ["NAME", kind === "user" ? "GROUPS" : "MEMBERS", "CREATED"],
      rows.map((x) => [x.name, x.members.join(",") || "-", x.created]),
    ),
  );
}

async function run(args: string[]): Promise<number> {
  const [noun, ...rest] = args;
  if (noun === undefined || noun === "--help" || noun === "-h" || noun === "help") {
    console.log(USAGE);
    return noun === undefined ? EXIT.usage : EXIT.ok;
  }
  const label = `auth ${noun}`;
  try {
    if (noun === "operations") {
      const p = parseVerb(rest, OPTIONS);
      out(p, OPERATIONS, () =>
        table(
          ["OPERATION", "LEVEL", "AZMAN NAME", "WHAT"],
          OPERATIONS.map((o) => [o.id, o.level, o.alias, o.description]),
        ),
      );
      return EXIT.ok;
    }
    const simple = noun === "whoami" || noun === "audit";
    const verb = simple ? undefined : rest[0];
    const p = parseVerb(simple ? rest : rest.slice(1), OPTIONS);
    if (p.help) {
      console.log(USAGE);
      return EXIT.ok;
    }
    const api = new ApiClient(p.conn);
    const key = `${noun} ${verb ?? ""}`.trim();
    switch (key) {
      case "whoami": {
        const { body } = await api.call<{
          principal: string;
          groups: string[];
          rights: Record<string, string[]>;
        }>("whoAmI");
        out(p, body, () =>
          [
            `principal: ${body.principal}`,
            `groups:    ${body.groups.join(", ") || "-"}`,
            ...Object.entries(body.rights).map(([s, ops]) => `${s}: ${ops.join(" ")}`),
          ].join("\n"),
        );
        return EXIT.ok;
      }
      case "audit": {
        const query: Record<string, string> = {};
        if (typeof p.values.after === "string") query.after = p.values.after;
        if (typeof p.values.limit === "string") query.limit = p.values.limit;
        const { body } = await api.call<AuditEntry[]>("readAudit", {}, { query });
        out(p, body, () =>
          table(
            ["SEQ", "TIME", "PRINCIPAL", "OPERATION", "TARGET", "RESULT"],
            body.map((e) => [e.seq, e.time, e.principal, e.operation, e.target, e.result]),
          ),
        );
        return EXIT.ok;
      }
      case "user list":
      case "group list": {
        need(p, 0, `viridian auth ${key}`);
        principals(p, (await api.call<Principal[]>("listPrincipals")).body, noun as "user" | "group");
        return EXIT.ok;
      }
      case "user add":
      case "group add": {
        const [name] = need(p, 1, `viridian auth ${key} NAME`);
        const { body } = await api.call<Principal>("createPrincipal", {}, { body: { name, kind: noun } });
        out(p, body, () => `${noun} ${body.name} created`);
        return EXIT.ok;
      }
      case "user delete":
      case "group delete": {
        const [name] = need(p, 1, `viridian auth ${key} NAME`);
        await api.call("deletePrincipal", { name: name! });
        out(p, { deleted: name }, () => `${noun} ${name} deleted`);
        return EXIT.ok;
      }
      case "group member": {
        const [op, group, user] = need(p, 3, "viridian auth group member add|remove GROUP USER");
        if (op !== "add" && op !== "remove")
          throw new UsageError("usage: viridian auth group member add|remove GROUP USER");
        const { body } = await api.call<Principal>(op === "add" ? "addGroupMember" : "removeGroupMember", {
          name: group!,
          user: user!,
        });
        out(p, body, () => `${body.name}: ${body.members.join(", ") || "(no members)"}`);
        return EXIT.ok;
      }
      case "token create": {
        const [user] = need(p, 1, "viridian auth token create USER [--name LABEL]");
        const name = typeof p.values.name === "string" ? p.values.name : "";
        const { body } = await api.call<{ token: Token; secret: string }>(
          "createToken",
          {},
          { body: { user, name } },
        );
        out(p, body, () => body.secret);
        if (!p.json)
          console.error(`token ${body.token.id} for ${body.token.user}: the secret above is shown only now`);
        return EXIT.ok;
      }
      case "token list": {
        const { body } = await api.call<Token[]>("listTokens");
        out(p, body, () =>
          table(
            ["ID", "USER", "NAME", "CREATED"],
            body.map((t) => [t.id, t.user, t.name || "-", t.created]),
          ),
        );
        return EXIT.ok;
      }
      case "token revoke": {
        const [id] = need(p, 1, "viridian auth token revoke ID");
        await api.call("revokeToken", { id: id! });
        out(p, { revoked: id }, () => `token ${id} revoked`);
        return EXIT.ok;
      }
      case "role list": {
        const { body } = await api.call<Role[]>("listRoles");
        out(p, body, () =>
          table(
            ["ROLE", "BUILT-IN", "OPERATIONS"],
            body.map((r) => [r.name, r.builtin ? "yes" : "no", r.operations.join(" ")]),
          ),
        );
        return EXIT.ok;
      }
      case "role show": {
        const [name] = need(p, 1, "viridian auth role show NAME");
        const role = (await api.call<Role[]>("listRoles")).body.find((r) => r.name === name);
        if (!role) throw new UsageError(`no role '${name}'`);
        out(p, role, () =>
          [
            `${role.name}${role.builtin ? " (built-in)" : ""}: ${role.description}`,
            ...role.operations.map((o) => `  ${o}`),
          ].join("\n"),
        );
        return EXIT.ok;
      }
      case "role add": {
        const [name] = need(p, 1, "viridian auth role add NAME --ops OP,OP,...");
        if (typeof p.values.ops !== "string") throw new UsageError("--ops OP,OP,... is required");
        const body = {
          name,
          operations: p.values.ops
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
          ...(typeof p.values.description === "string" ? { description: p.values.description } : {}),
        };
        const { body: role } = await api.call<Role>("createRole", {}, { body });
        out(p, role, () => `role ${role.name}: ${role.operations.join(" ")}`);
        return EXIT.ok;
      }
      case "role delete": {
        const [name] = need(p, 1, "viridian auth role delete NAME");
        await api.call("deleteRole", { name: name! });
        out(p, { deleted: name }, () => `role ${name} deleted`);
        return EXIT.ok;
      }
      case "scope list": {
        const { body } = await api.call<Scope[]>("listScopes");
        out(p, body, () =>
          table(
            ["SCOPE", "VMS"],
            body.map((s) => [s.name, s.vms]),
          ),
        );
        return EXIT.ok;
      }
      case "scope add": {
        const [name] = need(p, 1, "viridian auth scope add NAME");
        const { body } = await api.call<Scope>("createScope", {}, { body: { name } });
        out(p, body, () => `scope ${body.name} created`);
        return EXIT.ok;
      }
      case "scope delete": {
        const [name] = need(p, 1, "viridian auth scope delete NAME");
        await api.call("deleteScope", { name: name! });
        out(p, { deleted: name }, () => `scope ${name} deleted`);
        return EXIT.ok;
      }
      case "assign list": {
        const { body } = await api.call<Assignment[]>("listAssignments");
        out(p, body, () =>
          table(
            ["ID", "PRINCIPAL", "ROLE", "SCOPE"],
            body.map((a) => [a.id, a.principal, a.role, a.scope]),
          ),
        );
        return EXIT.ok;
      }
      case "assign remove": {
        const [id] = need(p, 1, "viridian auth assign remove ID");
        await api.call("deleteAssignment", { id: id! });
        out(p, { deleted: id }, () => `assignment ${id} removed`);
        return EXIT.ok;
      }
      default: {
        if (noun === "assign" && verb !== undefined) {
          // `assign PRINCIPAL ROLE SCOPE`: the verb slot holds the principal.
          const [role, scope] = need(p, 2, "viridian auth assign PRINCIPAL ROLE SCOPE");
          const { body } = await api.call<Assignment>(
            "createAssignment",
            {},
            { body: { principal: verb, role, scope } },
          );
          out(p, body, () => `assignment ${body.id}: ${body.principal} is ${body.role} on ${body.scope}`);
          return EXIT.ok;
        }
        throw new UsageError(`unknown: auth ${key}\n\n${USAGE}`);
      }
    }
  } catch (e) {
    return reportError(label, e);
  }
}

export const command: Command = {
  summary: "principals, tokens, roles, scopes and assignments of the VM service",
  run,
};

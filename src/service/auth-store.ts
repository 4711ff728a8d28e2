// Owns: the authorization store (`<data>/auth.json`): principals (users and groups with members), bearer
// tokens (kept only as salted SHA-256 hashes), custom roles, scopes and assignments, with every change
// written durably before it is acknowledged; and token verification.
// Must not: decide whether an operation is allowed (authorizer.ts does), keep or log a token's secret, or
// start with a store it cannot read (an unreadable store is an error that stops the service, never an
// empty store: that would silently drop every assignment).
// Spec: docs/architecture.md "Authorization"; ../shared/research/anchors-management.md section 3.

import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { ApiError } from "../api/errors.js";
import {
  BUILTIN_ROLES,
  DEFAULT_SCOPE,
  HOST_SCOPE,
  resolveOperation,
  type OperationId,
} from "../api/operations.js";
import type { Assignment, Principal, Role, Token } from "../api/schemas.js";
import { writeFileDurable } from "./durable-file.js";

const StoredPrincipal = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal("user"), Type.Literal("group")]),
  members: Type.Array(Type.String()),
  created: Type.String(),
});
const StoredToken = Type.Object({
  id: Type.String(),
  user: Type.String(),
  name: Type.String(),
  created: Type.String(),
  salt: Type.String(),
  hash: Type.String(),
});
const StoredRole = Type.Object({
  name: Type.String(),
  description: Type.String(),
  operations: Type.Array(Type.String()),
});
const StoredAssignment = Type.Object({
  id: Type.String(),
  principal: Type.String(),
  role: Type.String(),
  scope: Type.String(),
});
const AuthFile = Type.Object({
  version: Type.Literal(1),
  principals: Type.Array(StoredPrincipal),
  tokens: Type.Array(StoredToken),
  roles: Type.Array(StoredRole),
  scopes: Type.Array(Type.String()),
  assignments: Type.Array(StoredAssignment),
});
type AuthFile = Static<typeof AuthFile>;

/** Who is calling: a user (with the groups it belongs to), or the service's own OS user on the UNIX socket. */
export interface Identity {
  name: string;
  groups: string[];
  /** The local UNIX socket's peer: only the service's user can reach it (0600 socket in a 0700 directory). */
  local: boolean;
}

/** The principal of requests on the UNIX socket without a token: the service's own user, an Administrator. */
export const LOCAL_PRINCIPAL = "@local";
const TOKEN_PREFIX = "vrd_";

export class AuthStoreError extends Error {
  override name = "AuthStoreError";
}

function now(): string {
  return new Date().toISOString();
}

function hashSecret(salt: Buffer, secret: string): Buffer {
  return createHash("sha256").update(salt).update(secret, "utf8").digest();
}

export class AuthStore {
  private data: AuthFile;

  constructor(private readonly path: string) {
    if (!existsSync(path)) {
      this.data = { version: 1, principals: [], tokens: [], roles: [], scopes: [], assignments: [] };
      this.save();
      return;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, "utf8"));
    } catch (e) {
      throw new AuthStoreError(`${path}: cannot read the authorization store: ${(e as Error).message}`);
    }
    if (!Value.Check(AuthFile, doc)) {
      const first = Value.Errors(AuthFile, doc).First();
      throw new AuthStoreError(
        `${path}: invalid authorization store: ${first?.path ?? ""} ${first?.message ?? ""}`,
      );
    }
    this.data = doc;
  }

  private save(): void {
    writeFileDurable(this.path, JSON.stringify(this.data, null, 2) + "\n");
  }

  /** Applies a change to a copy and persists it; the in-memory store changes only once the file has. */
  private mutate<T>(change: (d: AuthFile) => T): T {
    const next = structuredClone(this.data);
    const out = change(next);
    const prev = this.data;
    this.data = next;
    try {
      this.save();
    } catch (e) {
      this.data = prev;
      throw e;
    }
    return out;
  }

  // ---- principals ----
  principals(): Principal[] {
    return this.data.principals.map((p) => this.view(p));
  }
  private view(p: Static<typeof StoredPrincipal>): Principal {
    if (p.kind === "group") return { ...p, members: [...p.members] };
    return { ...p, members: this.groupsOf(p.name) };
  }
  principal(name: string): Principal {
    const p = this.data.principals.find((x) => x.name === name);
    if (!p) throw new ApiError("not-found", `no principal '${name}'`);
    return this.view(p);
  }
  groupsOf(user: string): string[] {
    return this.data.principals
      .filter((p) => p.kind === "group" && p.members.includes(user))
      .map((p) => p.name);
  }
  createPrincipal(name: string, kind: "user" | "group"): Principal {
    return this.mutate((d) => {
      if (d.principals.some((p) => p.name === name))
        throw new ApiError("conflict", `principal '${name}' exists`);
      const p = { name, kind, members: [], created: now() };
      d.principals.push(p);
      return { ...p };
    });
  }
  deletePrincipal(name: string): void {
    this.principal(name);
    this.mutate((d) => {
      d.principals = d.principals.filter((p) => p.name !== name);
      for (const g of d.principals) g.members = g.members.filter((m) => m !== name);
      d.tokens = d.tokens.filter((t) => t.user !== name);
      d.assignments = d.assignments.filter((a) => a.principal !== name);
    });
  }
  setMember(group: string, user: string, member: boolean): Principal {
    const g = this.principal(group);
    if (g.kind !== "group") throw new ApiError("conflict", `'${group}' is a user, not a group`);
    const u = this.principal(user);
    if (u.kind !== "user") throw new ApiError("conflict", `'${user}' is a group; groups hold users only`);
    this.mutate((d) => {
      const sg = d.principals.find((p) => p.name === group)!;
      sg.members = sg.members.filter((m) => m !== user);
      if (member) sg.members.push(user);
    });
    return this.principal(group);
  }

  // ---- tokens ----
  tokens(): Token[] {
    return this.data.tokens.map(({ id, user, name, created }) => ({ id, user, name, created }));
  }
  /** Creates a token for a user; the returned secret is the only copy. */
  createToken(user: string, name: string): { token: Token; secret: string } {
    const u = this.principal(user);
    if (u.kind !== "user") throw new ApiError("conflict", `tokens belong to users; '${user}' is a group`);
    const id = randomBytes(6).toString("hex");
    const secretPart = randomBytes(32).toString("base64url");
    const salt = randomBytes(16);
    const token: Token = { id, user, name, created: now() };
    this.mutate((d) => {
      d.tokens.push({
        ...token,
        salt: salt.toString("base64"),
        hash: hashSecret(salt, secretPart).toString("base64"),
      });
    });
    return { token, secret: `${TOKEN_PREFIX}${id}.${secretPart}` };
  }
  revokeToken(id: string): void {
    if (!this.data.tokens.some((t) => t.id === id)) throw new ApiError("not-found", `no token '${id}'`);
    this.mutate((d) => {
      d.tokens = d.tokens.filter((t) => t.id !== id);
    });
  }
  /** The identity a bearer secret stands for, or null (unknown, malformed or revoked). Constant-time compare. */
  verify(bearer: string): Identity | null {
    if (!bearer.startsWith(TOKEN_PREFIX) || bearer.length > 200) return null;
    const dot = bearer.indexOf(".");
    if (dot < 0) return null;
    const id = bearer.slice(TOKEN_PREFIX.length, dot);
    const t = this.data.tokens.find((x) => x.id === id);
    if (!t) return null;
    const want = Buffer.from(t.hash, "base64");
    const got = hashSecret(Buffer.from(t.salt, "base64"), bearer.slice(dot + 1));
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    return { name: t.user, groups: this.groupsOf(t.user), local: false };
  }

  // ---- roles ----
  roles(): Role[] {
    return [
      ...BUILTIN_ROLES.map((r) => ({
        name: r.name,
        builtin: true,
        description: r.description,
        operations: [...r.operations],
      })),
      ...this.data.roles.map((r) => ({ ...r, builtin: false, operations: [...r.operations] })),
    ];
  }
  role(name: string): Role {
    const r = this.roles().find((x) => x.name === name);
    if (!r) throw new ApiError("not-found", `no role '${name}'`);
    return r;
  }
  createRole(name: string, description: string, operations: string[]): Role {
    if (this.roles().some((r) => r.name === name)) throw new ApiError("conflict", `role '${name}' exists`);
    const ops: OperationId[] = [];
    for (const o of operations) {
      const id = resolveOperation(o);
      if (!id) throw new ApiError("bad-request", `unknown operation '${o}'`);
      if (!ops.includes(id)) ops.push(id);
    }
    const role = { name, description, operations: ops };
    this.mutate((d) => d.roles.push(role));
    return { ...role, builtin: false };
  }
  deleteRole(name: string): void {
    const r = this.role(name);
    if (r.builtin) throw new ApiError("conflict", `'${name}' is a built-in role`);
    if (this.data.assignments.some((a) => a.role === name))
      throw new ApiError("conflict", `role '${name}' is assigned; remove its assignments first`);
    this.mutate((d) => {
      d.roles = d.roles.filter((x) => x.name !== name);
    });
  }

  // ---- scopes ----
  scopeNames(): string[] {
    return [DEFAULT_SCOPE, ...this.data.scopes];
  }
  hasScope(name: string): boolean {
    return name === DEFAULT_SCOPE || this.data.scopes.includes(name);
  }
  createScope(name: string): void {
    if (name === HOST_SCOPE) throw new ApiError("conflict", `'${HOST_SCOPE}' is the host scope`);
    if (this.hasScope(name)) throw new ApiError("conflict", `scope '${name}' exists`);
    this.mutate((d) => d.scopes.push(name));
  }
  /** Deletes a scope; the caller checks that no VM is in it. */
  deleteScope(name: string): void {
    if (name === DEFAULT_SCOPE) throw new ApiError("conflict", "the default scope cannot be deleted");
    if (!this.data.scopes.includes(name)) throw new ApiError("not-found", `no scope '${name}'`);
    this.mutate((d) => {
      d.scopes = d.scopes.filter((s) => s !== name);
      d.assignments = d.assignments.filter((a) => a.scope !== name);
    });
  }

  // ---- assignments ----
  assignments(): Assignment[] {
    return this.data.assignments.map((a) => ({ ...a }));
  }
  createAssignment(principal: string, role: string, scope: string): Assignment {
    this.principal(principal);
    this.role(role);
    if (scope !== HOST_SCOPE && !this.hasScope(scope)) throw new ApiError("not-found", `no scope '${scope}'`);
    const existing = this.data.assignments.find(
      (a) => a.principal === principal && a.role === role && a.scope === scope,
    );
    if (existing) return { ...existing };
    const a = { id: randomUUID().slice(0, 8), principal, role, scope };
    this.mutate((d) => d.assignments.push(a));
    return { ...a };
  }
  deleteAssignment(id: string): void {
    if (!this.data.assignments.some((a) => a.id === id))
      throw new ApiError("not-found", `no assignment '${id}'`);
    this.mutate((d) => {
      d.assignments = d.assignments.filter((a) => a.id !== id);
    });
  }

  /** The operations an identity holds, per scope name (`host` for host-level assignments). */
  rightsOf(who: Identity): Map<string, Set<OperationId>> {
    const out = new Map<string, Set<OperationId>>();
    if (who.local) {
      out.set(HOST_SCOPE, new Set(BUILTIN_ROLES[0]!.operations));
      return out;
    }
    const names = new Set([who.name, ...who.groups]);
    const roles = new Map(this.roles().map((r) => [r.name, r.operations as OperationId[]]));
    for (const a of this.data.assignments) {
      if (!names.has(a.principal)) continue;
      const set = out.get(a.scope) ?? new Set<OperationId>();
      for (const op of roles.get(a.role) ?? []) set.add(op);
      out.set(a.scope, set);
    }
    return out;
  }
}

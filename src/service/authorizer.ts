// Owns: the authorization decision: may this identity perform this operation on this scope (or the host)?
// Deny by default: only an assignment of a role holding the operation, on that scope or on the host scope,
// allows it; host-level operations need a host assignment. Every decision goes to the audit log.
// Must not: authenticate (the API layer turns a token into an Identity through the AuthStore), or let a
// scope-level assignment reach the host or another scope.
// Spec: docs/architecture.md "Authorization"; AzMan's model (operations, roles, scopes, assignments).

import { HOST_SCOPE, operationDef, type OperationId } from "../api/operations.js";
import type { AuditLog } from "./audit-log.js";
import type { AuthStore, Identity } from "./auth-store.js";

export interface Decision {
  allowed: boolean;
  reason: string;
}

export class Authorizer {
  constructor(
    private readonly store: AuthStore,
    private readonly audit: AuditLog,
  ) {}

  /** Decides without recording (for filtering lists; the caller records one entry for the whole list). */
  check(who: Identity, op: OperationId, scope: string): Decision {
    const rights = this.store.rightsOf(who);
    const def = operationDef(op);
    if (rights.get(HOST_SCOPE)?.has(op)) return { allowed: true, reason: "host assignment" };
    if (def.level === "host")
      return { allowed: false, reason: `${op} is a host-level operation: it needs a host assignment` };
    if (scope !== HOST_SCOPE && rights.get(scope)?.has(op))
      return { allowed: true, reason: `assignment on scope ${scope}` };
    return { allowed: false, reason: `no role with ${op} on scope ${scope}` };
  }

  /** Decides and records the decision; `target` names what the operation acts on (e.g. "vm:web1 (scope lab)"). */
  authorize(who: Identity, op: OperationId, scope: string, target: string): Decision {
    const d = this.check(who, op, scope);
    this.record(who, op, target, d);
    return d;
  }

  record(who: Identity, op: string, target: string, d: Decision): void {
    this.audit.append({
      principal: who.name,
      operation: op,
      target,
      result: d.allowed ? "allow" : "deny",
      reason: d.reason,
    });
  }
}

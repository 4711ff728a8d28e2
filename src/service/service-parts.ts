// Owns: the set of service objects the API layer works with (stores, authorizer, jobs, events, VMs), as one
// type, so app.ts and api-handlers.ts share it without importing each other.
// Must not: contain behaviour.
// Spec: docs/architecture.md "The VM service".

import type { AuditLog } from "./audit-log.js";
import type { AuthStore } from "./auth-store.js";
import type { Authorizer } from "./authorizer.js";
import type { EventBus } from "./events.js";
import type { Jobs } from "./jobs.js";
import type { ServiceConfigStore } from "./service-config.js";
import type { SwitchService } from "./switches.js";
import type { VmService } from "./vm-service.js";

export interface ServiceParts {
  auth: AuthStore;
  authz: Authorizer;
  audit: AuditLog;
  jobs: Jobs;
  events: EventBus;
  vms: VmService;
  switches: SwitchService;
  config: ServiceConfigStore;
  /** True for connections accepted on the local UNIX socket. */
  isLocal(socket: unknown): boolean;
  version: string;
}

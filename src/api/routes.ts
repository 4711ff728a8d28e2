// Owns: the route table: every HTTP route the service serves (method, path, schemas, the operation it needs
// and what that operation is checked against). The service registers exactly these routes with exactly these
// schemas, the OpenAPI document is generated from them, the CLI builds its requests from them, and the
// permission-matrix test iterates them.
// Must not: hold handlers (src/service/api-handlers.ts) or authorization decisions (src/service/authorizer.ts).
// Spec: docs/architecture.md "The management API"; OpenAPI 3.1.

import { Type, type TSchema } from "@sinclair/typebox";
import type { OperationId } from "./operations.js";
import * as S from "./schemas.js";

/** Every route lives under this prefix; a breaking change gets a new one. */
export const API_PREFIX = "/v1";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/**
 * What a route's operation is checked against:
 * - `vm`: the scope of the VM named by the `vm` path parameter;
 * - `create`: the scope named in the body (default scope when absent);
 * - `host`: the host scope (host-level operations, and scope-level ones assigned at the host);
 * - `filter`: nothing is refused; the answer holds only what the principal may see with the operation;
 * - `job`: the scope of the job's VM; the operation is `vm.config.read` to read a job and the job's own
 *   operation (e.g. `vm.start`) to cancel it;
 * - `self`: any authenticated principal (its own identity, the API document).
 */
export type RouteTarget = "vm" | "create" | "host" | "filter" | "job" | "self";

export interface RouteDef {
  /** The OpenAPI operationId. */
  id: string;
  method: HttpMethod;
  /** Path after API_PREFIX, with `:param` segments (fastify's syntax; OpenAPI's `{param}` is derived). */
  path: string;
  summary: string;
  /** The operation required (for `job` routes: the one to read; cancel needs the job's own). */
  operation: OperationId | null;
  target: RouteTarget;
  params?: TSchema;
  query?: TSchema;
  body?: TSchema;
  /** The success status and its body schema (202: a job was started; the body is `{ job }`). */
  status: 200 | 201 | 202 | 204;
  response: TSchema | null;
  /** A WebSocket endpoint (GET upgrade). */
  websocket?: true;
  /** Sends an ETag and honours If-Match. */
  etag?: true;
  /** A second operation that also grants access (the console: input and output are separate rights). */
  alsoAccepts?: OperationId;
  /**
   * A second operation needed as well, checked against the host scope (adding a NIC needs vm.hardware.add on
   * the VM's scope and switch.connect, a host-level right). Routes whose body may ask for it (create a VM
   * with NICs) check it in their handler instead.
   */
  alsoRequires?: OperationId;
  /** Served at the root, not under API_PREFIX (Prometheus expects `/metrics`). */
  root?: true;
}

const VmParam = Type.Object(
  { vm: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
const IdParam = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
const NameParam = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
const DiskParam = Type.Object(
  { vm: Type.String({ minLength: 1, maxLength: 64 }), index: Type.String({ pattern: "^[0-9]{1,2}$" }) },
  { additionalProperties: false },
);
const NicParam = Type.Object(
  { vm: Type.String({ minLength: 1, maxLength: 64 }), index: Type.String({ pattern: "^[0-9]{1,2}$" }) },
  { additionalProperties: false },
);
const MemberParam = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }), user: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
const WaitQuery = Type.Object(
  { timeout: Type.Optional(Type.String({ pattern: "^[0-9]{1,5}$", description: "seconds, at most 3600" })) },
  { additionalProperties: false },
);
const DeleteQuery = Type.Object(
  { deleteDisks: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])) },
  { additionalProperties: false },
);
const AuditQuery = Type.Object(
  {
    after: Type.Optional(
      Type.String({ pattern: "^[0-9]{1,15}$", description: "entries after this sequence number" }),
    ),
    before: Type.Optional(
      Type.String({
        pattern: "^[0-9]{1,15}$",
        description: "entries before this sequence number: the newest `limit` of them (still oldest first)",
      }),
    ),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,5}$", description: "at most 10000" })),
  },
  { additionalProperties: false },
);
const NoQuery = Type.Object({}, { additionalProperties: false });
const List = <T extends TSchema>(t: T) => Type.Array(t);

export const ROUTES: readonly RouteDef[] = [
  // VMs
  {
    id: "listVms",
    method: "GET",
    path: "/vms",
    summary: "List the VMs the caller may see",
    operation: "vm.config.read",
    target: "filter",
    status: 200,
    response: List(S.Vm),
  },
  {
    id: "createVm",
    method: "POST",
    path: "/vms",
    summary: "Create a VM (Off) in a scope",
    operation: "vm.create",
    target: "create",
    body: S.VmCreate,
    status: 201,
    response: S.Vm,
    etag: true,
  },
  {
    id: "getVm",
    method: "GET",
    path: "/vms/:vm",
    summary: "A VM by name or id, with its configuration and state",
    operation: "vm.config.read",
    target: "vm",
    params: VmParam,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "updateVm",
    method: "PATCH",
    path: "/vms/:vm",
    summary: "Change memory, processors, boot settings, automatic actions (If-Match)",
    operation: "vm.config.reconfigure",
    target: "vm",
    params: VmParam,
    body: S.VmPatch,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "deleteVm",
    method: "DELETE",
    path: "/vms/:vm",
    summary: "Delete an Off VM: its directory goes; its disks only with deleteDisks=true (a job)",
    operation: "vm.delete",
    target: "vm",
    params: VmParam,
    query: DeleteQuery,
    status: 202,
    response: S.JobAccepted,
    etag: true,
  },
  {
    id: "startVm",
    method: "POST",
    path: "/vms/:vm/start",
    summary: "Start a VM (a job: done when its worker runs the guest)",
    operation: "vm.start",
    target: "vm",
    params: VmParam,
    status: 202,
    response: S.JobAccepted,
  },
  {
    id: "stopVm",
    method: "POST",
    path: "/vms/:vm/stop",
    summary: "Shut a VM down through the guest, or turn it off (a job)",
    operation: "vm.stop",
    target: "vm",
    params: VmParam,
    body: S.StopRequest,
    status: 202,
    response: S.JobAccepted,
  },
  {
    id: "pauseVm",
    method: "POST",
    path: "/vms/:vm/pause",
    summary: "Pause a running VM",
    operation: "vm.pause",
    target: "vm",
    params: VmParam,
    status: 200,
    response: S.Vm,
  },
  {
    id: "resumeVm",
    method: "POST",
    path: "/vms/:vm/resume",
    summary: "Resume a paused VM",
    operation: "vm.pause",
    target: "vm",
    params: VmParam,
    status: 200,
    response: S.Vm,
  },
  {
    id: "changeVmScope",
    method: "PUT",
    path: "/vms/:vm/scope",
    summary: "Move a VM to another scope (vm.scope.change on both scopes)",
    operation: "vm.scope.change",
    target: "vm",
    params: VmParam,
    body: S.ScopeChange,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "addDisk",
    method: "POST",
    path: "/vms/:vm/disks",
    summary: "Attach a disk, creating its image first when asked (a job); while the VM runs it is hot added",
    operation: "vm.hardware.add",
    target: "vm",
    params: VmParam,
    body: S.DiskAdd,
    status: 202,
    response: S.JobAccepted,
    etag: true,
  },
  {
    id: "changeDiskPath",
    method: "PUT",
    path: "/vms/:vm/disks/:index",
    summary: "Point a disk slot at another image",
    operation: "vm.media.change",
    target: "vm",
    params: DiskParam,
    body: S.DiskPathChange,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "removeDisk",
    method: "DELETE",
    path: "/vms/:vm/disks/:index",
    summary: "Detach a disk (its image stays); while the VM runs it is hot removed",
    operation: "vm.hardware.remove",
    target: "vm",
    params: DiskParam,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "setDvd",
    method: "PUT",
    path: "/vms/:vm/dvd",
    summary: "Insert or swap the DVD's ISO",
    operation: "vm.media.change",
    target: "vm",
    params: VmParam,
    body: S.DvdSet,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "ejectDvd",
    method: "DELETE",
    path: "/vms/:vm/dvd",
    summary: "Eject the DVD",
    operation: "vm.media.change",
    target: "vm",
    params: VmParam,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "addNic",
    method: "POST",
    path: "/vms/:vm/nics",
    summary: "Add a NIC on a switch (the VM is Off); the MAC is generated unless given",
    operation: "vm.hardware.add",
    alsoRequires: "switch.connect",
    target: "vm",
    params: VmParam,
    body: S.NicAdd,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "removeNic",
    method: "DELETE",
    path: "/vms/:vm/nics/:index",
    summary: "Remove a NIC (the VM is Off); the NICs after it move up",
    operation: "vm.hardware.remove",
    target: "vm",
    params: NicParam,
    status: 200,
    response: S.Vm,
    etag: true,
  },
  {
    id: "vmConsole",
    method: "GET",
    path: "/vms/:vm/console",
    summary:
      "The VM's serial console (WebSocket, binary frames; input needs vm.console.input, output vm.console.output)",
    operation: "vm.console.output",
    alsoAccepts: "vm.console.input",
    target: "vm",
    params: VmParam,
    status: 200,
    response: null,
    websocket: true,
  },
  {
    id: "vmMetrics",
    method: "GET",
    path: "/vms/:vm/metrics",
    summary:
      "The VM's live figures (WebSocket, a JSON VmMetricsSample text frame about once a second: guest instructions, host CPU time, disk and network bytes, heartbeat, guest KVP items)",
    operation: "vm.config.read",
    target: "vm",
    params: VmParam,
    status: 200,
    response: null,
    websocket: true,
  },
  // Switches
  {
    id: "listSwitches",
    method: "GET",
    path: "/switches",
    summary: "The service's virtual switches",
    operation: "switch.read",
    target: "host",
    status: 200,
    response: List(S.Switch),
  },
  {
    id: "createSwitch",
    method: "POST",
    path: "/switches",
    summary: "Create a switch (private, or NAT with host forwards; optionally a TAP port) and start it",
    operation: "switch.create",
    target: "host",
    body: S.SwitchCreate,
    status: 201,
    response: S.Switch,
  },
  {
    id: "getSwitch",
    method: "GET",
    path: "/switches/:name",
    summary: "A switch: its state, ports and the VMs with a NIC on it",
    operation: "switch.read",
    target: "host",
    params: NameParam,
    status: 200,
    response: S.Switch,
  },
  {
    id: "deleteSwitch",
    method: "DELETE",
    path: "/switches/:name",
    summary: "Stop and delete a switch (409 in-use while a running VM is connected)",
    operation: "switch.delete",
    target: "host",
    params: NameParam,
    status: 204,
    response: null,
  },
  // Jobs and events
  {
    id: "listJobs",
    method: "GET",
    path: "/jobs",
    summary: "Jobs the caller may see (kept a while after they finish)",
    operation: "vm.config.read",
    target: "filter",
    status: 200,
    response: List(S.Job),
  },
  {
    id: "getJob",
    method: "GET",
    path: "/jobs/:id",
    summary: "A job",
    operation: "vm.config.read",
    target: "job",
    params: IdParam,
    status: 200,
    response: S.Job,
  },
  {
    id: "waitJob",
    method: "GET",
    path: "/jobs/:id/wait",
    summary: "Wait until a job finishes or the timeout passes; answers the job",
    operation: "vm.config.read",
    target: "job",
    params: IdParam,
    query: WaitQuery,
    status: 200,
    response: S.Job,
  },
  {
    id: "cancelJob",
    method: "DELETE",
    path: "/jobs/:id",
    summary: "Cancel a job (needs the job's own operation)",
    operation: "vm.config.read",
    target: "job",
    params: IdParam,
    status: 200,
    response: S.Job,
  },
  {
    id: "events",
    method: "GET",
    path: "/events",
    summary: "Lifecycle, job and audit events the caller may see (WebSocket, JSON text frames)",
    operation: "vm.config.read",
    target: "filter",
    status: 200,
    response: null,
    websocket: true,
  },
  // Authorization store
  {
    id: "whoAmI",
    method: "GET",
    path: "/whoami",
    summary: "The caller's principal, groups and rights",
    operation: null,
    target: "self",
    status: 200,
    response: S.WhoAmI,
  },
  {
    id: "listPrincipals",
    method: "GET",
    path: "/principals",
    summary: "Users and groups",
    operation: "auth.admin",
    target: "host",
    status: 200,
    response: List(S.Principal),
  },
  {
    id: "createPrincipal",
    method: "POST",
    path: "/principals",
    summary: "Create a user or a group",
    operation: "auth.admin",
    target: "host",
    body: S.PrincipalCreate,
    status: 201,
    response: S.Principal,
  },
  {
    id: "deletePrincipal",
    method: "DELETE",
    path: "/principals/:name",
    summary: "Delete a user (its tokens and assignments go) or a group",
    operation: "auth.admin",
    target: "host",
    params: NameParam,
    status: 204,
    response: null,
  },
  {
    id: "addGroupMember",
    method: "PUT",
    path: "/principals/:name/members/:user",
    summary: "Add a user to a group",
    operation: "auth.admin",
    target: "host",
    params: MemberParam,
    status: 200,
    response: S.Principal,
  },
  {
    id: "removeGroupMember",
    method: "DELETE",
    path: "/principals/:name/members/:user",
    summary: "Remove a user from a group",
    operation: "auth.admin",
    target: "host",
    params: MemberParam,
    status: 200,
    response: S.Principal,
  },
  {
    id: "listTokens",
    method: "GET",
    path: "/tokens",
    summary: "Tokens (never their secrets)",
    operation: "auth.admin",
    target: "host",
    status: 200,
    response: List(S.Token),
  },
  {
    id: "createToken",
    method: "POST",
    path: "/tokens",
    summary: "Create a bearer token for a user; the secret is in this answer only",
    operation: "auth.admin",
    target: "host",
    body: S.TokenCreate,
    status: 201,
    response: S.TokenCreated,
  },
  {
    id: "revokeToken",
    method: "DELETE",
    path: "/tokens/:id",
    summary: "Revoke a token (effective at once)",
    operation: "auth.admin",
    target: "host",
    params: IdParam,
    status: 204,
    response: null,
  },
  {
    id: "listRoles",
    method: "GET",
    path: "/roles",
    summary: "Roles and their operations",
    operation: "auth.admin",
    target: "host",
    status: 200,
    response: List(S.Role),
  },
  {
    id: "createRole",
    method: "POST",
    path: "/roles",
    summary: "Create a role from operations (ids or AzMan names)",
    operation: "auth.admin",
    target: "host",
    body: S.RoleCreate,
    status: 201,
    response: S.Role,
  },
  {
    id: "deleteRole",
    method: "DELETE",
    path: "/roles/:name",
    summary: "Delete a custom role that no assignment uses",
    operation: "auth.admin",
    target: "host",
    params: NameParam,
    status: 204,
    response: null,
  },
  {
    id: "listScopes",
    method: "GET",
    path: "/scopes",
    summary: "Scopes (named groups of VMs)",
    operation: "auth.admin",
    target: "host",
    status: 200,
    response: List(S.Scope),
  },
  {
    id: "createScope",
    method: "POST",
    path: "/scopes",
    summary: "Create a scope",
    operation: "auth.admin",
    target: "host",
    body: S.ScopeCreate,
    status: 201,
    response: S.Scope,
  },
  {
    id: "deleteScope",
    method: "DELETE",
    path: "/scopes/:name",
    summary: "Delete an empty scope",
    operation: "auth.admin",
    target: "host",
    params: NameParam,
    status: 204,
    response: null,
  },
  {
    id: "listAssignments",
    method: "GET",
    path: "/assignments",
    summary: "Role assignments (principal, role, scope)",
    operation: "auth.admin",
    target: "host",
    status: 200,
    response: List(S.Assignment),
  },
  {
    id: "createAssignment",
    method: "POST",
    path: "/assignments",
    summary: "Assign a role to a principal on a scope (or `host`)",
    operation: "auth.admin",
    target: "host",
    body: S.AssignmentCreate,
    status: 201,
    response: S.Assignment,
  },
  {
    id: "deleteAssignment",
    method: "DELETE",
    path: "/assignments/:id",
    summary: "Remove an assignment",
    operation: "auth.admin",
    target: "host",
    params: IdParam,
    status: 204,
    response: null,
  },
  {
    id: "readAudit",
    method: "GET",
    path: "/audit",
    summary: "Audit log entries (every authorization decision)",
    operation: "auth.admin",
    target: "host",
    query: AuditQuery,
    status: 200,
    response: List(S.AuditEntry),
  },
  // Service
  {
    id: "getServiceConfig",
    method: "GET",
    path: "/service/config",
    summary: "The service's configuration",
    operation: "service.config.read",
    target: "host",
    status: 200,
    response: S.ServiceConfig,
  },
  {
    id: "updateServiceConfig",
    method: "PATCH",
    path: "/service/config",
    summary: "Change the service's configuration",
    operation: "service.config.write",
    target: "host",
    body: S.ServiceConfigPatch,
    status: 200,
    response: S.ServiceConfig,
  },
  {
    id: "metrics",
    method: "GET",
    path: "/metrics",
    summary: "Prometheus text exposition: VMs, jobs, requests",
    operation: "service.config.read",
    target: "host",
    status: 200,
    response: Type.String(),
    root: true,
  },
  {
    id: "openApi",
    method: "GET",
    path: "/openapi.json",
    summary: "This API's OpenAPI 3.1 document",
    operation: null,
    target: "self",
    status: 200,
    response: null,
  },
];

for (const r of ROUTES) if (r.query === undefined && r.method === "GET") r.query = NoQuery;

export function routeById(id: string): RouteDef {
  const r = ROUTES.find((x) => x.id === id);
  if (!r) throw new Error(`no route ${id}`);
  return r;
}

/** The full path of a route with its parameters filled in (each URI-encoded). */
export function routePath(id: string, params: Record<string, string | number> = {}): string {
  const r = routeById(id);
  return (
    (r.root ? "" : API_PREFIX) +
    r.path.replace(/:([a-z]+)/g, (_m, name: string) => {
      const v = params[name];
      if (v === undefined) throw new Error(`route ${id}: missing parameter ${name}`);
      return encodeURIComponent(String(v));
    })
  );
}

/** OpenAPI's form of a path (`{param}`). */
export function openApiPath(r: RouteDef): string {
  return fullPath(r).replace(/:([a-z]+)/g, "{$1}");
}

/** The path the service registers (fastify syntax). */
export function fullPath(r: RouteDef): string {
  return (r.root ? "" : API_PREFIX) + r.path;
}

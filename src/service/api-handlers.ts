// Owns: what each route of src/api/routes.ts does once it has been authenticated, validated and authorized
// (app.ts guarantees all three): calls into the VM service, the job manager and the authorization store,
// sets ETag headers, answers 202 with the job's URL for long operations, and filters list answers to what
// the caller may see.
// Must not: check schemas or route-level rights again (app.ts did), or answer with data the route's response
// schema does not describe.
// Spec: docs/architecture.md "The management API".

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError } from "../api/errors.js";
import { HOST_SCOPE, OPERATION_IDS } from "../api/operations.js";
import { routePath } from "../api/routes.js";
import type {
  DiskAdd,
  Job,
  NicAdd,
  ServiceConfig,
  SwitchCreate,
  Vm,
  VmCreate,
  VmPatch,
} from "../api/schemas.js";
import type { ServiceParts } from "./service-parts.js";
import { renderMetrics, type RequestCounter } from "./metrics.js";

export interface HandlerContext extends ServiceParts {
  requests: RequestCounter;
  app: FastifyInstance;
}

type Handler = (req: FastifyRequest, reply: FastifyReply, ctx: HandlerContext) => Promise<unknown>;

const P = (req: FastifyRequest): Record<string, string> => req.params as Record<string, string>;
const Q = (req: FastifyRequest): Record<string, string | undefined> =>
  (req.query ?? {}) as Record<string, string | undefined>;
const ifMatch = (req: FastifyRequest): string | undefined => {
  const h = req.headers["if-match"];
  return typeof h === "string" ? h : undefined;
};

function withEtag(reply: FastifyReply, vm: Vm): Vm {
  if (vm.etag) void reply.header("etag", vm.etag);
  return vm;
}

function accepted(reply: FastifyReply, job: Job): { job: Job } {
  void reply.header("location", routePath("getJob", { id: job.id }));
  return { job };
}

function diskIndex(req: FastifyRequest): number {
  return Number(P(req).index);
}

export const handlers: Record<string, Handler> = {
  // ---- VMs ----
  async listVms(req, _reply, c) {
    const all = c.vms.list();
    const visible = all.filter((v) => c.authz.check(req.identity, "vm.config.read", v.scope).allowed);
    c.authz.record(req.identity, "vm.config.read", "list:vms", {
      allowed: true,
      reason: `${visible.length} of ${all.length} visible`,
    });
    return visible;
  },
  async createVm(req, reply, c) {
    const body = req.body as VmCreate;
    // NICs plug into host-level switches: creating a VM with NICs needs switch.connect too (as adding one does).
    for (const n of body.nics ?? []) {
      const d = c.authz.authorize(req.identity, "switch.connect", HOST_SCOPE, `switch:${n.switch}`);
      if (!d.allowed)
        throw new ApiError(
          "forbidden",
          `${req.identity.name} may not switch.connect on switch:${n.switch}: ${d.reason}`,
        );
    }
    const { vm } = await c.vms.create(body);
    void reply.header("location", routePath("getVm", { vm: vm.id }));
    return withEtag(reply, vm);
  },
  async getVm(req, reply, c) {
    return withEtag(reply, c.vms.view(req.vmId!));
  },
  async updateVm(req, reply, c) {
    return withEtag(reply, await c.vms.update(req.vmId!, ifMatch(req), req.body as VmPatch));
  },
  async deleteVm(req, reply, c) {
    const id = req.vmId!;
    const cur = c.vms.view(id);
    const im = ifMatch(req);
    if (im !== undefined && im !== cur.etag)
      throw new ApiError("precondition-failed", "the configuration changed");
    return accepted(reply, c.vms.delete(id, Q(req).deleteDisks === "true", req.identity.name));
  },
  async startVm(req, reply, c) {
    return accepted(reply, c.vms.start(req.vmId!, req.identity.name));
  },
  async stopVm(req, reply, c) {
    const body = (req.body ?? {}) as { turnOff?: boolean };
    return accepted(reply, c.vms.stop(req.vmId!, body.turnOff === true, req.identity.name));
  },
  async pauseVm(req, reply, c) {
    return withEtag(reply, await c.vms.pause(req.vmId!));
  },
  async resumeVm(req, reply, c) {
    return withEtag(reply, await c.vms.resume(req.vmId!));
  },
  async changeVmScope(req, reply, c) {
    const to = (req.body as { scope: string }).scope;
    // Moving needs the right on the destination too (checked and recorded here; the source was by app.ts).
    const d = c.authz.authorize(req.identity, "vm.scope.change", to, `scope:${to}`);
    if (!d.allowed)
      throw new ApiError("forbidden", `${req.identity.name} may not move VMs into scope ${to}: ${d.reason}`);
    return withEtag(reply, await c.vms.changeScope(req.vmId!, ifMatch(req), to));
  },
  async addDisk(req, reply, c) {
    return accepted(reply, c.vms.addDisk(req.vmId!, ifMatch(req), req.body as DiskAdd, req.identity.name));
  },
  async changeDiskPath(req, reply, c) {
    return withEtag(
      reply,
      await c.vms.changeDiskPath(
        req.vmId!,
        ifMatch(req),
        diskIndex(req),
        (req.body as { path: string }).path,
      ),
    );
  },
  async removeDisk(req, reply, c) {
    return withEtag(reply, await c.vms.removeDisk(req.vmId!, ifMatch(req), diskIndex(req)));
  },
  async addNic(req, reply, c) {
    return withEtag(reply, await c.vms.addNic(req.vmId!, ifMatch(req), req.body as NicAdd));
  },
  async removeNic(req, reply, c) {
    return withEtag(reply, await c.vms.removeNic(req.vmId!, ifMatch(req), diskIndex(req)));
  },
  async setDvd(req, reply, c) {
    return withEtag(reply, await c.vms.setDvd(req.vmId!, ifMatch(req), (req.body as { path: string }).path));
  },
  async ejectDvd(req, reply, c) {
    return withEtag(reply, await c.vms.setDvd(req.vmId!, ifMatch(req), null));
  },

  // ---- switches ----
  async listSwitches(_req, _reply, c) {
    return c.switches.list();
  },
  async createSwitch(req, reply, c) {
    const sw = await c.switches.create(req.body as SwitchCreate);
    void reply.header("location", routePath("getSwitch", { name: sw.name }));
    return sw;
  },
  async getSwitch(req, _reply, c) {
    return c.switches.view(P(req).name!);
  },
  async deleteSwitch(req, _reply, c) {
    await c.switches.delete(P(req).name!);
    return null;
  },

  // ---- jobs ----
  async listJobs(req, _reply, c) {
    const all = c.jobs.list();
    const visible = all.filter(
      (j) =>
        j.job.requestedBy === req.identity.name ||
        c.authz.check(req.identity, "vm.config.read", j.scope).allowed,
    );
    c.authz.record(req.identity, "vm.config.read", "list:jobs", {
      allowed: true,
      reason: `${visible.length} of ${all.length} visible`,
    });
    return visible.map((j) => j.job);
  },
  async getJob(req, _reply, c) {
    return c.jobs.get(P(req).id!).job;
  },
  async waitJob(req, _reply, c) {
    const t = Math.min(3600, Number(Q(req).timeout ?? "30"));
    return c.jobs.wait(P(req).id!, t * 1000);
  },
  async cancelJob(req, _reply, c) {
    return c.jobs.cancel(P(req).id!);
  },

  // ---- authorization store ----
  async whoAmI(req, _reply, c) {
    const rights: Record<string, string[]> = {};
    for (const [scope, ops] of c.auth.rightsOf(req.identity))
      rights[scope] = OPERATION_IDS.filter((o) => ops.has(o));
    return { principal: req.identity.name, groups: req.identity.groups, rights };
  },
  async listPrincipals(_req, _reply, c) {
    return c.auth.principals();
  },
  async createPrincipal(req, _reply, c) {
    const b = req.body as { name: string; kind: "user" | "group" };
    return c.auth.createPrincipal(b.name, b.kind);
  },
  async deletePrincipal(req, _reply, c) {
    c.auth.deletePrincipal(P(req).name!);
    return null;
  },
  async addGroupMember(req, _reply, c) {
    return c.auth.setMember(P(req).name!, P(req).user!, true);
  },
  async removeGroupMember(req, _reply, c) {
    return c.auth.setMember(P(req).name!, P(req).user!, false);
  },
  async listTokens(_req, _reply, c) {
    return c.auth.tokens();
  },
  async createToken(req, _reply, c) {
    const b = req.body as { user: string; name?: string };
    return c.auth.createToken(b.user, b.name ?? "");
  },
  async revokeToken(req, _reply, c) {
    c.auth.revokeToken(P(req).id!);
    return null;
  },
  async listRoles(_req, _reply, c) {
    return c.auth.roles();
  },
  async createRole(req, _reply, c) {
    const b = req.body as { name: string; description?: string; operations: string[] };
    return c.auth.createRole(b.name, b.description ?? "", b.operations);
  },
  async deleteRole(req, _reply, c) {
    c.auth.deleteRole(P(req).name!);
    return null;
  },
  async listScopes(_req, _reply, c) {
    return c.auth
      .scopeNames()
      .map((name) => ({ name, builtin: name === "default", vms: c.vms.countInScope(name) }));
  },
  async createScope(req, _reply, c) {
    const name = (req.body as { name: string }).name;
    c.auth.createScope(name);
    return { name, builtin: false, vms: 0 };
  },
  async deleteScope(req, _reply, c) {
    const name = P(req).name!;
    if (c.vms.countInScope(name) > 0) throw new ApiError("conflict", `scope '${name}' still holds VMs`);
    c.auth.deleteScope(name);
    return null;
  },
  async listAssignments(_req, _reply, c) {
    return c.auth.assignments();
  },
  async createAssignment(req, _reply, c) {
    const b = req.body as { principal: string; role: string; scope: string };
    return c.auth.createAssignment(b.principal, b.role, b.scope);
  },
  async deleteAssignment(req, _reply, c) {
    c.auth.deleteAssignment(P(req).id!);
    return null;
  },
  async readAudit(req, _reply, c) {
    const q = Q(req);
    const limit = Math.min(10000, Number(q.limit ?? "1000"));
    if (q.before !== undefined) return c.audit.readBefore(Number(q.before), Number(q.after ?? "0"), limit);
    return c.audit.read(Number(q.after ?? "0"), limit);
  },

  // ---- service ----
  async getServiceConfig(_req, _reply, c) {
    return c.config.get();
  },
  async updateServiceConfig(req, _reply, c) {
    const next = c.config.update(req.body as Partial<ServiceConfig>);
    c.jobs.setRetention(next.jobRetentionSeconds * 1000);
    return next;
  },
  async metrics(_req, reply, c) {
    // Sent here, not returned: the text must not go through the JSON serializer.
    const text = await renderMetrics(c.vms, c.jobs, c.requests);
    await reply.code(200).type("text/plain; version=0.0.4").send(text);
    return reply;
  },
  async openApi(_req, _reply, c) {
    return c.app.swagger();
  },
};

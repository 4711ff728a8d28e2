// Owns: the authorization model's one table: every operation (fine-grained, libvirt/Proxmox style) with its
// AzMan alias, where it applies (a scope of VMs or the host), and the built-in roles that bundle operations.
// The service's authorization checks, the route table (routes.ts), the CLI's `auth` verbs, the
// permission-matrix test and the docs' operation table are all read from here.
// Must not: decide anything (src/service/authorizer.ts does) or know principals and assignments.
// Spec: ../shared/research/anchors-management.md section 3 (AzMan operation names, Proxmox privileges,
// libvirt permissions); the operation list of issue 12.

/** Where an operation is checked: against the scope of the VM it targets, or against the host scope only. */
export type OperationLevel = "scope" | "host";

export interface OperationDef {
  id: string;
  /** The Hyper-V (AzMan) operation name, accepted wherever an operation id is. */
  alias: string;
  level: OperationLevel;
  description: string;
}

/** Every operation, in the order the docs and the CLI list them. */
export const OPERATIONS = [
  {
    id: "vm.create",
    alias: "Create Virtual Machine",
    level: "scope",
    description: "create a VM in the scope",
  },
  {
    id: "vm.delete",
    alias: "Delete Virtual Machine",
    level: "scope",
    description: "delete a VM (and its disks when asked)",
  },
  { id: "vm.start", alias: "Start Virtual Machine", level: "scope", description: "start a VM" },
  { id: "vm.stop", alias: "Stop Virtual Machine", level: "scope", description: "shut down or turn off a VM" },
  {
    id: "vm.pause",
    alias: "Pause and Restart Virtual Machine",
    level: "scope",
    description: "pause and resume a VM",
  },
  {
    id: "vm.config.read",
    alias: "View Virtual Machine Configuration",
    level: "scope",
    description: "see a VM, its configuration, state, jobs and events",
  },
  {
    id: "vm.config.reconfigure",
    alias: "Reconfigure Virtual Machine",
    level: "scope",
    description: "change memory, processors, boot settings and automatic actions",
  },
  {
    id: "vm.hardware.add",
    alias: "Add Hardware",
    level: "scope",
    description: "add a disk (creating its image when asked)",
  },
  { id: "vm.hardware.remove", alias: "Remove Hardware", level: "scope", description: "remove a disk" },
  {
    id: "vm.media.change",
    alias: "Change Drive Image",
    level: "scope",
    description: "insert, swap or eject the DVD's ISO; change a disk's image path",
  },
  {
    id: "vm.console.input",
    alias: "Allow Input to Virtual Machine",
    level: "scope",
    description: "type into the VM's console",
  },
  {
    id: "vm.console.output",
    alias: "Allow Output from Virtual Machine",
    level: "scope",
    description: "read the VM's console",
  },
  {
    id: "vm.scope.change",
    alias: "Change Virtual Machine Authorization Scope",
    level: "scope",
    description: "move a VM to another scope (needed on both)",
  },
  { id: "switch.read", alias: "View Switches", level: "host", description: "list virtual switches" },
  {
    id: "switch.create",
    alias: "Create Virtual Switch",
    level: "host",
    description: "create a virtual switch",
  },
  {
    id: "switch.delete",
    alias: "Delete Virtual Switch",
    level: "host",
    description: "delete a virtual switch",
  },
  {
    id: "switch.connect",
    alias: "Connect Virtual Switch Port",
    level: "host",
    description: "connect a VM's NIC to a switch",
  },
  {
    id: "service.config.read",
    alias: "Read Service Configuration",
    level: "host",
    description: "read the service's configuration and metrics",
  },
  {
    id: "service.config.write",
    alias: "Reconfigure Service",
    level: "host",
    description: "change the service's configuration",
  },
  {
    id: "auth.admin",
    alias: "Administer Authorization Store",
    level: "host",
    description: "manage principals, tokens, roles, scopes and assignments; read the audit log",
  },
] as const satisfies readonly OperationDef[];

export type OperationId = (typeof OPERATIONS)[number]["id"];

export const OPERATION_IDS: readonly OperationId[] = OPERATIONS.map((o) => o.id);

const byName = new Map<string, OperationId>();
for (const o of OPERATIONS) {
  byName.set(o.id, o.id);
  byName.set(o.alias.toLowerCase(), o.id);
}

/** An operation id from its id or its AzMan alias (case-insensitive); undefined when neither. */
export function resolveOperation(name: string): OperationId | undefined {
  return byName.get(name) ?? byName.get(name.toLowerCase());
}

export function operationDef(id: OperationId): OperationDef {
  return OPERATIONS.find((o) => o.id === id)!;
}

const vmOps = OPERATION_IDS.filter((id) => id.startsWith("vm."));

/** The built-in roles; they cannot be changed or deleted. */
export const BUILTIN_ROLES: ReadonlyArray<{
  name: string;
  description: string;
  operations: readonly OperationId[];
}> = [
  { name: "Administrator", description: "every operation", operations: OPERATION_IDS },
  {
    name: "VM Administrator",
    description: "everything on the VMs of a scope; not the service configuration or the authorization store",
    operations: [...vmOps, "switch.read", "switch.connect"],
  },
  {
    name: "VM Operator",
    description: "start, stop, pause and use the console of the VMs of a scope",
    operations: [
      "vm.config.read",
      "vm.start",
      "vm.stop",
      "vm.pause",
      "vm.console.input",
      "vm.console.output",
    ],
  },
  {
    name: "Viewer",
    description: "read-only",
    operations: ["vm.config.read", "switch.read", "service.config.read"],
  },
];

/** The scope every VM is in unless put elsewhere; it always exists. */
export const DEFAULT_SCOPE = "default";
/** The pseudo-scope of host-level assignments: a role assigned there applies to every scope and to the host. */
export const HOST_SCOPE = "host";

// Owns: the JSON schemas (TypeBox) of everything the API reads and writes: the VM configuration file, the
// resources (VMs, jobs, principals, tokens, roles, scopes, assignments, audit entries, events) and the request
// bodies. The same objects validate requests in the service, type the CLI's requests, validate every VM file
// the service reads, and become the OpenAPI document: one schema set, many consumers.
// Must not: hold behaviour beyond tiny pure helpers, or import anything of the service or the CLI.
// Spec: JSON Schema 2020-12 (OpenAPI 3.1's dialect); docs/architecture.md "The management API".

import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { ERROR_STATUS, type ErrorCode } from "./errors.js";
import { OPERATION_IDS } from "./operations.js";

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** VM, scope, role and principal names: no path separators, no dots first, so a name is never a path. */
export const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";
export const Name = Type.String({
  pattern: NAME_PATTERN,
  description: "1-63 characters: letters, digits, _ . - (not first)",
});
/** Scope names: lower case; `host` is the host-level pseudo-scope. */
export const ScopeName = Type.String({ pattern: "^[a-z0-9][a-z0-9_-]{0,62}$" });
/** A role name: built-in ones have spaces ("VM Operator"). */
export const RoleName = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$" });
/** An absolute host file path (checked against the service's allowed roots on use). */
export const FilePath = Type.String({ minLength: 1, maxLength: 4096, pattern: "^/[^\\u0000]*$" });
export const Uuid = Type.String({
  pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
});
export const Timestamp = Type.String({ description: "ISO 8601 UTC" });

export const MIN_MEMORY_BYTES = 2 * 1024 * 1024;
export const MAX_MEMORY_BYTES = 16 * 1024 ** 3;

const MemoryBytes = Type.Integer({ minimum: MIN_MEMORY_BYTES, maximum: MAX_MEMORY_BYTES, multipleOf: 4096 });
const Processors = Type.Integer({ minimum: 1, maximum: 64 });
const Cmdline = Nullable(Type.String({ maxLength: 4095 }));
const RtcOffset = Type.Integer({ minimum: -100 * 366 * 86400, maximum: 100 * 366 * 86400 });
const PaceMips = Nullable(Type.Number({ minimum: 0.1, maximum: 100000 }));

export const DiskConfig = Type.Object(
  { path: FilePath, readOnly: Type.Boolean() },
  { additionalProperties: false },
);

/** A virtual switch's name (the switch's directory and sockets are named after it). */
export const SWITCH_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$";
export const SwitchName = Type.String({
  pattern: SWITCH_NAME_PATTERN,
  description: "1-32 characters: letters, digits, _ . - (not first)",
});
/** A unicast MAC address in lower case (the first octet's group bit clear). */
export const MacAddress = Type.String({
  pattern: "^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$",
  description: "aa:bb:cc:dd:ee:ff, lower case, unicast",
});

/**
 * A synthetic NIC in a VM's file. What it is plugged into is one key: `switch` (a switch the service
 * manages, by name). Other attachments (a private user-mode NAT, `{ user: { hostForwards } }`) will be
 * further members of a union keyed the same way, so a file never needs a `kind` field.
 */
export const NicConfig = Type.Object(
  { mac: MacAddress, switch: SwitchName },
  { additionalProperties: false },
);
export type NicConfig = Static<typeof NicConfig>;
export const MAX_NICS = 8;

/** What the worker builds: the worker tier's `VmConfig`, field for field (a test holds them equal). */
export const MachineConfig = Type.Object(
  {
    memoryBytes: MemoryBytes,
    processors: Processors,
    boot: Type.Object(
      {
        kernel: Nullable(FilePath),
        initrd: Nullable(FilePath),
        cmdline: Cmdline,
      },
      { additionalProperties: false },
    ),
    disks: Type.Array(DiskConfig, { maxItems: 8 }),
    dvd: Nullable(FilePath),
    nics: Type.Array(NicConfig, { maxItems: MAX_NICS }),
    time: Type.Object({ source: Type.Literal("host"), paceMips: PaceMips }, { additionalProperties: false }),
    rtcOffsetSeconds: RtcOffset,
  },
  { additionalProperties: false },
);
export type MachineConfig = Static<typeof MachineConfig>;

export const AutomaticStartAction = Type.Union([
  Type.Literal("nothing"),
  Type.Literal("start"),
  Type.Literal("start-if-running"),
]);
export const AutomaticStopAction = Type.Union([
  Type.Literal("shutdown"),
  Type.Literal("turn-off"),
  Type.Literal("leave-running"),
]);

/** The schema version this build writes; older files are migrated on read (src/service/vm-store.ts). */
export const VM_FILE_VERSION = 2;

/** A VM's configuration file (`<data>/vms/<id>/config.json`), validated on every read. */
export const VmFile = Type.Object(
  {
    schemaVersion: Type.Literal(VM_FILE_VERSION),
    id: Uuid,
    name: Name,
    scope: ScopeName,
    created: Timestamp,
    machine: MachineConfig,
    automaticStartAction: AutomaticStartAction,
    automaticStopAction: AutomaticStopAction,
  },
  { additionalProperties: false },
);
export type VmFile = Static<typeof VmFile>;

/** Hyper-V's states (Msvm_ComputerSystem EnabledState, simplified) plus the two failure states. */
export const VmState = Type.Union(
  ["Off", "Starting", "Running", "Paused", "Stopping", "Critical", "InvalidConfiguration"].map((s) =>
    Type.Literal(s),
  ),
);
export type VmState =
  "Off" | "Starting" | "Running" | "Paused" | "Stopping" | "Critical" | "InvalidConfiguration";

export const Vm = Type.Object({
  id: Uuid,
  name: Type.String(),
  scope: Type.String(),
  state: VmState,
  /** Why the VM is in its state, when that is not obvious (a worker's exit, a parse error). */
  reason: Nullable(Type.String()),
  /** The configuration; null when the file cannot be read (state InvalidConfiguration). */
  config: Nullable(VmFile),
  /** The configuration file's version, for If-Match. */
  etag: Nullable(Type.String()),
  /**
   * The running worker: its pid, when it started (the VM's uptime counts from here), and the guest's heartbeat
   * (the heartbeat integration service: no-contact until the guest's driver answers, ok while it answers, lost
   * when it stops answering; null from a worker that does not report it). Changes come as `health` events.
   */
  worker: Nullable(
    Type.Object({
      pid: Type.Integer(),
      started: Timestamp,
      heartbeat: Nullable(Type.Union([Type.Literal("no-contact"), Type.Literal("ok"), Type.Literal("lost")])),
    }),
  ),
});
export type Vm = Static<typeof Vm>;

/** A NIC to add: the MAC is generated (locally administered, unique in the VM) when absent. */
export const NicAdd = Type.Object(
  { mac: Type.Optional(MacAddress), switch: SwitchName },
  { additionalProperties: false },
);
export type NicAdd = Static<typeof NicAdd>;

/** The largest image the API creates (64 TiB, VHDX's limit). */
export const MAX_IMAGE_BYTES = 64 * 1024 ** 4;
const ImageSize = Type.Integer({ minimum: 1024 * 1024, maximum: MAX_IMAGE_BYTES });

/**
 * A disk of a VM being created: an existing image, or one made first: with `sizeBytes` a new dynamic image
 * (the format follows the extension: .vhdx, .vhd, else raw), with `parent` a differencing child of that
 * image (.vhdx or .vhd).
 */
export const VmCreateDisk = Type.Object(
  {
    path: FilePath,
    readOnly: Type.Optional(Type.Boolean()),
    sizeBytes: Type.Optional(ImageSize),
    parent: Type.Optional(FilePath),
  },
  { additionalProperties: false },
);
export type VmCreateDisk = Static<typeof VmCreateDisk>;

export const VmCreate = Type.Object(
  {
    name: Name,
    scope: Type.Optional(ScopeName),
    memoryBytes: Type.Optional(MemoryBytes),
    processors: Type.Optional(Processors),
    kernel: Type.Optional(Nullable(FilePath)),
    initrd: Type.Optional(Nullable(FilePath)),
    cmdline: Type.Optional(Cmdline),
    paceMips: Type.Optional(PaceMips),
    rtcOffsetSeconds: Type.Optional(RtcOffset),
    automaticStartAction: Type.Optional(AutomaticStartAction),
    automaticStopAction: Type.Optional(AutomaticStopAction),
    /** NICs, in order (eth0, eth1, ...); each needs switch.connect too. */
    nics: Type.Optional(Type.Array(NicAdd, { maxItems: MAX_NICS })),
    /** Disks, in order (LUN 0, 1, ...); new images are created before the VM is, and removed if it is not. */
    disks: Type.Optional(Type.Array(VmCreateDisk, { maxItems: 8 })),
    /** An ISO in the DVD drive. */
    dvd: Type.Optional(Nullable(FilePath)),
  },
  { additionalProperties: false },
);
export type VmCreate = Static<typeof VmCreate>;

export const VmPatch = Type.Object(
  {
    memoryBytes: Type.Optional(MemoryBytes),
    processors: Type.Optional(Processors),
    kernel: Type.Optional(Nullable(FilePath)),
    initrd: Type.Optional(Nullable(FilePath)),
    cmdline: Type.Optional(Cmdline),
    paceMips: Type.Optional(PaceMips),
    rtcOffsetSeconds: Type.Optional(RtcOffset),
    automaticStartAction: Type.Optional(AutomaticStartAction),
    automaticStopAction: Type.Optional(AutomaticStopAction),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type VmPatch = Static<typeof VmPatch>;

export const DiskAdd = Type.Object(
  {
    path: FilePath,
    readOnly: Type.Optional(Type.Boolean()),
    /** Create the image first (a job): its size and kind; the format follows the extension (.vhdx, .vhd, else raw). */
    create: Type.Optional(
      Type.Object(
        {
          sizeBytes: ImageSize,
          type: Type.Optional(Type.Union([Type.Literal("dynamic"), Type.Literal("fixed")])),
        },
        { additionalProperties: false },
      ),
    ),
    /** Create the image first as a differencing child of this one (.vhdx or .vhd; a job). */
    parent: Type.Optional(FilePath),
  },
  { additionalProperties: false },
);
export type DiskAdd = Static<typeof DiskAdd>;

export const SwitchKind = Type.Union([Type.Literal("private"), Type.Literal("nat")]);
/** A host forward of a NAT switch, as `viridian switch --hostfwd` takes it. */
export const HostForwardText = Type.String({
  pattern: "^(tcp|udp):[0-9.]{7,15}:[0-9]{1,5}-:[0-9]{1,5}$",
  description: "tcp|udp:HOSTADDR:HOSTPORT-:GUESTPORT, e.g. tcp:127.0.0.1:2222-:22",
});

/** A switch in the service's inventory (`<data>/switches.json`); its process keeps it running. */
export const SwitchCreate = Type.Object(
  {
    name: SwitchName,
    kind: Type.Optional(SwitchKind),
    /** NAT switches only: host ports forwarded to guests. */
    hostForwards: Type.Optional(Type.Array(HostForwardText, { maxItems: 32 })),
    /** An existing TAP device to add as a port (through vde_plug). */
    tap: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9_.-]{1,15}$" })),
  },
  { additionalProperties: false },
);
export type SwitchCreate = Static<typeof SwitchCreate>;

export const SwitchPortInfo = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  kind: Type.String(),
  rxFrames: Type.Integer(),
  txFrames: Type.Integer(),
  rxDropped: Type.Integer(),
  txDropped: Type.Integer(),
});

export const Switch = Type.Object({
  name: Type.String(),
  kind: SwitchKind,
  hostForwards: Type.Array(Type.String()),
  tap: Nullable(Type.String()),
  /** running: its process answers; stopped: it does not (the reason says why). */
  state: Type.Union([Type.Literal("running"), Type.Literal("stopped")]),
  reason: Nullable(Type.String()),
  pid: Nullable(Type.Integer()),
  ports: Type.Array(SwitchPortInfo),
  /** The VMs whose configuration has a NIC on this switch, and whether each runs. */
  vms: Type.Array(Type.Object({ id: Uuid, name: Type.String(), running: Type.Boolean() })),
  created: Timestamp,
});
export type Switch = Static<typeof Switch>;

export const DiskPathChange = Type.Object({ path: FilePath }, { additionalProperties: false });
export const DvdSet = Type.Object({ path: FilePath }, { additionalProperties: false });
export const StopRequest = Type.Object(
  { turnOff: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export const ScopeChange = Type.Object({ scope: ScopeName }, { additionalProperties: false });

export const JobState = Type.Union(
  ["queued", "running", "completed", "failed", "cancelled"].map((s) => Type.Literal(s)),
);
export type JobState = "queued" | "running" | "completed" | "failed" | "cancelled";

export const ErrorInfo = Type.Object({
  code: Type.Union(Object.keys(ERROR_STATUS).map((c) => Type.Literal(c))),
  message: Type.String(),
});

export const Job = Type.Object({
  id: Uuid,
  type: Type.String({ description: "vm.start, vm.stop, vm.delete, disk.create, ..." }),
  vm: Nullable(Type.Object({ id: Uuid, name: Type.String() })),
  state: JobState,
  percentComplete: Type.Integer({ minimum: 0, maximum: 100 }),
  cancellable: Type.Boolean(),
  created: Timestamp,
  finished: Nullable(Timestamp),
  result: Nullable(Type.Unknown()),
  error: Nullable(ErrorInfo),
  requestedBy: Type.String(),
});
export type Job = Omit<Static<typeof Job>, "error" | "state"> & {
  state: JobState;
  error: { code: ErrorCode; message: string } | null;
};

export const JobAccepted = Type.Object({ job: Job });

export const PrincipalKind = Type.Union([Type.Literal("user"), Type.Literal("group")]);
export const Principal = Type.Object({
  name: Type.String(),
  kind: PrincipalKind,
  /** Groups: their members (user names); users: the groups they belong to. */
  members: Type.Array(Type.String()),
  created: Timestamp,
});
export type Principal = Static<typeof Principal>;
export const PrincipalCreate = Type.Object(
  { name: Name, kind: PrincipalKind },
  { additionalProperties: false },
);

export const Token = Type.Object({
  id: Type.String(),
  user: Type.String(),
  name: Type.String(),
  created: Timestamp,
});
export type Token = Static<typeof Token>;
export const TokenCreate = Type.Object(
  { user: Name, name: Type.Optional(Type.String({ maxLength: 100 })) },
  { additionalProperties: false },
);
/** The secret is shown once, at creation; the service keeps only a salted hash. */
export const TokenCreated = Type.Object({ token: Token, secret: Type.String() });

export const OperationName = Type.Union(OPERATION_IDS.map((o) => Type.Literal(o)));
export const Role = Type.Object({
  name: Type.String(),
  builtin: Type.Boolean(),
  description: Type.String(),
  operations: Type.Array(Type.String()),
});
export type Role = Static<typeof Role>;
export const RoleCreate = Type.Object(
  {
    name: RoleName,
    description: Type.Optional(Type.String({ maxLength: 200 })),
    /** Operation ids or their AzMan aliases. */
    operations: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 64 }),
  },
  { additionalProperties: false },
);

export const Scope = Type.Object({ name: Type.String(), builtin: Type.Boolean(), vms: Type.Integer() });
export type Scope = Static<typeof Scope>;
export const ScopeCreate = Type.Object({ name: ScopeName }, { additionalProperties: false });

export const Assignment = Type.Object({
  id: Type.String(),
  principal: Type.String(),
  role: Type.String(),
  /** A scope name, or `host` for every scope and the host-level operations. */
  scope: Type.String(),
});
export type Assignment = Static<typeof Assignment>;
export const AssignmentCreate = Type.Object(
  { principal: Name, role: RoleName, scope: ScopeName },
  { additionalProperties: false },
);

export const AuditEntry = Type.Object({
  seq: Type.Integer(),
  time: Timestamp,
  principal: Type.String(),
  operation: Type.String(),
  target: Type.String(),
  result: Type.Union([Type.Literal("allow"), Type.Literal("deny")]),
  reason: Nullable(Type.String()),
});
export type AuditEntry = Static<typeof AuditEntry>;

export const WhoAmI = Type.Object({
  principal: Type.String(),
  groups: Type.Array(Type.String()),
  /** Operation ids the principal holds, per scope (`host` for host-level assignments). */
  rights: Type.Record(Type.String(), Type.Array(Type.String())),
});

export const ServiceConfig = Type.Object(
  {
    /** Directories under which disk images, ISOs, kernels and initrds may be named (the data directory's `images` always is). */
    imageRoots: Type.Array(FilePath, { maxItems: 32 }),
    /** Requests per principal per window (HTTP 429 past it). */
    rateLimit: Type.Object(
      {
        max: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
        windowSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
      },
      { additionalProperties: false },
    ),
    /** How long finished jobs stay listed. */
    jobRetentionSeconds: Type.Integer({ minimum: 1, maximum: 7 * 86400 }),
    /** How long a graceful stop waits for the guest before the job fails (the VM keeps running). */
    stopTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
  },
  { additionalProperties: false },
);
export type ServiceConfig = Static<typeof ServiceConfig>;
export const ServiceConfigPatch = Type.Partial(ServiceConfig, {
  additionalProperties: false,
  minProperties: 1,
});

export const ErrorBody = Type.Object({ error: ErrorInfo });

/** What the events WebSocket sends, one JSON object per message. */
export const Event = Type.Object({
  type: Type.Union([
    Type.Literal("lifecycle"),
    Type.Literal("job"),
    Type.Literal("audit"),
    Type.Literal("health"),
  ]),
  time: Timestamp,
  /**
   * lifecycle: { vm, name, state, reason }; job: the Job; audit: the AuditEntry; health: { vm, name,
   * heartbeat } when a running guest's heartbeat changes (as in the VM's `worker.heartbeat`).
   */
  data: Type.Unknown(),
});
export type EventMessage = { type: "lifecycle" | "job" | "audit" | "health"; time: string; data: unknown };

/**
 * One message of a VM's metrics WebSocket (`GET /v1/vms/:vm/metrics`), sent about once a second: the worker's
 * counters as they stand (clients derive rates from consecutive samples), or null while the VM has no worker
 * or its worker did not answer in time.
 */
export const VmMetricsSample = Type.Object({
  time: Timestamp,
  state: VmState,
  counters: Nullable(
    Type.Object({
      /** Guest instructions retired since the worker started. */
      instructionsRetired: Type.Number(),
      /** Host CPU time of the worker process (user + system), seconds. */
      cpuSeconds: Type.Number(),
      rssBytes: Type.Number(),
      diskReadBytes: Type.Number(),
      diskWriteBytes: Type.Number(),
      netRxBytes: Type.Number(),
      netTxBytes: Type.Number(),
    }),
  ),
  /** The heartbeat integration service: ok while the guest answers; null without a worker. */
  heartbeat: Nullable(Type.Union([Type.Literal("no-contact"), Type.Literal("ok"), Type.Literal("lost")])),
  /** The guest's intrinsic KVP items (FullyQualifiedDomainName, OSName, NetworkAddressIPv4, ...). */
  kvp: Type.Record(Type.String(), Type.String()),
});
export type VmMetricsSample = Static<typeof VmMetricsSample>;

/** A JSON body of `{}`: the shape of requests that carry nothing. */
export const Empty = Type.Object({}, { additionalProperties: false });

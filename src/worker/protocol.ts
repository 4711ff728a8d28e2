// Owns: the message protocol between the service and a VM's worker process, types only, plus its framing
// rule: one JSON object per line (UTF-8, `\n`-terminated, at most MAX_FRAME bytes) on the worker's UNIX
// socket. The service sends requests with an `id`; the worker answers each with the same `id`, in any
// order, and sends notifications (no `id`) for console output, state changes and the guest's heartbeat. The one request in the
// other direction: `medium-read` (the worker asks for bytes of a DVD medium the service opened for it, see
// src/worker/remote-medium.ts), answered by `medium-data` with the same `rid`.
// Must not: contain behaviour, or change a message's meaning without bumping PROTOCOL_VERSION (a restarted
// service may meet a worker started by an older one; `hello` tells them apart).
// Spec: docs/architecture.md "Worker processes and their protocol".
//
// The rule: a worker obeys exactly one supervisor connection at a time (a newer connection replaces the old
// one, which is how a restarted service reattaches); it never exits while the guest runs unless told to turn
// off, and it exits after sending `stopped` once the guest is off.

export const PROTOCOL_VERSION = 3;
/** A frame longer than this is a protocol error (console data is sent in chunks well below it). */
export const MAX_FRAME = 1024 * 1024;

export type WorkerRunState = "built" | "running" | "paused" | "stopped";

/** The heartbeat integration service's view of the guest (src/vsp/ic/heartbeat.ts). */
export type GuestHeartbeat = "no-contact" | "ok" | "lost";

export type WorkerRequest =
  | { id: number; type: "hello"; protocol: number }
  /** Start running the guest (the worker builds the VM before it listens). */
  | { id: number; type: "run" }
  | { id: number; type: "pause" }
  | { id: number; type: "resume" }
  /** Graceful: ask the guest to shut down through the shutdown integration service. */
  | { id: number; type: "shutdown" }
  /** Stop at once (power off); the worker exits after answering `stopped`. */
  | { id: number; type: "turn-off" }
  | { id: number; type: "inspect" }
  | { id: number; type: "metrics" }
  /**
   * Swap (or eject, with null) the DVD's medium. The worker cannot open a new file (its permissions are fixed
   * when it starts): the service opened and checked the ISO, and answers the worker's `medium-read`s.
   */
  | { id: number; type: "set-dvd"; medium: MediumInfo | null }
  /**
   * Hot add: attach a disk the service opened (and serves through `disk-io`) on a free LUN of the SCSI
   * controller and tell the guest to rescan; it becomes the last of the VM's disks.
   */
  | { id: number; type: "add-disk"; disk: RemoteDiskInfo }
  /**
   * Hot remove: detach the VM's disk number `index` (configuration order), wait for its commands, flush and
   * close it (a file the worker opened is closed by the worker) and tell the guest to rescan.
   */
  | { id: number; type: "remove-disk"; index: number }
  /** Console input (base64 bytes). */
  | { id: number; type: "console-input"; data: string }
  /** Start sending console output notifications, beginning with the last `backlog` bytes kept. */
  | { id: number; type: "console-subscribe"; backlog: number };

/** The answer to the worker's `medium-read` `rid`: base64 bytes, or why not. */
export interface MediumData {
  type: "medium-data";
  rid: number;
  data: string | null;
  error: string | null;
}

/** The answer to the worker's `disk-io` `rid`: base64 bytes for a read, empty for the others, or why not. */
export interface DiskIoDone {
  type: "disk-io-done";
  rid: number;
  data: string | null;
  error: string | null;
}

/** Everything the service sends a worker. */
export type SupervisorMessage = WorkerRequest | MediumData | DiskIoDone;

/** A disk the service opened for the worker (hot added while the VM runs). */
export interface RemoteDiskInfo {
  path: string;
  capacity: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  readOnly: boolean;
  identity: string;
}

/** A DVD medium the service reads for the worker (an ISO 9660 image, 2048-byte sectors). */
export interface MediumInfo {
  path: string;
  capacity: number;
  identity: string;
}

export interface WorkerHello {
  protocol: number;
  pid: number;
  vmId: string;
  state: WorkerRunState;
  /** The DVD medium the service must read for the worker (one inserted while it ran), or null. */
  remoteMedium: MediumInfo | null;
  /** The disks the service must serve for the worker (hot added while it ran). */
  remoteDisks: RemoteDiskInfo[];
  /** The guest's heartbeat now (absent from a worker older than this field). */
  heartbeat?: GuestHeartbeat;
}

export interface WorkerMetrics {
  /** Guest instructions retired since the worker started. */
  instructionsRetired: number;
  /** Host CPU time of the worker process, in seconds (user + system). */
  cpuSeconds: number;
  /** Resident set size of the worker process in bytes. */
  rssBytes: number;
  guestMemoryBytes: number;
  /**
   * Data bytes the guest read and wrote through the SCSI controller, and Ethernet bytes its NICs sent and
   * received, since the worker started (0 without the device). Absent from a worker older than these fields.
   */
  diskReadBytes?: number;
  diskWriteBytes?: number;
  netRxBytes?: number;
  netTxBytes?: number;
  /** The heartbeat integration service's view of the guest, and the guest's intrinsic KVP items. */
  heartbeat?: GuestHeartbeat;
  kvp?: Record<string, string>;
}

export type WorkerResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } };

export type WorkerNotification =
  | { type: "console"; data: string }
  | { type: "state"; state: WorkerRunState; reason: string | null }
  /** The heartbeat integration service's view of the guest changed (also in `hello`'s answer). */
  | { type: "heartbeat"; health: GuestHeartbeat }
  /** Bytes [offset, offset + length) of the medium at `path`, which the service opened for the worker. */
  | { type: "medium-read"; rid: number; path: string; offset: number; length: number }
  /**
   * I/O on a hot-added disk the service serves: read `length` bytes at byte `offset`, write `data` (base64)
   * there, flush, or trim `length` bytes; answered by `disk-io-done` with the same `rid`.
   */
  | {
      type: "disk-io";
      rid: number;
      path: string;
      op: "read" | "write" | "flush" | "trim";
      offset: number;
      length: number;
      data: string | null;
    };

export type WorkerMessage = WorkerResponse | WorkerNotification;

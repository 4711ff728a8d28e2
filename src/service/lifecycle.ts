// Owns: the VM lifecycle state machine after Hyper-V's states (Off, Starting, Running, Paused, Stopping) plus
// Critical (the worker was lost) and InvalidConfiguration (the file cannot be read): which event moves which
// state where, and which API operations each state allows. One table; the service, the docs and the tests
// read it.
// Must not: perform transitions' side effects (vm-service.ts starts and stops workers) or know HTTP.
// Spec: Msvm_ComputerSystem EnabledState / RequestStateChange (anchors-management.md section 2).

import type { VmState } from "../api/schemas.js";

export type LifecycleEvent =
  | "start" // a start was requested
  | "started" // the worker runs the guest
  | "start-failed" // the worker could not be started or could not build the VM
  | "pause"
  | "resume"
  | "stop" // a shutdown or turn-off was requested
  | "stop-failed" // the guest did not shut down in time: it keeps running
  | "stopped" // the worker ended with the guest powered off (or was turned off)
  | "worker-lost" // the worker process died or stopped answering
  | "config-invalid" // the configuration file no longer reads
  | "config-valid"; // a file that did not read reads again

/** state -> event -> next state; an event not listed is refused in that state. */
export const TRANSITIONS: Readonly<Record<VmState, Partial<Record<LifecycleEvent, VmState>>>> = {
  Off: { start: "Starting", "config-invalid": "InvalidConfiguration" },
  Starting: {
    started: "Running",
    "start-failed": "Off",
    stop: "Stopping",
    "worker-lost": "Critical",
    stopped: "Off",
  },
  Running: { pause: "Paused", stop: "Stopping", stopped: "Off", "worker-lost": "Critical" },
  Paused: { resume: "Running", stop: "Stopping", stopped: "Off", "worker-lost": "Critical" },
  Stopping: { stopped: "Off", "stop-failed": "Running", "worker-lost": "Critical" },
  Critical: { start: "Starting", "config-invalid": "InvalidConfiguration" },
  InvalidConfiguration: { "config-valid": "Off" },
};

/** The states in which a worker process exists for the VM. */
export const WORKER_STATES: ReadonlySet<VmState> = new Set(["Starting", "Running", "Paused", "Stopping"]);

/** The next state, or null when the event is not allowed in `state`. */
export function nextState(state: VmState, event: LifecycleEvent): VmState | null {
  return TRANSITIONS[state][event] ?? null;
}

/** States in which the VM's configuration may be changed offline-only fields (memory, processors, boot, disks). */
export const OFFLINE_STATES: ReadonlySet<VmState> = new Set(["Off", "Critical"]);
/** States from which a VM may be deleted. */
export const DELETABLE_STATES: ReadonlySet<VmState> = new Set(["Off", "Critical", "InvalidConfiguration"]);

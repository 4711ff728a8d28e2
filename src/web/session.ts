// Owns: the signed-in tab's state (the client, the principal's rights, the VMs and jobs the page knows, the
// live events, the open console) and the status line where every failure is shown plainly.
// Must not: render views (vm-list.ts, jobs-panel.ts and the page modules do) or keep the token anywhere but
// the client (client.ts keeps it in sessionStorage).
// Spec: docs/architecture.md "The web UI (src/web/)".

import { ApiFailure, type Client, type Job, type Rights, type Vm } from "./client.js";
import type { ConsoleView } from "./console-view.js";
import type { LiveEvents } from "./live.js";

export interface Session {
  client: Client;
  rights: Rights;
  vms: Map<string, Vm>;
  jobs: Map<string, Job>;
  live: LiveEvents;
  console: ConsoleView | null;
  /** The VM the page shows (its name), or null for the list. */
  page: string | null;
}

const status = (): HTMLElement => document.getElementById("status")!;

export function showError(e: unknown): void {
  status().textContent = e instanceof ApiFailure ? e.shown : `Error: ${(e as Error).message}`;
}
export function showStatus(text: string): void {
  status().textContent = text;
}
export function clearError(): void {
  status().textContent = "";
}

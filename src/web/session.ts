// Owns: what one signed-in tab holds (the API client, the principal's rights, the VMs and jobs it knows, the
// live events subscription, the open console, the page it shows) and the page's one status line, where API
// refusals are shown plainly.
// Must not: reach the API itself or render views (main.ts and the view modules do).
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

const status = () => document.getElementById("status")!;

export function showError(e: unknown): void {
  status().textContent = e instanceof ApiFailure ? e.shown : `Error: ${(e as Error).message}`;
}
export function clearError(): void {
  status().textContent = "";
}

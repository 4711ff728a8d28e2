// Owns: the page's subscription to the service's events WebSocket (lifecycle, job and audit events the
// principal may see), reconnecting after a drop with a growing delay, and telling the page when it
// reconnected so it can re-read what it may have missed.
// Must not: poll (the events stream is the only source of change) or hide a lost connection (the page shows
// that it is reconnecting).
// Spec: docs/architecture.md "The web UI (src/web/)"; the events route of src/api/routes.ts.

import type { Client } from "./client.js";

export interface LiveEvent {
  type: "lifecycle" | "job" | "audit" | "health";
  time: string;
  data: unknown;
}

export interface LiveHandlers {
  event(e: LiveEvent): void;
  /** The stream (re)opened: anything may have changed while it was down. */
  opened(): void;
  /** The stream dropped and will be retried. */
  dropped(reason: string): void;
}

export class LiveEvents {
  private ws: WebSocket | null = null;
  private delay = 500;
  private stopped = false;

  constructor(
    private readonly client: Client,
    private readonly on: LiveHandlers,
  ) {
    this.connect();
  }

  private connect(): void {
    const ws = this.client.websocket("events");
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.on.opened();
    };
    ws.onmessage = (m) => {
      if (typeof m.data !== "string") return;
      try {
        this.on.event(JSON.parse(m.data) as LiveEvent);
      } catch {
        // a malformed frame is skipped, the stream goes on
      }
    };
    ws.onclose = (c) => {
      if (this.stopped) return;
      this.on.dropped(c.reason || `code ${c.code}`);
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10_000);
    };
  }

  close(): void {
    this.stopped = true;
    this.ws?.close();
  }
}

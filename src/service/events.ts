// Owns: the service's event bus: lifecycle, job, audit and health (guest heartbeat) events, each tagged with
// the scope it concerns (`host` for audit events) so the events endpoint can send every subscriber only what
// it may see.
// Must not: filter by itself (the API layer asks the authorizer per subscriber) or buffer without bound (a
// subscriber that cannot keep up is dropped by its owner).
// Spec: Incus /1.0/events (anchors-management.md section 4).

import type { EventMessage } from "../api/schemas.js";

export type EventListener = (e: EventMessage, scope: string) => void;

export class EventBus {
  private listeners = new Set<EventListener>();

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit(type: EventMessage["type"], data: unknown, scope: string): void {
    const e: EventMessage = { type, time: new Date().toISOString(), data };
    for (const l of this.listeners) l(e, scope);
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}

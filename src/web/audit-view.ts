// Owns: the administrator's events page: the audit log (every authorization decision, newest first, read with
// GET /v1/audit?before= and extended live by the audit events the stream sends administrators; older pages on
// request; filters by result and principal) and the live lifecycle and job events since sign-in.
// Must not: poll (the events WebSocket brings every new entry), or keep more than a bounded number of entries.
// Spec: docs/architecture.md "The web UI (src/web/)"; the readAudit and events routes of src/api/routes.ts.

import type { AuditEntry } from "../api/schemas.js";
import { ApiFailure } from "./client.js";
import { button, el, scrollBox } from "./dom.js";
import type { LiveEvent } from "./live.js";
import type { Session } from "./session.js";

const PAGE = 200;
/** The most entries (and live events) the page keeps. */
const KEEP = 2000;
const NEWEST = "999999999999999";

interface AuditState {
  /** Newest first. */
  entries: AuditEntry[];
  loaded: boolean;
  /** No entry older than the last one shown exists. */
  complete: boolean;
  result: string;
  principal: string;
  events: LiveEvent[];
  drawing: boolean;
}
const states = new WeakMap<Session, AuditState>();
function auditState(s: Session): AuditState {
  let a = states.get(s);
  if (!a)
    states.set(
      s,
      (a = {
        entries: [],
        loaded: false,
        complete: false,
        result: "",
        principal: "",
        events: [],
        drawing: false,
      }),
    );
  return a;
}

const shownHere = () => location.hash === "#/audit";

/** Every event the stream brings: audit entries join the log, the others the live list (both bounded). */
export function auditOnEvent(s: Session, e: LiveEvent): void {
  const a = auditState(s);
  if (e.type === "audit") {
    // Before the first read the log is read whole on opening: nothing to merge yet.
    if (!a.loaded) return;
    const entry = e.data as AuditEntry;
    if (a.entries.length && entry.seq <= a.entries[0]!.seq) return;
    a.entries.unshift(entry);
    if (a.entries.length > KEEP) a.entries.length = KEEP;
  } else {
    a.events.unshift(e);
    if (a.events.length > KEEP) a.events.length = KEEP;
  }
  // A burst of events (every API call is audited) redraws once.
  if (shownHere() && !a.drawing) {
    a.drawing = true;
    setTimeout(() => {
      a.drawing = false;
      if (shownHere()) draw(s);
    }, 100);
  }
}

async function more(s: Session, before: string): Promise<void> {
  const a = auditState(s);
  const page = await s.client.call<AuditEntry[]>("readAudit", {}, undefined, { before, limit: String(PAGE) });
  const known = new Set(a.entries.map((x) => x.seq));
  const fresh = page.filter((x) => !known.has(x.seq)).reverse();
  if (before === NEWEST) a.entries = [...fresh, ...a.entries].sort((x, y) => y.seq - x.seq);
  else a.entries.push(...fresh);
  if (page.length < PAGE) a.complete = true;
  a.loaded = true;
}

export async function renderAudit(s: Session): Promise<void> {
  const view = document.getElementById("view");
  if (!view) return;
  view.replaceChildren(
    el("h2", { id: "audit-title" }, "Events and audit"),
    el("p", { class: "muted" }, "Loading…"),
  );
  try {
    await more(s, NEWEST);
  } catch (e) {
    view.replaceChildren(
      el("h2", { id: "audit-title" }, "Events and audit"),
      el("p", { role: "alert" }, e instanceof ApiFailure ? e.shown : String(e)),
    );
    return;
  }
  if (shownHere()) draw(s);
}

function filterSelect(
  id: string,
  label: string,
  value: string,
  options: Array<[string, string]>,
  set: (v: string) => void,
) {
  const sel = el(
    "select",
    { id },
    ...options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)),
  );
  sel.addEventListener("change", () => set(sel.value));
  return el("label", { for: id }, label, sel);
}

function draw(s: Session): void {
  const view = document.getElementById("view");
  if (!view) return;
  const a = auditState(s);
  const principals = [...new Set(a.entries.map((x) => x.principal))].sort();
  const shown = a.entries.filter(
    (x) => (!a.result || x.result === a.result) && (!a.principal || x.principal === a.principal),
  );
  const redraw = () => draw(s);
  const rows = shown.slice(0, 500).map((x) =>
    el(
      "tr",
      {
        "data-seq": String(x.seq),
        "data-result": x.result,
        "data-principal": x.principal,
        "data-operation": x.operation,
      },
      el("td", {}, String(x.seq)),
      el("td", {}, new Date(x.time).toLocaleTimeString()),
      el("th", { scope: "row" }, x.principal),
      el("td", {}, x.operation),
      el("td", { class: "wrap" }, x.target),
      el("td", { class: x.result === "deny" ? "deny" : "" }, x.result),
      el("td", { class: "wrap" }, x.reason ?? ""),
    ),
  );
  const focused = document.activeElement?.id;
  view.replaceChildren(
    el("h2", { id: "audit-title" }, "Events and audit"),
    el(
      "section",
      { class: "panel", "aria-labelledby": "audit-log-title" },
      el("h3", { id: "audit-log-title" }, "Audit log"),
      el(
        "div",
        { class: "filters", role: "search", "aria-label": "Filter the audit log" },
        filterSelect(
          "audit-result",
          "Result",
          a.result,
          [
            ["", "All"],
            ["allow", "Allowed"],
            ["deny", "Denied"],
          ],
          (v) => {
            a.result = v;
            redraw();
          },
        ),
        filterSelect(
          "audit-principal",
          "Principal",
          a.principal,
          [["", "Everyone"], ...principals.map((p): [string, string] => [p, p])],
          (v) => {
            a.principal = v;
            redraw();
          },
        ),
      ),
      rows.length
        ? scrollBox(
            "Audit log",
            el(
              "table",
              { id: "audit-table", "aria-labelledby": "audit-log-title" },
              el(
                "thead",
                {},
                el(
                  "tr",
                  {},
                  ...["#", "Time", "Principal", "Operation", "Target", "Result", "Reason"].map((h) =>
                    el("th", { scope: "col" }, h),
                  ),
                ),
              ),
              el("tbody", {}, ...rows),
            ),
          )
        : el("p", { class: "muted" }, "No entries match."),
      a.complete
        ? null
        : button(
            "Show older entries",
            () => {
              const oldest = a.entries[a.entries.length - 1];
              void more(s, String(oldest ? oldest.seq : NEWEST)).then(redraw, (e: unknown) => {
                document.getElementById("status")!.textContent =
                  e instanceof ApiFailure ? e.shown : String(e);
              });
            },
            { id: "audit-older", class: "secondary" },
          ),
    ),
    el(
      "section",
      { class: "panel", "aria-labelledby": "live-events-title" },
      el("h3", { id: "live-events-title" }, "Live events since sign-in"),
      a.events.length
        ? el(
            "ol",
            { id: "live-events", class: "events", reversed: true },
            ...a.events
              .slice(0, 200)
              .map((e) =>
                el("li", { "data-type": e.type }, `${new Date(e.time).toLocaleTimeString()} ${describe(e)}`),
              ),
          )
        : el("p", { class: "muted" }, "None yet."),
    ),
  );
  if (focused) document.getElementById(focused)?.focus();
}

function describe(e: LiveEvent): string {
  if (e.type === "lifecycle") {
    const d = e.data as { name?: string; vm: string; state: string; reason: string | null };
    return `${d.name ?? d.vm}: ${d.state}${d.reason ? ` (${d.reason})` : ""}`;
  }
  const j = e.data as { type: string; vm: { name: string } | null; state: string; percentComplete: number };
  return `job ${j.type}${j.vm ? ` on ${j.vm.name}` : ""}: ${j.state} ${j.percentComplete}%`;
}

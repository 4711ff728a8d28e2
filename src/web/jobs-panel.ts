// Owns: the jobs panel: the newest jobs the principal may see (type, VM, state, a progress bar, the error)
// with Cancel while a job is cancellable; kept current by the job events the page receives.
// Must not: poll (job events replace a job in the session) or decide whether a cancel is allowed (the API does).
// Spec: docs/architecture.md "The web UI (src/web/)"; the listJobs/cancelJob routes of src/api/routes.ts.

import type { Job } from "./client.js";
import { button, el, scrollBox } from "./dom.js";
import { showError, type Session } from "./session.js";

export function renderJobs(s: Session): void {
  const panel = document.getElementById("jobs");
  if (!panel) return;
  const jobs = [...s.jobs.values()].sort((a, b) => b.created.localeCompare(a.created)).slice(0, 20);
  const rows = jobs.map((j) =>
    el(
      "tr",
      { "data-job": j.id, "data-type": j.type, "data-state": j.state },
      el("td", {}, j.type),
      el("td", {}, j.vm?.name ?? "—"),
      el("td", { "data-field": "state" }, j.state),
      el(
        "td",
        {},
        el("progress", { max: "100", value: String(j.percentComplete), "aria-label": `${j.type} progress` }),
        ` ${j.percentComplete}%`,
      ),
      el("td", {}, j.error ? `${j.error.code}: ${j.error.message}` : ""),
      el(
        "td",
        {},
        j.cancellable && (j.state === "running" || j.state === "queued")
          ? button(
              "Cancel",
              () => {
                s.client.call<Job>("cancelJob", { id: j.id }).catch(showError);
              },
              { class: "secondary" },
            )
          : null,
      ),
    ),
  );
  panel.replaceChildren(
    el("h2", { id: "jobs-title" }, "Jobs"),
    jobs.length
      ? scrollBox(
          "Jobs",
          el(
            "table",
            { "aria-labelledby": "jobs-title" },
            el(
              "thead",
              {},
              el(
                "tr",
                {},
                ...["Operation", "VM", "State", "Progress", "Error", ""].map((h) =>
                  el("th", { scope: "col" }, h),
                ),
              ),
            ),
            el("tbody", {}, ...rows),
          ),
        )
      : el("p", { class: "muted" }, "No recent jobs."),
  );
}

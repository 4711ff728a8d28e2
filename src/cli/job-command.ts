// Owns: `viridian job list|wait|cancel` and `viridian events`: the service's jobs and its event stream, as
// requests to the API.
// Must not: import the service.
// Spec: README.md "The service and its CLI".

import type { EventMessage, Job } from "../api/schemas.js";
import { ApiClient, EXIT } from "./api-client.js";
import { CONNECTION_HELP, need, parseVerb } from "./api-args.js";
import { jobProgress, jobStatus, printJson, reportError, table, UsageError } from "./api-output.js";
import type { Command } from "./command.js";

const JOB_USAGE = `usage: viridian job list | job wait ID [--timeout SECONDS] | job cancel ID

${CONNECTION_HELP}`;
const EVENTS_USAGE = `usage: viridian events [--json]   (lifecycle, job and audit events you may see, until Ctrl-C)

${CONNECTION_HELP}`;

async function runJob(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h") {
    console.log(JOB_USAGE);
    return verb === undefined ? EXIT.usage : EXIT.ok;
  }
  try {
    const p = parseVerb(rest, { timeout: { type: "string" } });
    const api = new ApiClient(p.conn);
    switch (verb) {
      case "list": {
        const { body } = await api.call<Job[]>("listJobs");
        if (p.json) printJson(body);
        else
          console.log(
            table(
              ["ID", "TYPE", "VM", "STATE", "%", "CREATED", "ERROR"],
              body.map((j) => [
                j.id,
                j.type,
                j.vm?.name,
                j.state,
                j.percentComplete,
                j.created,
                j.error?.message,
              ]),
            ),
          );
        return EXIT.ok;
      }
      case "wait": {
        const [id] = need(p, 1, "viridian job wait ID [--timeout SECONDS]");
        const timeout = typeof p.values.timeout === "string" ? Number(p.values.timeout) : Infinity;
        const until = Date.now() + timeout * 1000;
        const show = jobProgress("job");
        let job: Job;
        for (;;) {
          job = (await api.call<Job>("waitJob", { id: id! }, { query: { timeout: "1" } })).body;
          show(job);
          if (job.state !== "running" && job.state !== "queued") break;
          if (Date.now() >= until) {
            if (p.json) printJson(job);
            console.error(`viridian job wait: still ${job.state} after ${timeout} s`);
            return EXIT.failed;
          }
        }
        if (p.json) printJson(job);
        return jobStatus("job wait", job);
      }
      case "cancel": {
        const [id] = need(p, 1, "viridian job cancel ID");
        const { body } = await api.call<Job>("cancelJob", { id: id! });
        if (p.json) printJson(body);
        else console.log(`job ${body.id}: cancel requested`);
        return EXIT.ok;
      }
      default:
        throw new UsageError(`unknown verb '${verb}'\n\n${JOB_USAGE}`);
    }
  } catch (e) {
    return reportError(`job ${verb}`, e);
  }
}

function describe(e: EventMessage): string {
  const d = e.data as Record<string, unknown>;
  switch (e.type) {
    case "lifecycle":
      return `${e.time} lifecycle ${String(d.name)} ${String(d.state)}${d.reason ? ` (${String(d.reason)})` : ""}`;
    case "job":
      return `${e.time} job ${String(d.type)} ${String(d.state)} ${String(d.percentComplete)}%${(d.vm as { name?: string } | null)?.name ? ` ${(d.vm as { name: string }).name}` : ""}`;
    case "audit":
      return `${e.time} audit ${String(d.principal)} ${String(d.operation)} ${String(d.target)} ${String(d.result)}`;
    case "health":
      return `${e.time} health ${String(d.name)} heartbeat ${String(d.heartbeat)}`;
  }
}

async function runEvents(args: string[]): Promise<number> {
  try {
    const p = parseVerb(args);
    if (p.help) {
      console.log(EVENTS_USAGE);
      return EXIT.ok;
    }
    need(p, 0, "viridian events");
    const api = new ApiClient(p.conn);
    const ws = api.websocket("events");
    return await new Promise<number>((resolve) => {
      ws.on("unexpected-response", (_req, res) => {
        console.error(`viridian events: HTTP ${res.statusCode}`);
        resolve(res.statusCode === 401 || res.statusCode === 403 ? EXIT.denied : EXIT.failed);
      });
      ws.on("error", (e) => {
        console.error(`viridian events: ${e.message}`);
        resolve(EXIT.unreachable);
      });
      ws.on("message", (data: Buffer) => {
        const e = JSON.parse(data.toString("utf8")) as EventMessage;
        console.log(p.json ? JSON.stringify(e) : describe(e));
      });
      ws.on("close", () => resolve(EXIT.ok));
      process.once("SIGINT", () => ws.close());
    });
  } catch (e) {
    return reportError("events", e);
  }
}

export const jobCommand: Command = { summary: "the VM service's jobs: list, wait, cancel", run: runJob };
export const eventsCommand: Command = {
  summary: "follow the VM service's events (lifecycle, jobs, audit)",
  run: runEvents,
};

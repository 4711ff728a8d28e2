// Owns: `viridian vm ...`, the VM verbs (after Hyper-V's New-VM, Get-VM, Start-VM, Stop-VM [-TurnOff],
// Suspend-VM, Resume-VM, Set-VM, Remove-VM, Add/Remove-VMHardDiskDrive, Set-VMDvdDrive) and the interactive
// console, all as requests to the VM service's API.
// Must not: touch a VM's files or processes directly (only the service does), or import the service.
// Spec: README.md "The service and its CLI"; docs/architecture.md "The management API".

import type { Job, Vm } from "../api/schemas.js";
import { ApiClient, EXIT } from "./api-client.js";
import { CONNECTION_HELP, need, parseVerb, type Parsed } from "./api-args.js";
import { bytes, jobProgress, jobStatus, printJson, reportError, table, UsageError } from "./api-output.js";
import type { Command } from "./command.js";

const USAGE = `usage: viridian vm <verb> ...

  new NAME [--memory SIZE] [--cpus N] [--kernel FILE] [--initrd FILE] [--cmdline S] [--scope S]
           [--new-vhd PATH --size SIZE] [--disk PATH] [--dvd ISO] [--nic switch=SWITCH[,mac=MAC]]...
           [--start-action nothing|start|start-if-running] [--stop-action shutdown|turn-off|leave-running]
  list                                  the VMs you may see
  show NAME                             configuration and state
  start NAME [--no-wait]                a job; waits for it unless --no-wait
  stop NAME [--turn-off] [--no-wait]    shut down through the guest, or turn off at once
  pause NAME | resume NAME
  set NAME [--memory SIZE] [--cpus N] [--kernel FILE] [--initrd FILE] [--cmdline S] [--start-action A]
           [--stop-action A] [--scope S]
  delete NAME [--delete-disks]          removes the VM's directory; its disks stay unless --delete-disks
  console NAME                          the serial console (Ctrl-A X detaches; the VM keeps running)
  disk add NAME PATH [--new --size SIZE [--fixed]] [--read-only]
  disk remove NAME INDEX
  dvd set NAME ISO | dvd eject NAME
  nic add NAME SWITCH [--mac MAC]       a NIC on one of the service's switches (viridian vmswitch); VM Off
  nic remove NAME INDEX

${CONNECTION_HELP}`;

/** Sizes with a K/M/G/T suffix (powers of 1024); a bare memory size is MiB, a bare disk size bytes. */
function parseSize(text: string, bareUnit = 0): number {
  const m = /^(\d+)([KMGT])?(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`invalid size '${text}' (examples: 10G, 512M)`);
  const unit = m[2] ? { K: 1, M: 2, G: 3, T: 4 }[m[2].toUpperCase() as "K"] : bareUnit;
  const n = Number(m[1]) * 1024 ** unit;
  if (!Number.isSafeInteger(n)) throw new UsageError(`size '${text}' is too large`);
  return n;
}

const VM_OPTIONS = {
  memory: { type: "string" },
  cpus: { type: "string" },
  kernel: { type: "string" },
  initrd: { type: "string" },
  cmdline: { type: "string" },
  scope: { type: "string" },
  "start-action": { type: "string" },
  "stop-action": { type: "string" },
  "new-vhd": { type: "string" },
  size: { type: "string" },
  disk: { type: "string", multiple: true },
  dvd: { type: "string" },
  "no-wait": { type: "boolean" },
  "turn-off": { type: "boolean" },
  "delete-disks": { type: "boolean" },
  new: { type: "boolean" },
  fixed: { type: "boolean" },
  "read-only": { type: "boolean" },
  nic: { type: "string", multiple: true },
  mac: { type: "string" },
} as const;

/** `--nic switch=SWITCH[,mac=MAC]`, the form `viridian run` takes (here the switch is one of the service's). */
function parseNic(text: string): { switch: string; mac?: string } {
  let sw: string | undefined;
  let mac: string | undefined;
  for (const part of text.split(",")) {
    const [k, v] = part.split(/=(.*)/s, 2);
    if (k === "switch" && v) sw = v;
    else if (k === "mac" && v) mac = v.toLowerCase();
    else throw new UsageError(`--nic: cannot use '${part}' (expected switch=SWITCH[,mac=aa:bb:cc:dd:ee:ff])`);
  }
  if (sw === undefined) throw new UsageError("--nic needs switch=SWITCH");
  return mac === undefined ? { switch: sw } : { switch: sw, mac };
}

function str(p: Parsed, k: string): string | undefined {
  const v = p.values[k];
  return typeof v === "string" ? v : undefined;
}

function settings(p: Parsed): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const mem = str(p, "memory");
  if (mem !== undefined) out.memoryBytes = parseSize(mem, 2);
  const cpus = str(p, "cpus");
  if (cpus !== undefined) {
    if (!/^[0-9]+$/.test(cpus)) throw new UsageError(`--cpus wants a number, got '${cpus}'`);
    out.processors = Number(cpus);
  }
  for (const [flag, field] of [
    ["kernel", "kernel"],
    ["initrd", "initrd"],
    ["cmdline", "cmdline"],
    ["start-action", "automaticStartAction"],
    ["stop-action", "automaticStopAction"],
  ] as const) {
    const v = str(p, flag);
    if (v !== undefined) out[field] = v;
  }
  return out;
}

async function runJob(api: ApiClient, verb: string, p: Parsed, job: Job): Promise<number> {
  if (p.values["no-wait"] === true) {
    if (p.json) printJson(job);
    else console.log(`job ${job.id} (${job.type}) started`);
    return EXIT.ok;
  }
  const done = await api.waitJob(job.id, jobProgress(job.type));
  if (p.json) printJson(done);
  return jobStatus(verb, done);
}

function showVm(v: Vm): string {
  const c = v.config;
  const lines = [
    `name:    ${v.name}`,
    `id:      ${v.id}`,
    `scope:   ${v.scope}`,
    `state:   ${v.state}${v.reason ? ` (${v.reason})` : ""}`,
  ];
  if (v.worker) lines.push(`worker:  pid ${v.worker.pid}`);
  if (c) {
    const m = c.machine;
    lines.push(
      `memory:  ${bytes(m.memoryBytes)}`,
      `cpus:    ${m.processors}`,
      `kernel:  ${m.boot.kernel ?? "(bundled guest)"}`,
      `initrd:  ${m.boot.initrd ?? (m.boot.kernel === null ? "(bundled guest)" : "-")}`,
      `cmdline: ${m.boot.cmdline ?? "(default)"}`,
      `dvd:     ${m.dvd ?? "-"}`,
      `automatic start: ${c.automaticStartAction}; automatic stop: ${c.automaticStopAction}`,
    );
    m.disks.forEach((d, i) => lines.push(`disk ${i}:  ${d.path}${d.readOnly ? " (read-only)" : ""}`));
    m.nics.forEach((n, i) => lines.push(`nic ${i}:   ${n.mac} on switch ${n.switch}`));
  }
  return lines.join("\n");
}

async function vmNew(api: ApiClient, p: Parsed): Promise<number> {
  const [name] = need(p, 1, "viridian vm new NAME [options]");
  const body: Record<string, unknown> = { name: name!, ...settings(p) };
  const nics = p.values.nic;
  if (Array.isArray(nics) && nics.length > 0) body.nics = nics.map(parseNic);
  const scope = str(p, "scope");
  if (scope !== undefined) body.scope = scope;
  const newVhd = str(p, "new-vhd");
  const size = str(p, "size");
  if ((newVhd === undefined) !== (size === undefined))
    throw new UsageError("--new-vhd and --size go together");
  const created = await api.call<Vm>("createVm", {}, { body });
  let vm = created.body;
  if (newVhd !== undefined) {
    const { body: acc } = await api.call<{ job: Job }>(
      "addDisk",
      { vm: vm.id },
      { body: { path: newVhd, create: { sizeBytes: parseSize(size!) } } },
    );
    const done = await api.waitJob(acc.job.id, jobProgress("disk.create"));
    if (done.state !== "completed") return jobStatus("vm new", done);
  }
  const disks = p.values.disk;
  for (const d of Array.isArray(disks) ? disks : []) {
    const { body: acc } = await api.call<{ job: Job }>("addDisk", { vm: vm.id }, { body: { path: d } });
    const done = await api.waitJob(acc.job.id);
    if (done.state !== "completed") return jobStatus("vm new", done);
  }
  const dvd = str(p, "dvd");
  if (dvd !== undefined) await api.call<Vm>("setDvd", { vm: vm.id }, { body: { path: dvd } });
  vm = (await api.call<Vm>("getVm", { vm: vm.id })).body;
  if (p.json) printJson(vm);
  else console.log(showVm(vm));
  return EXIT.ok;
}

async function vmSet(api: ApiClient, p: Parsed): Promise<number> {
  const [name] = need(p, 1, "viridian vm set NAME [options]");
  const patch = settings(p);
  const scope = str(p, "scope");
  if (Object.keys(patch).length === 0 && scope === undefined) throw new UsageError("nothing to set");
  // Read-modify-write with the version read: a concurrent change gives 412, never a silent overwrite.
  const cur = await api.call<Vm>("getVm", { vm: name! });
  let etag = cur.body.etag ?? undefined;
  if (Object.keys(patch).length > 0) {
    const r = await api.call<Vm>(
      "updateVm",
      { vm: name! },
      { body: patch, ...(etag ? { ifMatch: etag } : {}) },
    );
    etag = r.body.etag ?? undefined;
  }
  if (scope !== undefined)
    await api.call<Vm>(
      "changeVmScope",
      { vm: name! },
      { body: { scope }, ...(etag ? { ifMatch: etag } : {}) },
    );
  const vm = (await api.call<Vm>("getVm", { vm: name! })).body;
  if (p.json) printJson(vm);
  else console.log(showVm(vm));
  return EXIT.ok;
}

async function vmConsole(api: ApiClient, name: string): Promise<number> {
  const ws = api.websocket("vmConsole", { vm: name });
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  return new Promise<number>((resolve) => {
    let sawCtrlA = false;
    let status: number = EXIT.ok;
    const finish = (): void => {
      if (tty) stdin.setRawMode(false);
      stdin.pause();
      resolve(status);
    };
    ws.on("unexpected-response", (_req, res) => {
      status =
        res.statusCode === 401 || res.statusCode === 403
          ? EXIT.denied
          : res.statusCode === 404
            ? EXIT.notFound
            : EXIT.failed;
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString("utf8")));
      res.on("end", () => {
        let msg = `HTTP ${res.statusCode}`;
        try {
          msg = (JSON.parse(text) as { error: { message: string } }).error.message;
        } catch {
          // not JSON
        }
        console.error(`viridian vm console: ${msg}`);
        finish();
      });
    });
    ws.on("error", (e) => {
      console.error(`viridian vm console: ${e.message}`);
      status = EXIT.unreachable;
      finish();
    });
    ws.on("open", () => {
      if (tty) {
        stdin.setRawMode(true);
        process.stderr.write(`viridian: connected to ${name}'s console; Ctrl-A X detaches\r\n`);
      }
      stdin.on("data", (data: Buffer) => {
        if (!tty) {
          ws.send(data, { binary: true });
          return;
        }
        const pass: number[] = [];
        for (const b of data) {
          if (sawCtrlA) {
            sawCtrlA = false;
            if (b === 0x78 || b === 0x58) {
              ws.close(1000, "detached");
              return;
            }
            if (b !== 0x01) pass.push(0x01);
            pass.push(b);
          } else if (b === 0x01) sawCtrlA = true;
          else pass.push(b);
        }
        if (pass.length > 0) ws.send(Buffer.from(pass), { binary: true });
      });
      // With pipes, the end of input detaches once what was sent has been answered for a moment.
      stdin.on("end", () => setTimeout(() => ws.close(1000, "input ended"), 1000));
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) process.stdout.write(data);
      else {
        try {
          const m = JSON.parse(data.toString("utf8")) as { error?: { message: string } };
          if (m.error) process.stderr.write(`viridian vm console: ${m.error.message}\r\n`);
        } catch {
          // ignore other control messages
        }
      }
    });
    ws.on("close", (_code, reason) => {
      const r = reason.toString();
      if (r && r !== "detached" && r !== "input ended")
        process.stderr.write(`\r\nviridian: console closed: ${r}\r\n`);
      finish();
    });
  });
}

async function run(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
    console.log(USAGE);
    return verb === undefined ? EXIT.usage : EXIT.ok;
  }
  const label = `vm ${verb}`;
  try {
    let sub: string | undefined;
    let tail = rest;
    if (verb === "disk" || verb === "dvd" || verb === "nic") {
      sub = rest[0];
      tail = rest.slice(1);
    }
    const p = parseVerb(tail, VM_OPTIONS);
    if (p.help) {
      console.log(USAGE);
      return EXIT.ok;
    }
    const api = new ApiClient(p.conn);
    switch (verb) {
      case "new":
        return await vmNew(api, p);
      case "list": {
        need(p, 0, "viridian vm list");
        const { body } = await api.call<Vm[]>("listVms");
        if (p.json) printJson(body);
        else
          console.log(
            table(
              ["NAME", "STATE", "SCOPE", "MEMORY", "CPUS", "ID"],
              body.map((v) => [
                v.name,
                v.state,
                v.scope,
                v.config ? bytes(v.config.machine.memoryBytes) : null,
                v.config?.machine.processors,
                v.id,
              ]),
            ),
          );
        return EXIT.ok;
      }
      case "show": {
        const [name] = need(p, 1, "viridian vm show NAME");
        const { body } = await api.call<Vm>("getVm", { vm: name! });
        if (p.json) printJson(body);
        else console.log(showVm(body));
        return EXIT.ok;
      }
      case "start":
      case "stop": {
        const [name] = need(p, 1, `viridian vm ${verb} NAME`);
        const { body } =
          verb === "start"
            ? await api.call<{ job: Job }>("startVm", { vm: name! })
            : await api.call<{ job: Job }>(
                "stopVm",
                { vm: name! },
                { body: { turnOff: p.values["turn-off"] === true } },
              );
        return await runJob(api, label, p, body.job);
      }
      case "pause":
      case "resume": {
        const [name] = need(p, 1, `viridian vm ${verb} NAME`);
        const { body } = await api.call<Vm>(verb === "pause" ? "pauseVm" : "resumeVm", { vm: name! });
        if (p.json) printJson(body);
        else console.log(`${body.name}: ${body.state}`);
        return EXIT.ok;
      }
      case "set":
        return await vmSet(api, p);
      case "delete": {
        const [name] = need(p, 1, "viridian vm delete NAME [--delete-disks]");
        const { body } = await api.call<{ job: Job }>(
          "deleteVm",
          { vm: name! },
          { query: p.values["delete-disks"] === true ? { deleteDisks: "true" } : {} },
        );
        return await runJob(api, label, p, body.job);
      }
      case "console": {
        const [name] = need(p, 1, "viridian vm console NAME");
        return await vmConsole(api, name!);
      }
      case "disk": {
        if (sub === "add") {
          const [name, path] = need(
            p,
            2,
            "viridian vm disk add NAME PATH [--new --size SIZE [--fixed]] [--read-only]",
          );
          const size = str(p, "size");
          if ((p.values.new === true) !== (size !== undefined))
            throw new UsageError("--new and --size go together");
          const body: Record<string, unknown> = { path: path!, readOnly: p.values["read-only"] === true };
          if (size !== undefined)
            body.create = { sizeBytes: parseSize(size), type: p.values.fixed === true ? "fixed" : "dynamic" };
          const { body: acc } = await api.call<{ job: Job }>("addDisk", { vm: name! }, { body });
          return await runJob(api, "vm disk add", p, acc.job);
        }
        if (sub === "remove") {
          const [name, index] = need(p, 2, "viridian vm disk remove NAME INDEX");
          if (!/^[0-9]{1,2}$/.test(index!))
            throw new UsageError(`INDEX is a disk number (vm show lists them), got '${index}'`);
          const { body } = await api.call<Vm>("removeDisk", { vm: name!, index: index! });
          if (p.json) printJson(body);
          return EXIT.ok;
        }
        throw new UsageError("usage: viridian vm disk add|remove ...");
      }
      case "dvd": {
        if (sub === "set") {
          const [name, iso] = need(p, 2, "viridian vm dvd set NAME ISO");
          const { body } = await api.call<Vm>("setDvd", { vm: name! }, { body: { path: iso! } });
          if (p.json) printJson(body);
          return EXIT.ok;
        }
        if (sub === "eject") {
          const [name] = need(p, 1, "viridian vm dvd eject NAME");
          const { body } = await api.call<Vm>("ejectDvd", { vm: name! });
          if (p.json) printJson(body);
          return EXIT.ok;
        }
        throw new UsageError("usage: viridian vm dvd set|eject ...");
      }
      case "nic": {
        if (sub === "add") {
          const [name, sw] = need(p, 2, "viridian vm nic add NAME SWITCH [--mac MAC]");
          const mac = str(p, "mac");
          const { body } = await api.call<Vm>(
            "addNic",
            { vm: name! },
            { body: { switch: sw!, ...(mac !== undefined ? { mac: mac.toLowerCase() } : {}) } },
          );
          if (p.json) printJson(body);
          else console.log(showVm(body));
          return EXIT.ok;
        }
        if (sub === "remove") {
          const [name, index] = need(p, 2, "viridian vm nic remove NAME INDEX");
          if (!/^[0-9]{1,2}$/.test(index!))
            throw new UsageError(`INDEX is a NIC number (vm show lists them), got '${index}'`);
          const { body } = await api.call<Vm>("removeNic", { vm: name!, index: index! });
          if (p.json) printJson(body);
          return EXIT.ok;
        }
        throw new UsageError("usage: viridian vm nic add|remove ...");
      }
      default:
        throw new UsageError(`unknown verb '${verb}'\n\n${USAGE}`);
    }
  } catch (e) {
    return reportError(label, e);
  }
}

export const command: Command = {
  summary: "manage VMs through the VM service (new, list, start, stop, console, ...)",
  run,
};

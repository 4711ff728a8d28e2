// Owns: `viridian vmswitch list|new|show|delete`, the VM service's virtual switches (after Hyper-V's
// Get-VMSwitch, New-VMSwitch, Remove-VMSwitch), as requests to its API. `viridian switch` stays the local
// switch of one user's own (no service); VMs of the service plug their NICs into these.
// Must not: start or reach a switch process itself (the service owns them), or import the service.
// Spec: README.md "The service and its CLI"; docs/architecture.md "Switches and NICs in the service".

import type { Switch } from "../api/schemas.js";
import { ApiClient, EXIT } from "./api-client.js";
import { CONNECTION_HELP, need, parseVerb } from "./api-args.js";
import { printJson, reportError, table, UsageError } from "./api-output.js";
import type { Command } from "./command.js";

const USAGE = `usage: viridian vmswitch <verb> ...

  list                                        the service's switches
  new NAME [--nat [--hostfwd tcp:127.0.0.1:2222-:22]...] [--tap DEV]
                                              a private switch, or one with a NAT port to the host (passt)
  show NAME                                   state, ports and the VMs with a NIC on it
  delete NAME                                 refused (in-use) while a running VM is connected

Then: viridian vm new NAME --nic switch=NAME, or viridian vm nic add VM NAME.

${CONNECTION_HELP}`;

const OPTIONS = {
  nat: { type: "boolean" },
  hostfwd: { type: "string", multiple: true },
  tap: { type: "string" },
} as const;

function showSwitch(s: Switch): string {
  const lines = [
    `name:   ${s.name}`,
    `kind:   ${s.kind}${s.tap ? `, TAP ${s.tap}` : ""}`,
    `state:  ${s.state}${s.reason ? ` (${s.reason})` : ""}${s.pid ? `, pid ${s.pid}` : ""}`,
  ];
  if (s.hostForwards.length) lines.push(`forwards: ${s.hostForwards.join(" ")}`);
  lines.push(`vms:    ${s.vms.map((v) => `${v.name}${v.running ? " (running)" : ""}`).join(", ") || "-"}`);
  if (s.ports.length)
    lines.push(
      table(
        ["PORT", "NAME", "KIND", "RX FRAMES", "TX FRAMES", "RX DROPPED", "TX DROPPED"],
        s.ports.map((p) => [p.id, p.name, p.kind, p.rxFrames, p.txFrames, p.rxDropped, p.txDropped]),
      ),
    );
  return lines.join("\n");
}

async function run(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
    console.log(USAGE);
    return verb === undefined ? EXIT.usage : EXIT.ok;
  }
  const label = `vmswitch ${verb}`;
  try {
    const p = parseVerb(rest, OPTIONS);
    if (p.help) {
      console.log(USAGE);
      return EXIT.ok;
    }
    const api = new ApiClient(p.conn);
    switch (verb) {
      case "list": {
        need(p, 0, "viridian vmswitch list");
        const { body } = await api.call<Switch[]>("listSwitches");
        if (p.json) printJson(body);
        else
          console.log(
            table(
              ["NAME", "KIND", "STATE", "PORTS", "VMS"],
              body.map((s) => [s.name, s.kind, s.state, s.ports.length, s.vms.map((v) => v.name).join(",")]),
            ),
          );
        return EXIT.ok;
      }
      case "new": {
        const [name] = need(p, 1, "viridian vmswitch new NAME [--nat [--hostfwd F]...] [--tap DEV]");
        const forwards = Array.isArray(p.values.hostfwd) ? p.values.hostfwd : [];
        if (forwards.length > 0 && p.values.nat !== true) throw new UsageError("--hostfwd needs --nat");
        const tap = p.values.tap;
        const { body } = await api.call<Switch>(
          "createSwitch",
          {},
          {
            body: {
              name: name!,
              kind: p.values.nat === true ? "nat" : "private",
              ...(forwards.length ? { hostForwards: forwards } : {}),
              ...(typeof tap === "string" ? { tap } : {}),
            },
          },
        );
        if (p.json) printJson(body);
        else console.log(showSwitch(body));
        return EXIT.ok;
      }
      case "show": {
        const [name] = need(p, 1, "viridian vmswitch show NAME");
        const { body } = await api.call<Switch>("getSwitch", { name: name! });
        if (p.json) printJson(body);
        else console.log(showSwitch(body));
        return EXIT.ok;
      }
      case "delete": {
        const [name] = need(p, 1, "viridian vmswitch delete NAME");
        await api.call("deleteSwitch", { name: name! });
        if (!p.json) console.log(`switch '${name}' deleted`);
        return EXIT.ok;
      }
      default:
        throw new UsageError(`unknown verb '${verb}'\n\n${USAGE}`);
    }
  } catch (e) {
    return reportError(label, e);
  }
}

export const command: Command = {
  summary: "the VM service's virtual switches (list, new, show, delete)",
  run,
};

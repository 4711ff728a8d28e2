// Owns: a VM's NICs as its configuration describes them: for each `VmConfig.nics` entry a link — a connection
// to the switch's ports socket (src/host/switch-link.ts), or for a user NIC its own passt NAT on a socketpair
// (src/host/user-nat.ts) — and a network VSP (src/vsp/netvsp) offered on the VM's VMBus server with the
// configured MAC, joined both ways (frames, back-pressure, link state), and their end (a user NIC's NAT ends
// with it).
// Must not: run NVSP/RNDIS itself or touch guest memory (the VSP does), or start a VM whose switch cannot be
// reached or whose NAT does not start (a failure closes the NICs opened so far, stops their NATs, and is one
// `VmNetworkError` naming the NIC).
// Spec: docs/architecture.md "Networking in a VM" and "User networking"; issue 13 (one channel per NIC, the
// stream wire format).

import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { guidConstant } from "../support/ms-guid.js";
import { formatHostForward } from "../net/host-forward.js";
import { NetError } from "../net/net-error.js";
import { NetVsp } from "../vsp/netvsp/netvsp.js";
import { runtimeDir } from "../host/switch-client.js";
import {
  connectSwitchLink,
  streamLink,
  type SwitchLink,
  type SwitchLinkEvents,
} from "../host/switch-link.js";
import { startUserNat, USER_NET, type UserNat } from "../host/user-nat.js";
import type { NicConfig } from "./vm-config.js";

/** A switch NIC's first reconnection attempt after its link closed, and the longest wait between attempts. */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5_000;

/** The link of a NIC before it has one. */
const CLOSED_LINK: SwitchLink = { open: false, send: () => true, close: () => undefined };

/** The first NIC's instance GUID; NIC i has i added to its last byte. */
const NIC_INSTANCE_BASE = "{9b5e7c1a-4d2f-4e83-a6b1-0c3d5e7f9a00}";

/** What a NetVsp offers its channel on (the machine's VMBus server). */
type ChannelOfferer = ConstructorParameters<typeof NetVsp>[0];

export class VmNetworkError extends Error {
  override name = "VmNetworkError";
}

interface Nic {
  readonly config: NicConfig;
  readonly vsp: NetVsp;
  /** The link now: a switch NIC gets a new one when it reconnects. */
  readonly current: { link: SwitchLink };
  /** A user NIC's NAT. */
  readonly nat: UserNat | null;
  /** Why the link ended, once it did. */
  readonly ended: () => string | null;
}

export interface VmNetworkOptions {
  /** Where a user NIC's passt writes its output (default: `logs/` in the runtime directory). */
  natLogDir?: string;
  /** Told, in one line, when a user NIC's NAT ends while the VM still uses it (the guest's link goes down). */
  notice?: (text: string) => void;
}

/** The default directory of NAT logs: beside the switches' logs. */
export function defaultNatLogDir(): string {
  return join(runtimeDir(), "logs");
}

function macBytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(":").map((p) => parseInt(p, 16)));
}

export function nicInstanceId(index: number): Uint8Array {
  const id = guidConstant(NIC_INSTANCE_BASE);
  id[15] = (id[15]! + index) & 0xff;
  return id;
}

export class VmNetwork {
  private constructor(
    private readonly nics: readonly Nic[],
    private readonly closing: { done: boolean },
  ) {}

  /**
   * Connects every NIC to its switch (or starts its NAT) and offers it on `server`; null when the VM has no
   * NIC.
   */
  static async open(
    server: ChannelOfferer,
    configs: readonly NicConfig[],
    options: VmNetworkOptions = {},
  ): Promise<VmNetwork | null> {
    if (configs.length === 0) return null;
    const nics: Nic[] = [];
    // Set when the VM lets its NICs go: a NAT that exits after that was asked to.
    const closing = { done: false };
    try {
      for (const [i, config] of configs.entries()) {
        let vsp: NetVsp | null = null;
        let ended: string | null = null;
        const attach = config.attach;
        // A switch NIC whose switch went away (its process killed or restarted) plugs itself in again as soon as
        // the switch's ports socket answers: the service restarts a switch it manages (src/service/switches.ts).
        const reconnect = (wait: number): void => {
          if (closing.done || attach.kind !== "switch") return;
          setTimeout(() => {
            if (closing.done) return;
            connectSwitchLink(attach.socket, events).then(
              (l) => {
                if (closing.done) return l.close();
                current.link = l;
                ended = null;
                vsp?.setLink(true);
                options.notice?.(`NIC ${i} (${config.mac}): reconnected to ${attach.socket}`);
              },
              () => reconnect(Math.min(wait * 2, RECONNECT_MAX_MS)),
            );
          }, wait).unref();
        };
        const events: SwitchLinkEvents = {
          onFrame: (frame) => vsp?.receiveFrame(frame),
          onDrain: () => vsp?.resumeTransmit(),
          onClose: (reason) => {
            ended = reason;
            // The cable is pulled: the guest sees the carrier go (RNDIS media disconnect).
            vsp?.setLink(false);
            vsp?.resumeTransmit();
            reconnect(RECONNECT_FIRST_MS);
          },
        };
        let nat: UserNat | null = null;
        let link: SwitchLink;
        const current: { link: SwitchLink } = { link: CLOSED_LINK };
        try {
          if (attach.kind === "switch") link = await connectSwitchLink(attach.socket, events);
          else {
            const dir = options.natLogDir ?? defaultNatLogDir();
            try {
              mkdirSync(dir, { recursive: true, mode: 0o700 });
            } catch (e) {
              throw new VmNetworkError(
                `NIC ${i} (${config.mac}): cannot create the NAT's log directory ${dir}: ${(e as Error).message}`,
              );
            }
            nat = await startUserNat({
              forwards: attach.hostForwards,
              logPath: join(dir, `user-nat-${process.pid}-nic${i}.log`),
            });
            link = streamLink(nat.socket, events, "the user NAT");
            const started = nat;
            void started.exited.then(() => {
              if (closing.done) return;
              options.notice?.(
                `NIC ${i} (${config.mac}): its NAT (passt) exited (${started.exitStatus()}): ` +
                  `${started.outputTail() || "no output"}; ` +
                  `the guest's link is down; log: ${started.logPath}`,
              );
            });
          }
        } catch (e) {
          if (e instanceof NetError) throw new VmNetworkError(`NIC ${i} (${config.mac}): ${e.message}`);
          throw e;
        }
        vsp = new NetVsp(server, {
          instanceId: nicInstanceId(i),
          mac: macBytes(config.mac),
          name: `netvsp${i}`,
          // Frames to a link that went away are dropped; the VSP never stalls on a dead link.
          port: { send: (frame) => (current.link.open ? current.link.send(frame) : true) },
        });
        current.link = link;
        nics.push({ config, vsp, current, nat, ended: () => ended });
      }
    } catch (e) {
      // The NICs opened so far did nothing wrong: their NATs stop and their logs go.
      closing.done = true;
      new VmNetwork(nics, closing).close();
      throw e;
    }
    return new VmNetwork(nics, closing);
  }

  /** The VSPs, in NIC order (tests and inspect). */
  get vsps(): NetVsp[] {
    return this.nics.map((n) => n.vsp);
  }

  summary(): string[] {
    return this.nics.map((n, i) => {
      const v = n.vsp;
      const c = v.counters;
      const refused = Object.entries(c.refused)
        .map(([k, m]) => `${k} ${m}`)
        .join(", ");
      const dropped = Object.entries(c.rxDropped)
        .map(([k, m]) => `${k} ${m}`)
        .join(", ");
      const nvsp =
        v.protocolVersion === 0 ? "" : `, NVSP ${v.protocolVersion >>> 16}.${v.protocolVersion & 0xffff}`;
      return (
        `nic ${i}: ${n.config.mac} on ${where(n)}${n.ended() ? ` (disconnected: ${ended(n)})` : ""}; ` +
        `netvsp ${v.state}${nvsp}, RNDIS ${v.rndis.state}, link ${v.linkUp ? "up" : "down"}; ` +
        `${c.txFrames} frames out, ${c.rxFrames} in; dropped: ${dropped || "none"}; refused: ${refused || "none"}`
      );
    });
  }

  /** The user NATs' passt processes, in NIC order (null for a switch NIC). */
  get natPids(): Array<number | null> {
    return this.nics.map((n) => n.nat?.pid ?? null);
  }

  /**
   * Disconnects every NIC from its switch and stops the NATs. A NAT's log is removed when the NAT was still
   * serving its NIC (nothing went wrong); one that ended on its own keeps its log for the post-mortem. Safe to
   * call more than once.
   */
  close(): void {
    this.closing.done = true;
    for (const n of this.nics) {
      const failed = n.ended() !== null;
      n.current.link.close();
      if (n.nat) {
        n.nat.stop();
        if (!failed) rmSync(n.nat.logPath, { force: true });
      }
    }
  }
}

function where(n: Nic): string {
  const a = n.config.attach;
  if (a.kind === "switch") return a.socket;
  const forwards = a.hostForwards.map(formatHostForward).join(" ");
  return (
    `the user NAT (passt ${n.nat?.pid}: ${USER_NET.guest}/${USER_NET.prefixLength} via ${USER_NET.gateway}` +
    `${forwards ? `, forwards ${forwards}` : ""}; log ${n.nat?.logPath})`
  );
}

/** Why a link ended; for a NAT, how passt ended and its last words. */
function ended(n: Nic): string {
  const reason = n.ended() ?? "";
  const status = n.nat?.exitStatus();
  if (!n.nat || status === null || status === undefined) return reason;
  return `${reason}; passt exited (${status}): ${n.nat.outputTail() || "no output"}`;
}

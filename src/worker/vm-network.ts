// Owns: a VM's NICs as its configuration describes them: for each `VmConfig.nics` entry a connection to the
// switch's ports socket (src/host/switch-link.ts) and a network VSP (src/vsp/netvsp) offered on the VM's
// VMBus server with the configured MAC, joined both ways (frames, back-pressure, link state), and their end.
// Must not: run NVSP/RNDIS itself or touch guest memory (the VSP does), or start a VM whose switch cannot be
// reached (a failed connection closes the others and is one `VmNetworkError` naming the NIC).
// Spec: docs/architecture.md "Networking in a VM"; issue 13 (one channel per NIC, the stream wire format).

import { guidConstant } from "../support/ms-guid.js";
import { NetError } from "../net/net-error.js";
import { NetVsp } from "../vsp/netvsp/netvsp.js";
import { connectSwitchLink, type SwitchLink } from "../host/switch-link.js";
import type { NicConfig } from "./vm-config.js";

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
  readonly link: SwitchLink;
  /** Why the switch connection ended, once it did. */
  readonly ended: () => string | null;
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
  private constructor(private readonly nics: readonly Nic[]) {}

  /** Connects every NIC to its switch and offers it on `server`; null when the VM has no NIC. */
  static async open(server: ChannelOfferer, configs: readonly NicConfig[]): Promise<VmNetwork | null> {
    if (configs.length === 0) return null;
    const nics: Nic[] = [];
    try {
      for (const [i, config] of configs.entries()) {
        let vsp: NetVsp | null = null;
        let ended: string | null = null;
        const attach = config.attach;
        if (attach.kind !== "switch")
          throw new VmNetworkError(
            `NIC ${i} (${config.mac}): user networking is not available in this build`,
          );
        const link = await connectSwitchLink(attach.socket, {
          onFrame: (frame) => vsp?.receiveFrame(frame),
          onDrain: () => vsp?.resumeTransmit(),
          onClose: (reason) => {
            ended = reason;
            // The cable is pulled: the guest sees the carrier go (RNDIS media disconnect).
            vsp?.setLink(false);
            vsp?.resumeTransmit();
          },
        }).catch((e: unknown) => {
          if (e instanceof NetError) throw new VmNetworkError(`NIC ${i} (${config.mac}): ${e.message}`);
          throw e;
        });
        vsp = new NetVsp(server, {
          instanceId: nicInstanceId(i),
          mac: macBytes(config.mac),
          name: `netvsp${i}`,
          // Frames to a switch that went away are dropped; the VSP never stalls on a dead link.
          port: { send: (frame) => (link.open ? link.send(frame) : true) },
        });
        nics.push({ config, vsp, link, ended: () => ended });
      }
    } catch (e) {
      for (const n of nics) n.link.close();
      throw e;
    }
    return new VmNetwork(nics);
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
        `nic ${i}: ${n.config.mac} on ${n.config.attach.kind === "switch" ? n.config.attach.socket : "user NAT"}${n.ended() ? ` (disconnected: ${n.ended()})` : ""}; ` +
        `netvsp ${v.state}${nvsp}, RNDIS ${v.rndis.state}, link ${v.linkUp ? "up" : "down"}; ` +
        `${c.txFrames} frames out, ${c.rxFrames} in; dropped: ${dropped || "none"}; refused: ${refused || "none"}`
      );
    });
  }

  /** Disconnects every NIC from its switch. Safe to call more than once. */
  close(): void {
    for (const n of this.nics) n.link.close();
  }
}

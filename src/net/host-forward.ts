// Owns: port-forward rules of a NAT (`--hostfwd tcp:127.0.0.1:2222-:22`, QEMU's user-networking syntax):
// parsing and printing them.
// Must not: start anything, or accept an address or port it cannot name exactly.
// Spec: QEMU's `-netdev user,hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport` (docs/system/
// invocation, "hostfwd"); the guest address is the NAT's single guest, so it must be empty here.

import { NetError } from "./net-error.js";

export interface HostForward {
  protocol: "tcp" | "udp";
  /** The host address to listen on; empty = every address (the NAT program's default). */
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

function port(text: string, what: string, spec: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new NetError("invalid-argument", `hostfwd '${spec}': ${what} '${text}' is not a port (1..65535)`);
  }
  return n;
}

export function parseHostForward(spec: string): HostForward {
  const m = /^(tcp|udp)?:([0-9.]*):([^-]*)-:([^:]*)$/.exec(spec);
  if (!m) {
    throw new NetError(
      "invalid-argument",
      `hostfwd '${spec}' is not [tcp|udp]:[hostaddr]:hostport-:guestport (e.g. tcp:127.0.0.1:2222-:22)`,
    );
  }
  const hostAddress = m[2]!;
  if (hostAddress && !/^(\d{1,3})(\.\d{1,3}){3}$/.test(hostAddress)) {
    throw new NetError("invalid-argument", `hostfwd '${spec}': '${hostAddress}' is not an IPv4 address`);
  }
  if (hostAddress.split(".").some((o) => Number(o) > 255)) {
    throw new NetError("invalid-argument", `hostfwd '${spec}': '${hostAddress}' is not an IPv4 address`);
  }
  return {
    protocol: (m[1] ?? "tcp") as "tcp" | "udp",
    hostAddress,
    hostPort: port(m[3]!, "host port", spec),
    guestPort: port(m[4]!, "guest port", spec),
  };
}

export function formatHostForward(f: HostForward): string {
  return `${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`;
}

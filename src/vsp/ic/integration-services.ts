// Owns: the set of integration services a VM offers (shutdown, heartbeat, time sync, KVP), built together on
// one VMBus server, driven by the owner's poll with partition time, and their combined inspect() view.
// Must not: offer VSS or file copy (they need guest daemons this project does not ship; Linux leaves them
// unbound), or read host clocks itself (the owner passes the time sources).
// Spec: ../shared/research/hyperv-linux-guest-checklist.md section 9.

import type { ChannelOfferer, IcInspection } from "./framework.js";
import { HeartbeatIc } from "./heartbeat.js";
import { KvpIc } from "./kvp.js";
import { ShutdownIc } from "./shutdown.js";
import { type TimeSources, TimeSyncIc } from "./timesync.js";

export interface IntegrationServicesOptions extends TimeSources {
  /** Partition time in ns (the clock the heartbeat, sample and timeout periods run on). */
  nowNs(): number;
}

export class IntegrationServices {
  readonly shutdown: ShutdownIc;
  readonly heartbeat: HeartbeatIc;
  readonly timesync: TimeSyncIc;
  readonly kvp: KvpIc;

  constructor(offerer: ChannelOfferer, options: IntegrationServicesOptions) {
    const clock = () => options.nowNs();
    this.shutdown = new ShutdownIc(offerer, clock);
    this.heartbeat = new HeartbeatIc(offerer, clock);
    this.timesync = new TimeSyncIc(offerer, clock, options);
    this.kvp = new KvpIc(offerer, clock);
  }

  /** Timers and timeouts at partition time `nowNs`; the run loop calls it each turn. */
  poll(nowNs: number): void {
    this.shutdown.tick(nowNs);
    this.heartbeat.tick(nowNs);
    this.timesync.tick(nowNs);
    this.kvp.tick(nowNs);
  }

  /** Partition time of the next IC timer (heartbeat, sample, refresh, request timeout), Infinity if none. */
  nextDeadlineNs(): number {
    return Math.min(
      this.shutdown.nextDeadlineNs(),
      this.heartbeat.nextDeadlineNs(),
      this.timesync.nextDeadlineNs(),
      this.kvp.nextDeadlineNs(),
    );
  }

  inspect(): {
    shutdown: ReturnType<ShutdownIc["inspect"]>;
    heartbeat: ReturnType<HeartbeatIc["inspect"]>;
    timesync: ReturnType<TimeSyncIc["inspect"]>;
    kvp: ReturnType<KvpIc["inspect"]>;
  } {
    return {
      shutdown: this.shutdown.inspect(),
      heartbeat: this.heartbeat.inspect(),
      timesync: this.timesync.inspect(),
      kvp: this.kvp.inspect(),
    };
  }

  /** The states in one line each (failure reports, `viridian run` state dumps). */
  summary(): string[] {
    const line = (i: IcInspection, extra: string) =>
      `  ${i.name}: ${i.state}${i.messageVersion === null ? "" : ` (IC version ${i.messageVersion})`}${extra}`;
    const h = this.heartbeat.inspect();
    return [
      line(this.shutdown.inspect(), ""),
      line(h, `, sequence ${h.sequence}, ${h.health}`),
      line(this.timesync.inspect(), `, ${this.timesync.syncs} syncs, ${this.timesync.samples} samples`),
      line(this.kvp.inspect(), `, ${this.kvp.intrinsic.size} guest items`),
    ];
  }
}

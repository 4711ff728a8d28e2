// Owns: the time synchronization IC: a SYNC sample (the guest sets its clock) right after negotiation and
// whenever the host asks, SAMPLE messages periodically (the guest's PTP clock follows them), in the v4 layout
// (host time + the partition reference counter when it was sampled) or the v1/v3 layout.
// Must not: read host time itself (the owner passes the calendar source, e.g. host UTC plus the VM's RTC
// offset, and the reference counter), or queue samples (a sample that cannot go now is skipped).
// Spec: ../shared/research/hyperv-linux-guest-checklist.md 9.4 (Linux 6.1 drivers/hv/hv_util.c
// timesync_onchannelcallback, adj_guesttime; struct ictimesync_ref_data / ictimesync_data; parent time in
// 100 ns units since 1601-01-01, WLTIMEDELTA).

import { guidConstant } from "../../support/ms-guid.js";
import {
  type ChannelOfferer,
  IC_MAX_PACKET,
  type IcInspection,
  IcMessageType,
  IcService,
} from "./framework.js";
import { DOUBLE_ZERO } from "../../support/heap-number.js";

export const TIMESYNC_CLASS = guidConstant("{9527e630-d0ae-497b-adce-e80ab0175caf}");
export const TIMESYNC_INSTANCE = guidConstant("{d70beb93-e5ea-43fb-9e6a-5c0a269a4b95}");
/** 100 ns units between 1601-01-01 and 1970-01-01. */
export const WLTIMEDELTA = 116444736000000000n;
const FLAG_SYNC = 1;
const FLAG_SAMPLE = 2;
/** Samples every 5 s, as Hyper-V's host does. */
export const TIMESYNC_PERIOD_NS = 5_000_000_000;

export interface TimeSources {
  /** Host calendar time as seen by this VM, in ms since 1970-01-01 UTC (Date.now() + the VM's RTC offset). */
  utcMs(): number;
  /** The partition reference counter (100 ns units) now. */
  referenceCounter(): number;
}

export class TimeSyncIc extends IcService {
  syncs = 0;
  samples = 0;
  private nextSampleNs = DOUBLE_ZERO;
  private syncWanted = false;
  private readonly sources: TimeSources;
  private readonly periodNs: number;

  constructor(
    offerer: ChannelOfferer,
    clock: () => number,
    sources: TimeSources,
    periodNs = TIMESYNC_PERIOD_NS,
  ) {
    super(
      offerer,
      {
        classId: TIMESYNC_CLASS,
        instanceId: TIMESYNC_INSTANCE,
        name: "timesync",
        maxGuestPacketBytes: IC_MAX_PACKET,
      },
      IcMessageType.TimeSync,
      [
        { major: 4, minor: 0 },
        { major: 3, minor: 0 },
        { major: 1, minor: 0 },
      ],
      clock,
    );
    this.sources = sources;
    this.periodNs = periodNs;
  }

  protected override ready(): void {
    // The first message after negotiation sets the guest's clock.
    this.syncWanted = true;
    this.nextSampleNs = 0;
    this.tick(this.clock());
  }

  /** Asks the guest to set its clock to the host's now (sent at once when the IC is idle, else at the next tick). */
  syncNow(): void {
    this.syncWanted = true;
    this.tick(this.clock());
  }

  override nextDeadlineNs(): number {
    if (!this.idle) return super.nextDeadlineNs();
    return this.syncWanted ? 0 : this.nextSampleNs;
  }

  override tick(nowNs: number): void {
    super.tick(nowNs);
    if (!this.idle || (!this.syncWanted && nowNs < this.nextSampleNs)) return;
    const sync = this.syncWanted;
    if (this.transact(this.body(sync ? FLAG_SYNC : FLAG_SAMPLE), () => undefined)) {
      this.syncWanted = false;
      if (sync) this.syncs++;
      else this.samples++;
      this.nextSampleNs = nowNs + this.periodNs;
    }
  }

  private body(flags: number): Uint8Array {
    const parent = BigInt(Math.floor(this.sources.utcMs())) * 10000n + WLTIMEDELTA;
    const v4 = (this.messageVersion?.major ?? 0) >= 4;
    const body = new Uint8Array(v4 ? 22 : 25);
    const v = new DataView(body.buffer);
    v.setBigUint64(0, parent, true);
    if (v4) {
      v.setBigUint64(8, BigInt(Math.floor(this.sources.referenceCounter())), true);
      v.setUint8(16, flags);
    } else {
      // childtime and roundtriptime are not used by Linux; zero.
      v.setUint8(24, flags);
    }
    return body;
  }

  inspect(): IcInspection & { syncs: number; samples: number } {
    return { ...this.inspectIc(), syncs: this.syncs, samples: this.samples };
  }
}

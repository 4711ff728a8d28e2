// Owns: the heartbeat IC: a request every period carrying a sequence number the guest returns incremented,
// the last sequence number and beat count the host saw, and whether the guest is answering.
// Must not: accept a sequence number that does not follow the one sent (a stale or forged answer is counted
// as bad and ignored).
// Spec: ../shared/research/hyperv-linux-guest-checklist.md 9.5 (Linux 6.1 drivers/hv/hv_util.c
// heartbeat_onchannelcallback: struct heartbeat_msg_data {u64 seq_num; u32 reserved[8]}, answer seq_num + 1).

import { guidConstant } from "../../support/ms-guid.js";
import {
  type ChannelOfferer,
  IC_MAX_PACKET,
  type IcInspection,
  IcMessageType,
  IcService,
} from "./framework.js";
import { DOUBLE_ZERO } from "../../support/heap-number.js";

export const HEARTBEAT_CLASS = guidConstant("{57164f39-9115-4e78-ab55-382f3bd5422d}");
export const HEARTBEAT_INSTANCE = guidConstant("{5aa59034-3460-4334-a883-4ad3346eba64}");
const HEARTBEAT_BODY = 40;
/** Linux's comment: "Every two seconds, Hyper-V send us a heartbeat request". */
export const HEARTBEAT_PERIOD_NS = 2_000_000_000;

export type HeartbeatHealth = "no-contact" | "ok" | "lost";

export class HeartbeatIc extends IcService {
  /** The last sequence number the guest returned (0 before the first beat). */
  sequence = 0;
  beats = 0;
  /** Partition time of the last answer, or null. */
  lastBeatNs: number | null = null;
  health: HeartbeatHealth = "no-contact";
  /** Told each time `health` changes (the VM worker passes it on to the service). */
  onHealthChange: ((h: HeartbeatHealth) => void) | null = null;
  private nextDueNs = DOUBLE_ZERO;
  private readonly periodNs: number;

  constructor(offerer: ChannelOfferer, clock: () => number, periodNs = HEARTBEAT_PERIOD_NS) {
    super(
      offerer,
      {
        classId: HEARTBEAT_CLASS,
        instanceId: HEARTBEAT_INSTANCE,
        name: "heartbeat",
        maxGuestPacketBytes: IC_MAX_PACKET,
      },
      IcMessageType.Heartbeat,
      [
        { major: 3, minor: 0 },
        { major: 1, minor: 0 },
      ],
      clock,
    );
    this.periodNs = periodNs;
  }

  protected override ready(): void {
    this.nextDueNs = 0;
  }

  override nextDeadlineNs(): number {
    return Math.min(super.nextDeadlineNs(), this.idle ? this.nextDueNs : Infinity);
  }

  override tick(nowNs: number): void {
    super.tick(nowNs);
    if (!this.idle || nowNs < this.nextDueNs) return;
    const sent = this.sequence;
    const body = new Uint8Array(HEARTBEAT_BODY);
    const v = new DataView(body.buffer);
    v.setUint32(0, sent % 0x1_0000_0000, true);
    v.setUint32(4, Math.floor(sent / 0x1_0000_0000), true);
    if (
      this.transact(
        body,
        (r) => {
          if (r === null) {
            if (this.state === "ready") this.setHealth("lost");
            return;
          }
          if (r.body.length < 8) {
            this.badResponses++;
            return;
          }
          const b = new DataView(r.body.buffer, r.body.byteOffset, r.body.length);
          const seq = b.getUint32(4, true) * 0x1_0000_0000 + b.getUint32(0, true);
          if (seq !== sent + 1) {
            this.badResponses++;
            return;
          }
          this.sequence = seq;
          this.beats++;
          this.lastBeatNs = this.clock();
          this.setHealth("ok");
        },
        this.periodNs * 5,
      )
    ) {
      this.nextDueNs = nowNs + this.periodNs;
    }
  }

  private setHealth(h: HeartbeatHealth): void {
    if (h === this.health) return;
    this.health = h;
    this.onHealthChange?.(h);
  }

  inspect(): IcInspection & { sequence: number; beats: number; health: HeartbeatHealth } {
    return { ...this.inspectIc(), sequence: this.sequence, beats: this.beats, health: this.health };
  }
}

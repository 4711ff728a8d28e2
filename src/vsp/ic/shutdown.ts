// Owns: the shutdown IC: the host's request for an orderly guest shutdown or restart (Hyper-V's Stop-VM), and
// the guest's answer.
// Must not: turn the VM off itself (the worker decides what follows a refusal or a timeout), or keep more than
// one request in flight.
// Spec: ../shared/research/hyperv-linux-guest-checklist.md 9.3 (Linux 6.1 drivers/hv/hv_util.c
// shutdown_onchannelcallback: struct shutdown_msg_data, flags 0/1 shutdown, 2/3 restart).

import { guidConstant } from "../../support/ms-guid.js";
import {
  type ChannelOfferer,
  HV_S_OK,
  IC_MAX_PACKET,
  type IcInspection,
  IcMessageType,
  IcService,
} from "./framework.js";

export const SHUTDOWN_CLASS = guidConstant("{0e0b6031-5213-4934-818b-38d90ced39db}");
export const SHUTDOWN_INSTANCE = guidConstant("{976ce34a-5b47-48db-9524-e1e13d870c9d}");
/** shutdown_msg_data: u32 reason_code, u32 timeout_seconds, u32 flags, u8 display_message[2048]. */
const SHUTDOWN_BODY = 2060;
/** SHTDN_REASON_FLAG_PLANNED: the reason a host-initiated shutdown carries. */
const REASON_PLANNED = 0x80000000;

export type ShutdownKind = "shutdown" | "restart";
/** "accepted": the guest said it will shut down; "refused": it answered with a failure; "no-answer": timeout or closed. */
export type ShutdownAnswer = "accepted" | "refused" | "no-answer";

export class ShutdownIc extends IcService {
  requested = 0;
  lastAnswer: ShutdownAnswer | null = null;

  constructor(offerer: ChannelOfferer, clock: () => number) {
    super(
      offerer,
      {
        classId: SHUTDOWN_CLASS,
        instanceId: SHUTDOWN_INSTANCE,
        name: "shutdown",
        maxGuestPacketBytes: IC_MAX_PACKET,
      },
      IcMessageType.Shutdown,
      [
        { major: 3, minor: 2 },
        { major: 3, minor: 1 },
        { major: 3, minor: 0 },
        { major: 1, minor: 0 },
      ],
      clock,
    );
  }

  /**
   * Asks the guest to shut down (or restart) in an orderly way; `done` gets its answer. False when the IC is
   * not ready (no guest driver) or a request is in flight: the caller then turns the VM off or waits.
   */
  request(
    kind: ShutdownKind,
    done: (answer: ShutdownAnswer) => void = () => undefined,
    force = false,
  ): boolean {
    const body = new Uint8Array(SHUTDOWN_BODY);
    const v = new DataView(body.buffer);
    v.setUint32(0, REASON_PLANNED, true);
    v.setUint32(4, 0, true);
    v.setUint32(8, (kind === "restart" ? 2 : 0) | (force ? 1 : 0), true);
    const sent = this.transact(body, (r) => {
      this.lastAnswer = r === null ? "no-answer" : r.status === HV_S_OK ? "accepted" : "refused";
      done(this.lastAnswer);
    });
    if (sent) this.requested++;
    return sent;
  }

  inspect(): IcInspection & { requested: number; lastAnswer: ShutdownAnswer | null } {
    return { ...this.inspectIc(), requested: this.requested, lastAnswer: this.lastAnswer };
  }
}

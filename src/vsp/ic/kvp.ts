// Owns: the KVP (data exchange) IC: reading the pairs the guest publishes (its intrinsic pool: host name, OS
// name and version, IP addresses; and its guest pool) by enumeration, and pushing host pairs into the pool the
// guest reads (external pool), one transaction at a time from a bounded queue.
// Must not: trust the sizes in a guest answer (key and value sizes are bounded by the message and the
// protocol's 512 / 2048 bytes before decoding), keep more than a bounded number of guest pairs, or block the
// other ICs while the guest has no KVP daemon (Linux answers even the negotiation only once hv_kvp_daemon runs).
// Spec: ../shared/research/hyperv-linux-guest-checklist.md 9.6 (Linux 6.1 drivers/hv/hv_kvp.c,
// include/uapi/linux/hyperv.h struct hv_kvp_msg, hv_kvp_exchg_msg_value; tools/hv/hv_kvp_daemon.c pools).

import { guidConstant } from "../../support/ms-guid.js";
import { type ChannelOfferer, HV_S_OK, type IcInspection, IcMessageType, IcService } from "./framework.js";
import { DOUBLE_ZERO } from "../../support/heap-number.js";

export const KVP_CLASS = guidConstant("{a9a0f4e7-5a45-4d96-b827-8a841e8c03e6}");
export const KVP_INSTANCE = guidConstant("{6ecee7ec-eadc-405c-bfb0-a6356e6ac1d7}");
/** hv_kvp reads each packet into a 16 KiB buffer. */
export const KVP_MAX_PACKET = 16384;
const OP_SET = 1;
const OP_ENUMERATE = 3;
/** Pools (enum hv_kvp_exchg_pool): the host writes EXTERNAL, reads GUEST and AUTO (the daemon's intrinsic items). */
export const POOL_EXTERNAL = 0;
export const POOL_GUEST = 1;
export const POOL_AUTO = 2;
const REG_SZ = 1;
const MAX_KEY_BYTES = 512;
const MAX_VALUE_BYTES = 2048;
/** hv_kvp_msg header (4) + the largest body the host uses (enumerate: 4 + 2572). */
const KVP_BODY = 2580;
/** Pairs kept per guest pool; an enumeration stops there. */
export const KVP_MAX_PAIRS = 256;
/** Host operations waiting for their turn. */
export const KVP_QUEUE_LIMIT = 64;
/** The guest's pools are enumerated again this often. */
export const KVP_REFRESH_NS = 30_000_000_000;

type KvpOp = { kind: "set"; key: string; value: string } | { kind: "enumerate"; pool: number; index: number };

const utf16 = new TextDecoder("utf-16le", { fatal: false });

function encodeUtf16z(text: string, limit: number): Uint8Array | null {
  const bytes = new Uint8Array((text.length + 1) * 2);
  for (let i = 0; i < text.length; i++) {
    bytes[i * 2] = text.charCodeAt(i) & 0xff;
    bytes[i * 2 + 1] = text.charCodeAt(i) >>> 8;
  }
  return bytes.length <= limit ? bytes : null;
}

/** A UTF-16LE string of `size` bytes (clamped to `limit` and to the message), without trailing NULs. */
function decodeUtf16(body: Uint8Array, at: number, size: number, limit: number): string {
  const n = Math.min(size, limit, Math.max(0, body.length - at)) & ~1;
  return utf16.decode(body.subarray(at, at + n)).replace(/\0[^]*$/, "");
}

export class KvpIc extends IcService {
  /** The guest's intrinsic items (pool AUTO): FullyQualifiedDomainName, OSName, OSVersion, NetworkAddressIPv4... */
  readonly intrinsic = new Map<string, string>();
  /** The guest pool (pairs the guest's own software published). */
  readonly guest = new Map<string, string>();
  pushed = 0;
  pushFailures = 0;
  enumerations = 0;
  private readonly queue: KvpOp[] = [];
  private nextRefreshNs = DOUBLE_ZERO;

  constructor(offerer: ChannelOfferer, clock: () => number) {
    super(
      offerer,
      { classId: KVP_CLASS, instanceId: KVP_INSTANCE, name: "kvp", maxGuestPacketBytes: KVP_MAX_PACKET },
      IcMessageType.KvpExchange,
      [
        { major: 4, minor: 0 },
        { major: 3, minor: 0 },
      ],
      clock,
    );
  }

  /**
   * Queues a pair for the guest's external pool (the guest reads it from /var/lib/hyperv/.kvp_pool_0). False
   * when the key or value is too long for the protocol or the queue is full.
   */
  set(key: string, value: string): boolean {
    if (key.length === 0 || encodeUtf16z(key, MAX_KEY_BYTES) === null) return false;
    if (encodeUtf16z(value, MAX_VALUE_BYTES) === null || this.queue.length >= KVP_QUEUE_LIMIT) return false;
    this.queue.push({ kind: "set", key, value });
    this.tick(this.clock());
    return true;
  }

  /** Queues a fresh enumeration of the guest's pools. */
  refresh(): void {
    for (const pool of [POOL_AUTO, POOL_GUEST]) {
      if (
        this.queue.length < KVP_QUEUE_LIMIT &&
        !this.queue.some((o) => o.kind === "enumerate" && o.pool === pool)
      ) {
        this.queue.push({ kind: "enumerate", pool, index: 0 });
      }
    }
    this.tick(this.clock());
  }

  protected override ready(): void {
    this.nextRefreshNs = 0;
    this.tick(this.clock());
  }

  override nextDeadlineNs(): number {
    if (this.state !== "ready") return super.nextDeadlineNs();
    const queued = this.idle && this.queue.length > 0 ? 0 : Infinity;
    return Math.min(super.nextDeadlineNs(), this.nextRefreshNs, queued);
  }

  override tick(nowNs: number): void {
    super.tick(nowNs);
    if (this.state !== "ready") return;
    if (nowNs >= this.nextRefreshNs) {
      this.nextRefreshNs = nowNs + KVP_REFRESH_NS;
      this.refresh();
      return;
    }
    const op = this.queue[0];
    if (op === undefined || !this.idle) return;
    if (this.transact(this.body(op), (r) => this.answered(op, r))) this.queue.shift();
  }

  private body(op: KvpOp): Uint8Array {
    const body = new Uint8Array(KVP_BODY);
    const v = new DataView(body.buffer);
    if (op.kind === "set") {
      body[0] = OP_SET;
      body[1] = POOL_EXTERNAL;
      const key = encodeUtf16z(op.key, MAX_KEY_BYTES)!;
      const value = encodeUtf16z(op.value, MAX_VALUE_BYTES)!;
      v.setUint32(4, REG_SZ, true);
      v.setUint32(8, key.length, true);
      v.setUint32(12, value.length, true);
      body.set(key, 16);
      body.set(value, 16 + MAX_KEY_BYTES);
    } else {
      body[0] = OP_ENUMERATE;
      body[1] = op.pool;
      v.setUint32(4, op.index, true);
    }
    return body;
  }

  private answered(op: KvpOp, r: { status: number; body: Uint8Array } | null): void {
    if (op.kind === "set") {
      if (r !== null && r.status === HV_S_OK) this.pushed++;
      else this.pushFailures++;
      return;
    }
    const pairs = op.pool === POOL_AUTO ? this.intrinsic : this.guest;
    // A failure status (HV_S_CONT past the last item) or no answer ends the enumeration.
    if (r === null || r.status !== HV_S_OK || r.body.length < 20) {
      this.enumerations++;
      return;
    }
    const v = new DataView(r.body.buffer, r.body.byteOffset, r.body.length);
    const key = decodeUtf16(r.body, 20, v.getUint32(12, true), MAX_KEY_BYTES);
    const value = decodeUtf16(r.body, 20 + MAX_KEY_BYTES, v.getUint32(16, true), MAX_VALUE_BYTES);
    if (key.length > 0 && (pairs.has(key) || pairs.size < KVP_MAX_PAIRS)) pairs.set(key, value);
    if (op.index + 1 < KVP_MAX_PAIRS && this.queue.length < KVP_QUEUE_LIMIT) {
      // The next index goes first so one enumeration finishes before other work.
      this.queue.unshift({ kind: "enumerate", pool: op.pool, index: op.index + 1 });
    } else {
      this.enumerations++;
    }
  }

  inspect(): IcInspection & {
    intrinsic: Record<string, string>;
    guest: Record<string, string>;
    pushed: number;
    pushFailures: number;
    queued: number;
  } {
    return {
      ...this.inspectIc(),
      intrinsic: Object.fromEntries(this.intrinsic),
      guest: Object.fromEntries(this.guest),
      pushed: this.pushed,
      pushFailures: this.pushFailures,
      queued: this.queue.length,
    };
  }
}

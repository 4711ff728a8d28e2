// Owns: the storage VSP: the synthetic SCSI controller's VMBus channel as storvsc (Linux's hv_storvsc) speaks
// to it: the initialization handshake (BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION for each version Linux
// 6.1 tries, QUERY_PROPERTIES, END_INITIALIZATION), EXECUTE_SRB with its data in a GPA-direct page list,
// completions carrying SRB status, SCSI status, sense data and the bytes moved, resets, the bus-rescan
// notice (ENUMERATE_BUS) for LUN changes, and flow control: a packet is taken from the ring only when the
// SCSI controller has room for it and no completion is waiting for ring space.
// Must not: reach guest memory except through the page lists the channel validated; let a guest value make
// the host throw or allocate beyond one packet's data; block on a Disk (commands complete later, from their
// promises); offer sub-channels (max_channel_cnt 0: Linux then uses this one channel).
// Spec: Linux 6.1 drivers/scsi/storvsc_drv.c (storvsc_channel_init, storvsc_do_io, storvsc_on_io_completion,
// storvsc_command_completion, storvsc_handle_error: what each SRB status makes Linux do);
// ../shared/research/hyperv-linux-guest-checklist.md 7.1-7.3; the VMBus channel contract in
// ../../vmbus/channel-api.ts.

import type { GuestPageList } from "../../memory/page-list.js";
import type {
  ChannelHandler,
  ReceivedPacket,
  TransactionId,
  VmbusChannel,
  VmbusOffer,
} from "../../vmbus/channel-api.js";
import { COMMANDS } from "./command-table.js";
import type { ScsiController, ScsiResult } from "./scsi-controller.js";
import { ScsiStatus, SenseKey, type DataBuffer } from "./scsi.js";
import {
  CDB_MAX,
  DataIn,
  Operation,
  PKT_OPERATION,
  PROPS_FLAGS,
  PROPS_MAX_CHANNEL_COUNT,
  PROPS_MAX_TRANSFER_BYTES,
  SCSI_CONTROLLER_CLASS,
  SRB_CDB,
  SRB_CDB_LENGTH,
  SRB_DATA_IN,
  SRB_DATA_TRANSFER_LENGTH,
  SRB_LUN,
  SRB_PATH_ID,
  SRB_SCSI_STATUS,
  SRB_SENSE_INFO_LENGTH,
  SRB_SENSE_MAX,
  SRB_SRB_STATUS,
  SRB_TARGET_ID,
  SrbStatus,
  STATUS_INVALID_DEVICE_REQUEST,
  STATUS_INVALID_DEVICE_STATE,
  STATUS_INVALID_PARAMETER,
  STATUS_REVISION_MISMATCH,
  STATUS_SUCCESS,
  STORVSC_MAX_PACKET,
  SUPPORTED_PROTOCOLS,
  VERSION_MAJOR_MINOR,
  VSTOR_PACKET_SIZE,
  vstorPacket,
} from "./vstor-protocol.js";

/** What the VSP needs from the VMBus server: a place to offer its channel. */
export interface ChannelOfferer {
  offer(offer: VmbusOffer, handler: ChannelHandler): VmbusChannel;
}

export interface StorageVspOptions {
  /** The controller's instance GUID (16 bytes, wire order), distinct per controller of a VM. */
  readonly instanceId: Uint8Array;
  /** Name in inspect() (default "storvsp"). */
  readonly name?: string;
}

/** Protocol phase of the current open. */
export type Phase = "closed" | "opened" | "initializing" | "ready";

/** A GPA-direct page list as the SCSI target's DataBuffer: `length` bytes in one direction. */
class PageListData implements DataBuffer {
  constructor(
    private readonly list: GuestPageList | null,
    readonly direction: "in" | "out" | "none",
    readonly length: number,
  ) {}
  write(offset: number, src: Uint8Array): void {
    // The target never goes past `length`, which is within the list; a refusal is a bug, caught as one.
    if (!this.list?.write(offset, src)) throw new Error(`guest buffer refused ${offset}+${src.length}`);
  }
  read(offset: number, dst: Uint8Array): void {
    if (!this.list?.read(offset, dst)) throw new Error(`guest buffer refused ${offset}+${dst.length}`);
  }
}

const NO_TRANSACTION: TransactionId = { lo: 0, hi: 0 };

export class StorageVsp implements ChannelHandler {
  readonly channel: VmbusChannel;
  private phase: Phase = "closed";
  private protocol = 0;
  /** Bumped on every open and close: a command that finishes after its channel closed is not answered. */
  private generation = 0;
  /** Completions that met a full ring, sent (in order) from onWritable before anything new is taken. */
  private readonly backlog: { id: TransactionId; payload: Uint8Array }[] = [];
  private srbsInFlight = 0;
  readonly counters = {
    packets: 0,
    srbs: 0,
    /** Packets refused as malformed (short, unknown operation, bad SRB fields or page lists), by reason. */
    refused: {} as Record<string, number>,
    completionsDeferred: 0,
    completionsDropped: 0,
    resets: 0,
  };

  constructor(
    server: ChannelOfferer,
    readonly controller: ScsiController,
    options: StorageVspOptions,
  ) {
    this.channel = server.offer(
      {
        classId: SCSI_CONTROLLER_CLASS,
        instanceId: options.instanceId,
        name: options.name ?? "storvsp",
        maxGuestPacketBytes: STORVSC_MAX_PACKET,
      },
      this,
    );
  }

  /** The protocol phase of the current open ("closed" while the guest has the channel closed). */
  get state(): Phase {
    return this.phase;
  }

  /** SRBs handed to the controller and not completed yet. */
  get srbsRunning(): number {
    return this.srbsInFlight;
  }

  /** The negotiated vstor protocol version (major << 8 | minor), 0 before negotiation. */
  get protocolVersion(): number {
    return this.protocol;
  }

  onOpen(): boolean {
    this.generation++;
    this.phase = "opened";
    this.protocol = 0;
    this.backlog.length = 0;
    return true;
  }

  onClose(): void {
    this.generation++;
    this.phase = "closed";
    this.backlog.length = 0;
  }

  onReadable(): void {
    this.pump();
  }

  onWritable(): void {
    while (this.backlog.length > 0) {
      const next = this.backlog[0]!;
      const status = this.channel.sendCompletion(next.id, next.payload);
      if (status === "full") return;
      if (status !== "ok") this.counters.completionsDropped++;
      this.backlog.shift();
    }
    this.pump();
  }

  /**
   * Tells the guest the LUNs changed (a disk attached or detached, a medium swapped): storvsc rescans the
   * bus. Sent only once the guest finished initialization.
   */
  rescan(): boolean {
    if (this.phase !== "ready") return false;
    return (
      this.channel.sendInband(vstorPacket(Operation.EnumerateBus, STATUS_SUCCESS), NO_TRANSACTION, false) ===
      "ok"
    );
  }

  /** Takes packets while the controller has room and no completion waits for ring space. */
  private pump(): void {
    while (this.phase !== "closed" && this.backlog.length === 0 && this.controller.hasRoom) {
      const p = this.channel.receive();
      if (p === null) return;
      this.counters.packets++;
      this.handle(p);
    }
  }

  private refuse(reason: string): void {
    this.counters.refused[reason] = (this.counters.refused[reason] ?? 0) + 1;
  }

  private complete(p: ReceivedPacket, payload: Uint8Array): void {
    if (!p.completionRequested) return;
    if (this.backlog.length > 0) {
      this.backlog.push({ id: p.transactionId, payload });
      return;
    }
    const status = this.channel.sendCompletion(p.transactionId, payload);
    if (status === "full") {
      this.counters.completionsDeferred++;
      this.backlog.push({ id: p.transactionId, payload });
    } else if (status !== "ok") {
      this.counters.completionsDropped++;
    }
  }

  private handle(p: ReceivedPacket): void {
    // The guest completes nothing we send (ENUMERATE_BUS asks for no completion); anything else must be data.
    if (p.type === "completion" || p.type === "transfer-pages") return this.refuse(`${p.type}-packet`);
    const payload = p.payload;
    if (payload.length < 12) {
      this.refuse("short-packet");
      return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_INVALID_PARAMETER));
    }
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    const op = view.getUint32(PKT_OPERATION, true);
    switch (op) {
      case Operation.BeginInitialization:
        this.phase = "initializing";
        this.protocol = 0;
        return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_SUCCESS));
      case Operation.QueryProtocolVersion: {
        const version = payload.length >= 14 ? view.getUint16(VERSION_MAJOR_MINOR, true) : 0;
        if (this.phase !== "initializing" || !SUPPORTED_PROTOCOLS.includes(version)) {
          if (this.phase !== "initializing") this.refuse("version-outside-initialization");
          return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_REVISION_MISMATCH));
        }
        this.protocol = version;
        const reply = vstorPacket(Operation.CompleteIo, STATUS_SUCCESS);
        new DataView(reply.buffer).setUint16(VERSION_MAJOR_MINOR, version, true);
        return this.complete(p, reply);
      }
      case Operation.QueryProperties: {
        const reply = vstorPacket(Operation.CompleteIo, STATUS_SUCCESS);
        const r = new DataView(reply.buffer);
        r.setUint16(PROPS_MAX_CHANNEL_COUNT, 0, true); // no sub-channels
        r.setUint32(PROPS_FLAGS, 0, true);
        r.setUint32(PROPS_MAX_TRANSFER_BYTES, this.controller.maxTransferBytes, true);
        return this.complete(p, reply);
      }
      case Operation.EndInitialization:
        if (this.phase !== "initializing" || this.protocol === 0) {
          this.refuse("end-without-version");
          return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_INVALID_DEVICE_STATE));
        }
        this.phase = "ready";
        return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_SUCCESS));
      case Operation.ExecuteSrb:
        return this.executeSrb(p);
      case Operation.ResetLun:
      case Operation.ResetAdapter:
      case Operation.ResetBus:
        // Commands in flight complete normally (as Hyper-V does); there is nothing else to reset.
        this.counters.resets++;
        return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_SUCCESS));
      default:
        // CREATE_SUB_CHANNELS (none offered), host-to-guest operations, unknown ones.
        this.refuse(`operation-${op}`);
        return this.complete(p, vstorPacket(Operation.CompleteIo, STATUS_INVALID_DEVICE_REQUEST));
    }
  }

  /** A completion for an SRB refused before it reached the target. */
  private srbRefusal(p: ReceivedPacket, reason: string, status: number, srb: SrbStatus): void {
    this.refuse(reason);
    const reply = vstorPacket(Operation.CompleteIo, status, p.payload);
    reply[SRB_SRB_STATUS] = srb;
    reply[SRB_SCSI_STATUS] = 0;
    reply[SRB_SENSE_INFO_LENGTH] = 0;
    new DataView(reply.buffer).setUint32(SRB_DATA_TRANSFER_LENGTH, 0, true);
    this.complete(p, reply);
  }

  private executeSrb(p: ReceivedPacket): void {
    if (this.phase !== "ready")
      return this.srbRefusal(p, "srb-before-init", STATUS_INVALID_DEVICE_STATE, SrbStatus.Error);
    if (p.payload.length < VSTOR_PACKET_SIZE) {
      return this.srbRefusal(p, "short-srb", STATUS_INVALID_PARAMETER, SrbStatus.InvalidRequest);
    }
    const request = p.payload.slice(0, VSTOR_PACKET_SIZE);
    const view = new DataView(request.buffer);
    const cdbLength = request[SRB_CDB_LENGTH]!;
    const transfer = view.getUint32(SRB_DATA_TRANSFER_LENGTH, true);
    if (cdbLength === 0 || cdbLength > CDB_MAX) {
      return this.srbRefusal(p, "cdb-length", STATUS_INVALID_PARAMETER, SrbStatus.InvalidRequest);
    }
    const cdb = request.slice(SRB_CDB, SRB_CDB + cdbLength);
    let list: GuestPageList | null = null;
    if (p.type === "gpa-direct") {
      const built = this.channel.buffer(p.ranges);
      if (typeof built === "string") {
        return this.srbRefusal(p, `page-list-${built}`, STATUS_INVALID_PARAMETER, SrbStatus.InvalidRequest);
      }
      list = built;
    }
    if (transfer > (list?.length ?? 0)) {
      return this.srbRefusal(p, "transfer-beyond-buffer", STATUS_INVALID_PARAMETER, SrbStatus.InvalidRequest);
    }
    const dataIn = request[SRB_DATA_IN];
    const direction =
      transfer === 0 ? "none" : dataIn === DataIn.Read ? "in" : dataIn === DataIn.Write ? "out" : "none";
    // The SRB's direction must agree with the command's (the table says which way its data goes).
    const row = COMMANDS.get(cdb[0]!);
    if (row && direction !== "none" && row.direction !== direction) {
      return this.srbRefusal(p, "direction", STATUS_INVALID_PARAMETER, SrbStatus.InvalidRequest);
    }
    const senseRoom = Math.min(SRB_SENSE_MAX, request[SRB_SENSE_INFO_LENGTH]!);
    const generation = this.generation;
    this.counters.srbs++;
    this.srbsInFlight++;
    void this.controller
      .execute(
        { path: request[SRB_PATH_ID]!, target: request[SRB_TARGET_ID]!, lun: request[SRB_LUN]! },
        cdb,
        new PageListData(list, direction, direction === "none" ? 0 : transfer),
      )
      .then((result) => {
        this.srbsInFlight--;
        if (generation !== this.generation) return; // the channel closed (or reopened) meanwhile
        this.complete(p, srbCompletion(request, result, senseRoom));
        this.pump();
      });
  }

  inspect(): Record<string, unknown> {
    return {
      relid: this.channel.relid,
      phase: this.phase,
      protocol: this.protocol === 0 ? null : `${this.protocol >> 8}.${this.protocol & 0xff}`,
      srbsInFlight: this.srbsInFlight,
      backlog: this.backlog.length,
      counters: { ...this.counters, refused: { ...this.counters.refused } },
      controller: this.controller.inspect(),
    };
  }
}

/**
 * The completion of an SRB the target answered. SRB status as storvsc reads it: SUCCESS (data moved as
 * `data_transfer_length` says), DATA_OVERRUN (the buffer was short: what moved is still reported), ERROR or
 * INVALID_REQUEST with AUTOSENSE_VALID for CHECK CONDITION (Linux hands the sense to the SCSI midlayer),
 * INVALID_LUN for an address without a logical unit (Linux removes that LUN), BUSY for TASK SET FULL.
 */
function srbCompletion(request: Uint8Array, result: ScsiResult, senseRoom: number): Uint8Array {
  const reply = vstorPacket(Operation.CompleteIo, STATUS_SUCCESS, request);
  const view = new DataView(reply.buffer);
  reply.fill(0, SRB_CDB, SRB_CDB + SRB_SENSE_MAX);
  reply[SRB_SCSI_STATUS] = result.status;
  reply[SRB_SENSE_INFO_LENGTH] = 0;
  let srb: number;
  if (result.noLun) {
    srb = SrbStatus.InvalidLun;
  } else if (result.status === ScsiStatus.Good) {
    srb = result.overrun ? SrbStatus.DataOverrun : SrbStatus.Success;
  } else if (result.status === ScsiStatus.CheckCondition && result.sense) {
    const key = result.sense[2]! & 0x0f;
    const n = Math.min(senseRoom, result.sense.length);
    reply.set(result.sense.subarray(0, n), SRB_CDB);
    reply[SRB_SENSE_INFO_LENGTH] = n;
    srb =
      (key === SenseKey.IllegalRequest ? SrbStatus.InvalidRequest : SrbStatus.Error) |
      (n > 0 ? SrbStatus.AutosenseValid : 0);
  } else {
    srb = SrbStatus.Busy;
  }
  reply[SRB_SRB_STATUS] = srb;
  view.setUint32(SRB_DATA_TRANSFER_LENGTH, result.transferred, true);
  return reply;
}

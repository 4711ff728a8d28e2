// Owns: the numbers of the storvsc/storvsp wire protocol: the SCSI controller's class GUID, the 64-byte
// vstor_packet and its vmscsi_request / channel-properties / protocol-version layouts, operations, packet
// flags, protocol versions, SRB status codes and flags, the NT status values the host answers with.
// Must not: contain behaviour beyond building and reading those layouts; know VMBus or SCSI semantics.
// Spec: Linux 6.1 drivers/scsi/storvsc_drv.c (struct vstor_packet, vmscsi_request with the win8 extension,
// vmstorage_channel_properties, vmstorage_protocol_version, enum vstor_packet_operation, SRB_STATUS_*,
// SRB_FLAGS_*); include/linux/hyperv.h (HV_SCSI_GUID); ../shared/research/hyperv-linux-guest-checklist.md 7.1.

import { guidConstant } from "../../support/ms-guid.js";

/** HV_SCSI_GUID: the synthetic SCSI controller's device class. */
export const SCSI_CONTROLLER_CLASS = guidConstant("{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}");

/** Every vstor_packet is 64 bytes since Windows 8 (vmscsi_request grew its win8 extension). */
export const VSTOR_PACKET_SIZE = 64;
/** storvsc's max_pkt_size: the VMBus descriptor and one vstor_packet. */
export const STORVSC_MAX_PACKET = 16 + VSTOR_PACKET_SIZE;

export const enum Operation {
  CompleteIo = 1,
  RemoveDevice = 2,
  ExecuteSrb = 3,
  ResetLun = 4,
  ResetAdapter = 5,
  ResetBus = 6,
  BeginInitialization = 7,
  EndInitialization = 8,
  QueryProtocolVersion = 9,
  QueryProperties = 10,
  EnumerateBus = 11,
  FcHbaData = 12,
  CreateSubChannels = 13,
}

/** vstor_packet.flags bit 0. */
export const REQUEST_COMPLETION_FLAG = 0x1;

/** Protocol versions Linux 6.1 tries, newest first (major << 8 | minor): WIN10 6.2, WIN8.1 6.0, WIN8 5.1. */
export const PROTOCOL_WIN10 = 0x0602;
export const PROTOCOL_WIN8_1 = 0x0600;
export const PROTOCOL_WIN8 = 0x0501;
export const SUPPORTED_PROTOCOLS: readonly number[] = [PROTOCOL_WIN10, PROTOCOL_WIN8_1, PROTOCOL_WIN8];

/** NT status values in vstor_packet.status. */
export const STATUS_SUCCESS = 0x00000000;
export const STATUS_INVALID_PARAMETER = 0xc000000d;
export const STATUS_INVALID_DEVICE_REQUEST = 0xc0000010;
export const STATUS_REVISION_MISMATCH = 0xc0000059;
export const STATUS_INVALID_DEVICE_STATE = 0xc0000184;

/** SRB status codes (the low 6 bits) and flags (the top 2). */
export const enum SrbStatus {
  Success = 0x01,
  Busy = 0x05,
  Error = 0x04,
  InvalidRequest = 0x06,
  InvalidLun = 0x20,
  DataOverrun = 0x12,
  AutosenseValid = 0x80,
}

/** vmscsi_request.data_in. */
export const enum DataIn {
  Write = 0,
  Read = 1,
  Unknown = 2,
}

/** Offsets in the 64-byte vstor_packet. */
export const PKT_OPERATION = 0;
export const PKT_FLAGS = 4;
export const PKT_STATUS = 8;
/** vmscsi_request (the union at 12). */
export const SRB_LENGTH = 12;
export const SRB_SRB_STATUS = 14;
export const SRB_SCSI_STATUS = 15;
export const SRB_PORT = 16;
export const SRB_PATH_ID = 17;
export const SRB_TARGET_ID = 18;
export const SRB_LUN = 19;
export const SRB_CDB_LENGTH = 20;
export const SRB_SENSE_INFO_LENGTH = 21;
export const SRB_DATA_IN = 22;
export const SRB_DATA_TRANSFER_LENGTH = 24;
/** The CDB (16 bytes) in a request, the sense data (up to 20 bytes) in a completion. */
export const SRB_CDB = 28;
export const SRB_SENSE_MAX = 20;
export const CDB_MAX = 16;
/** vmstorage_channel_properties (the union at 12). */
export const PROPS_MAX_CHANNEL_COUNT = 16;
export const PROPS_FLAGS = 20;
export const PROPS_MAX_TRANSFER_BYTES = 24;
/** vmstorage_protocol_version (the union at 12). */
export const VERSION_MAJOR_MINOR = 12;

/** A 64-byte vstor_packet with `operation` and `status`, the rest zero (or copied from `base`). */
export function vstorPacket(operation: Operation, status: number, base?: Uint8Array): Uint8Array {
  const b = new Uint8Array(VSTOR_PACKET_SIZE);
  if (base) b.set(base.subarray(0, VSTOR_PACKET_SIZE));
  const v = new DataView(b.buffer);
  v.setUint32(PKT_OPERATION, operation, true);
  v.setUint32(PKT_FLAGS, 0, true);
  v.setUint32(PKT_STATUS, status >>> 0, true);
  return b;
}

// Owns: the numbers of the VMBus wire protocol the server and its tests share: channel message types and the
// byte offsets and sizes of each message, protocol versions, connection ids, the SynIC SINT and message type
// VMBus uses, ring-buffer header offsets, packet types and descriptor layout.
// Must not: contain behaviour beyond little-endian field helpers; know any device (class GUIDs belong to VSPs).
// Spec: Linux 6.1 include/linux/hyperv.h (struct vmbus_channel_*, hv_ring_buffer, vmpacket_descriptor),
// drivers/hv/connection.c (versions, connection ids); ../shared/research/hyperv-linux-guest-checklist.md
// sections 4, 6.1-6.4 (offsets computed there by compiling the structs).

/** VMBus messages use SynIC SINT 2 (VMBUS_MESSAGE_SINT) and HV message type 1. */
export const VMBUS_SINT = 2;
export const VMBUS_HV_MESSAGE_TYPE = 1;

/** The guest posts channel messages to these connection ids (4 for InitiateContact of versions >= 5.0). */
export const MESSAGE_CONNECTION_ID = 1;
export const MESSAGE_CONNECTION_ID_4 = 4;

/** Protocol versions, (major << 16) | minor, as Linux 6.1 offers them newest first. */
export const VERSION_WIN8 = 0x00020004;
export const VERSION_WIN8_1 = 0x00030000;
export const VERSION_WIN10 = 0x00040000;
export const VERSION_WIN10_V4_1 = 0x00040001;
export const VERSION_WIN10_V5 = 0x00050000;
export const VERSION_WIN10_V5_1 = 0x00050001;
export const VERSION_WIN10_V5_2 = 0x00050002;
export const VERSION_WIN10_V5_3 = 0x00050003;
export const SUPPORTED_VERSIONS: readonly number[] = [
  VERSION_WIN10_V5_3,
  VERSION_WIN10_V5_2,
  VERSION_WIN10_V5_1,
  VERSION_WIN10_V5,
  VERSION_WIN10_V4_1,
  VERSION_WIN10,
  VERSION_WIN8_1,
  VERSION_WIN8,
];

export function formatVersion(v: number): string {
  return `${v >>> 16}.${v & 0xffff}`;
}

/** Channel message types (enum vmbus_channel_message_type). */
export const enum Msg {
  Invalid = 0,
  OfferChannel = 1,
  RescindChannelOffer = 2,
  RequestOffers = 3,
  AllOffersDelivered = 4,
  OpenChannel = 5,
  OpenChannelResult = 6,
  CloseChannel = 7,
  GpadlHeader = 8,
  GpadlBody = 9,
  GpadlCreated = 10,
  GpadlTeardown = 11,
  GpadlTorndown = 12,
  RelidReleased = 13,
  InitiateContact = 14,
  VersionResponse = 15,
  Unload = 16,
  UnloadResponse = 17,
  TlConnectRequest = 21,
  ModifyChannel = 22,
  TlConnectResult = 23,
  ModifyChannelResponse = 24,
}

export const MESSAGE_NAMES: Readonly<Record<number, string>> = {
  1: "OFFERCHANNEL",
  2: "RESCIND_CHANNELOFFER",
  3: "REQUESTOFFERS",
  4: "ALLOFFERS_DELIVERED",
  5: "OPENCHANNEL",
  6: "OPENCHANNEL_RESULT",
  7: "CLOSECHANNEL",
  8: "GPADL_HEADER",
  9: "GPADL_BODY",
  10: "GPADL_CREATED",
  11: "GPADL_TEARDOWN",
  12: "GPADL_TORNDOWN",
  13: "RELID_RELEASED",
  14: "INITIATE_CONTACT",
  15: "VERSION_RESPONSE",
  16: "UNLOAD",
  17: "UNLOAD_RESPONSE",
  21: "TL_CONNECT_REQUEST",
  22: "MODIFYCHANNEL",
  23: "TL_CONNECT_RESULT",
  24: "MODIFYCHANNEL_RESPONSE",
};

/** Every message starts with {u32 msgtype, u32 padding}. */
export const HEADER_SIZE = 8;

/** The smallest payload the server accepts for each guest-to-host message (Linux posts exactly these). */
export const GUEST_MESSAGE_MIN_SIZE: Readonly<Record<number, number>> = {
  [Msg.RequestOffers]: 8,
  [Msg.OpenChannel]: 148,
  [Msg.CloseChannel]: 12,
  [Msg.GpadlHeader]: 20,
  [Msg.GpadlBody]: 16,
  [Msg.GpadlTeardown]: 16,
  [Msg.RelidReleased]: 12,
  [Msg.InitiateContact]: 40,
  [Msg.Unload]: 8,
  [Msg.ModifyChannel]: 16,
};

// ---- INITIATE_CONTACT (G->H) ----
export const IC_VERSION = 8;
export const IC_TARGET_VCPU = 12;
/** Versions >= 5.0: u8 msg_sint here (older versions: the low byte of the interrupt page GPA). */
export const IC_MSG_SINT = 16;
export const IC_MONITOR_PAGE1 = 24;
export const IC_MONITOR_PAGE2 = 32;

// ---- VERSION_RESPONSE (H->G, 16 bytes) ----
export const VERSION_RESPONSE_SIZE = 16;
export const VR_SUPPORTED = 8;
export const VR_CONNECTION_STATE = 9;
export const VR_MSG_CONN_ID = 12;

// ---- OFFERCHANNEL (H->G, 196 bytes) ----
export const OFFER_SIZE = 196;
export const OFFER_CLASS = 8;
export const OFFER_INSTANCE = 24;
export const OFFER_FLAGS = 56;
export const OFFER_MMIO_MB = 58;
export const OFFER_USER_DEFINED = 60;
export const USER_DEFINED_SIZE = 120;
export const OFFER_SUBCHANNEL_INDEX = 180;
export const OFFER_RELID = 184;
export const OFFER_MONITOR_ID = 188;
export const OFFER_MONITOR_ALLOCATED = 189;
export const OFFER_DEDICATED_INTERRUPT = 190;
export const OFFER_CONNECTION_ID = 192;
/** chn_flags bit that makes Linux treat an offer as an hv_sock endpoint; never set by this server. */
export const CHANNEL_FLAG_TLNPI_PROVIDER = 0x2000;

// ---- GPADL_HEADER / GPADL_BODY (G->H) ----
export const GH_RELID = 8;
export const GH_GPADL = 12;
export const GH_RANGE_BUFLEN = 16;
export const GH_RANGE_COUNT = 18;
export const GH_RANGES = 20;
export const GB_MSGNUMBER = 8;
export const GB_GPADL = 12;
export const GB_DATA = 16;

// ---- GPADL_CREATED (H->G, 20 bytes), GPADL_TEARDOWN (G->H), GPADL_TORNDOWN (H->G, 12 bytes) ----
export const GPADL_CREATED_SIZE = 20;
export const GPADL_TORNDOWN_SIZE = 12;

// ---- OPENCHANNEL (G->H, 148 bytes) / OPENCHANNEL_RESULT (H->G, 20 bytes) ----
export const OC_RELID = 8;
export const OC_OPENID = 12;
export const OC_GPADL = 16;
export const OC_TARGET_VP = 20;
export const OC_DOWNSTREAM_OFFSET = 24;
export const OC_USER_DATA = 28;
export const OPEN_RESULT_SIZE = 20;

// ---- MODIFYCHANNEL (G->H, 16 bytes) / MODIFYCHANNEL_RESPONSE (H->G, 16 bytes) ----
export const MODIFY_RESPONSE_SIZE = 16;

/** NTSTATUS the server answers failures with (STATUS_UNSUCCESSFUL); Linux treats any non-zero as failure. */
export const STATUS_UNSUCCESSFUL = 0xc0000001;

// ---- ring buffers (struct hv_ring_buffer): one 4 KiB header page, then the data area ----
export const RING_WRITE_INDEX = 0;
export const RING_READ_INDEX = 4;
export const RING_INTERRUPT_MASK = 8;
export const RING_PENDING_SEND_SZ = 12;
export const RING_FEATURE_BITS = 64;
/** feature_bits bit 0: the pending_send_sz protocol is in use. */
export const RING_FEATURE_PENDING_SEND_SZ = 1;
export const RING_HEADER_SIZE = 4096;
/** Every packet in a ring is followed by this u64: the writer's start index in the high half. */
export const RING_TRAILER_SIZE = 8;

// ---- packets (struct vmpacket_descriptor and friends) ----
export const enum PacketType {
  Inband = 0x6,
  TransferPages = 0x7,
  GpaDirect = 0x9,
  Completion = 0xb,
}
export const DESCRIPTOR_SIZE = 16;
export const PACKET_FLAG_COMPLETION_REQUESTED = 1;
/** Transfer-page packets: {desc, u16 set id @16, u8 sender owns @18, u8 reserved, u32 range count @20}. */
export const XFER_HEADER_SIZE = 24;
/** GPA-direct packets: {desc, u32 reserved @16, u32 range count @20}, then the ranges. */
export const GPA_DIRECT_HEADER_SIZE = 24;

export function u64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
}

/** A zeroed message of `size` bytes with `type` in its header, and a view on it. */
export function newMessage(type: Msg, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  return { bytes, view };
}

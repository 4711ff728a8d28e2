// Owns: the wire constants of the synthetic NIC: the netvsc device class, NVSP message types, versions,
// field offsets and statuses, and the RNDIS message types, statuses, OIDs and the sizes Linux checks.
// Must not: hold behaviour beyond building a zeroed message of the right size.
// Spec: Linux 6.1 drivers/net/hyperv/hyperv_net.h (struct nvsp_message and its bodies, enum nvsp_msg_type,
// NVSP_PROTOCOL_VERSION_*, struct rndis_message and its bodies, NDIS_OBJECT_TYPE_OFFLOAD),
// include/linux/rndis.h (message types, statuses, OIDs); ../shared/research/hyperv-linux-guest-checklist.md 8.

import { guidConstant } from "../../support/ms-guid.js";

/** The synthetic network adapter's device class (Linux hv_netvsc binds to it). */
export const NETVSC_CLASS = guidConstant("{f8615163-df3e-46c5-913f-f2d2f965ed0e}");

/** Every NVSP message the guest sends is this long (the union's size); replies are padded to it. */
export const NVSP_MESSAGE_SIZE = 40;

export enum NvspType {
  Init = 1,
  InitComplete = 2,
  SendNdisVersion = 100,
  SendReceiveBuffer = 101,
  SendReceiveBufferComplete = 102,
  RevokeReceiveBuffer = 103,
  SendSendBuffer = 104,
  SendSendBufferComplete = 105,
  RevokeSendBuffer = 106,
  SendRndisPacket = 107,
  SendRndisPacketComplete = 108,
  SendNdisConfig = 125,
  VfAssociation = 128,
  SwitchDataPath = 129,
  Subchannel = 133,
}

export const NVSP_STATUS_SUCCESS = 1;
export const NVSP_STATUS_FAILURE = 2;

/** NVSP versions Linux 6.1 offers (newest first it tries 6.1, 6, 5, 4, 2, 1); we accept 2 to 6.1. */
export const NVSP_VERSION_1 = 0x2;
export const NVSP_VERSION_2 = 0x30002;
export const NVSP_VERSION_4 = 0x40000;
export const NVSP_VERSION_5 = 0x50000;
export const NVSP_VERSION_6 = 0x60000;
export const NVSP_VERSION_61 = 0x60001;
export const SUPPORTED_NVSP_VERSIONS = [
  NVSP_VERSION_61,
  NVSP_VERSION_6,
  NVSP_VERSION_5,
  NVSP_VERSION_4,
  NVSP_VERSION_2,
];
/** MDL chain length reported in INIT_COMPLETE (Hyper-V hosts report 34; Linux does not use it). */
export const MAX_MDL_CHAIN = 34;

/** The transfer page set id of the receive buffer (Linux checks every transfer-page packet against it). */
export const RECEIVE_BUFFER_ID = 0xcafe;
/** Sentinel of SEND_RNDIS_PKT: the RNDIS bytes are not in the send buffer. */
export const NO_SECTION = 0xffff_ffff;

/** SEND_RNDIS_PKT body: channel type (0 data, 1 control), section index, section size. */
export const RNDIS_PKT_CHANNEL_TYPE = 4;
export const RNDIS_PKT_SECTION_INDEX = 8;
export const RNDIS_PKT_SECTION_SIZE = 12;
export const CHANNEL_TYPE_DATA = 0;
export const CHANNEL_TYPE_CONTROL = 1;

/** A zeroed NVSP message of `type`, NVSP_MESSAGE_SIZE long. */
export function nvspMessage(type: NvspType): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(NVSP_MESSAGE_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  return { bytes, view };
}

// ---- RNDIS ----

/** `rndis_message` header: u32 type, u32 length. */
export const RNDIS_HEADER_SIZE = 8;
/** `rndis_packet` (after the header): data, OOB and per-packet-info offsets and lengths, vc handle, reserved. */
export const RNDIS_PACKET_SIZE = 36;

export enum RndisType {
  Packet = 0x1,
  Init = 0x2,
  Halt = 0x3,
  Query = 0x4,
  Set = 0x5,
  Reset = 0x6,
  Indicate = 0x7,
  KeepAlive = 0x8,
  InitComplete = 0x8000_0002,
  QueryComplete = 0x8000_0004,
  SetComplete = 0x8000_0005,
  ResetComplete = 0x8000_0006,
  KeepAliveComplete = 0x8000_0008,
}

export const RNDIS_STATUS_SUCCESS = 0;
export const RNDIS_STATUS_FAILURE = 0xc000_0001;
export const RNDIS_STATUS_INVALID_DATA = 0xc001_0015;
export const RNDIS_STATUS_NOT_SUPPORTED = 0xc000_00bb;
export const RNDIS_STATUS_INVALID_LENGTH = 0xc001_0014;
export const RNDIS_STATUS_MEDIA_CONNECT = 0x4001_000b;
export const RNDIS_STATUS_MEDIA_DISCONNECT = 0x4001_000c;

export const NDIS_PACKET_TYPE_DIRECTED = 0x1;
export const NDIS_PACKET_TYPE_MULTICAST = 0x2;
export const NDIS_PACKET_TYPE_ALL_MULTICAST = 0x4;
export const NDIS_PACKET_TYPE_BROADCAST = 0x8;
export const NDIS_PACKET_TYPE_PROMISCUOUS = 0x20;

export enum Oid {
  GenSupportedList = 0x0001_0101,
  GenHardwareStatus = 0x0001_0102,
  GenMediaSupported = 0x0001_0103,
  GenMediaInUse = 0x0001_0104,
  GenMaximumLookahead = 0x0001_0105,
  GenMaximumFrameSize = 0x0001_0106,
  GenLinkSpeed = 0x0001_0107,
  GenTransmitBufferSpace = 0x0001_0108,
  GenReceiveBufferSpace = 0x0001_0109,
  GenTransmitBlockSize = 0x0001_010a,
  GenReceiveBlockSize = 0x0001_010b,
  GenVendorId = 0x0001_010c,
  GenVendorDescription = 0x0001_010d,
  GenCurrentPacketFilter = 0x0001_010e,
  GenCurrentLookahead = 0x0001_010f,
  GenDriverVersion = 0x0001_0110,
  GenMaximumTotalSize = 0x0001_0111,
  GenMacOptions = 0x0001_0113,
  GenMediaConnectStatus = 0x0001_0114,
  GenMaximumSendPackets = 0x0001_0115,
  GenVendorDriverVersion = 0x0001_0116,
  GenReceiveScaleCapabilities = 0x0001_0203,
  GenReceiveScaleParameters = 0x0001_0204,
  GenRndisConfigParameter = 0x0001_021b,
  GenXmitOk = 0x0002_0101,
  GenRcvOk = 0x0002_0102,
  GenXmitError = 0x0002_0103,
  GenRcvError = 0x0002_0104,
  GenRcvNoBuffer = 0x0002_0105,
  GenFriendlyName = 0x0002_0216,
  Ieee8023PermanentAddress = 0x0101_0101,
  Ieee8023CurrentAddress = 0x0101_0102,
  Ieee8023MulticastList = 0x0101_0103,
  Ieee8023MaximumListSize = 0x0101_0104,
  Ieee8023RcvErrorAlignment = 0x0102_0101,
  Ieee8023XmitOneCollision = 0x0102_0102,
  Ieee8023XmitMoreCollisions = 0x0102_0103,
  TcpOffloadParameters = 0xfc01_020c,
  TcpOffloadHardwareCapabilities = 0xfc01_020d,
}

/** NDIS_OBJECT_TYPE_OFFLOAD: the header type Linux requires in the hardware capabilities answer. */
export const NDIS_OBJECT_TYPE_OFFLOAD = 0xa7;
/** sizeof(struct ndis_offload) in Linux 6.1: the NDIS 6.30 layout (6.0 is 112 bytes, 6.1 is 144). */
export const NDIS_OFFLOAD_SIZE = 156;
export const NDIS_OFFLOAD_REVISION = 3;

/** Per-packet information types (rndis_per_packet_info.type) the transmit path looks at. */
export const PPI_TCPIP_CHECKSUM = 0;
export const PPI_IPSEC = 1;
export const PPI_LSO = 2;
export const PPI_IEEE_8021Q = 6;
/** `rndis_per_packet_info`: u32 size, u32 type (bit 31: internal), u32 offset of the value. */
export const PPI_HEADER_SIZE = 12;

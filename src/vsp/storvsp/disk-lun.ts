// Owns: a direct-access logical unit over one Disk, answering as Hyper-V's "Msft Virtual Disk": INQUIRY
// (standard and VPD 00h/80h/83h/B0h/B1h/B2h), READ CAPACITY(10/16) with the image's logical and physical
// sector sizes, MODE SENSE's caching page and write-protect bit, START STOP UNIT (stop = flush) and the
// limits the block commands enforce.
// Must not: hold the Disk's identity lazily (a VHDX changes its DataWriteGuid on the first write; the
// device identifier is fixed when the unit is made), or close the Disk (its owner does).
// Spec: SBC-3 5.16/5.17 (READ CAPACITY(10)/(16): PMI, LBPME, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT),
// SBC-3 6.4.5 (caching mode page 08h: WCE), 6.4.1 (device-specific parameter: WP, DPOFUA), 5.25 (START
// STOP UNIT), 5.13 (PREVENT ALLOW MEDIUM REMOVAL); VPD pages as in ./inquiry.ts.

import type { Disk } from "../../storage/disk.js";
import {
  readBlocks,
  storageSense,
  synchronizeCache,
  unmap,
  writeBlocks,
  writeSame,
  type TransferLimits,
} from "./block-commands.js";
import {
  blockCharacteristicsPage,
  blockLimitsPage,
  deviceIdentificationPage,
  deviceIdFromText,
  idHex,
  inquiry,
  PERIPHERAL_DISK,
  provisioningPage,
  serialNumberPage,
  standardInquiry,
} from "./inquiry.js";
import { modeSense, type ModePage } from "./mode-sense.js";
import {
  be32,
  be64,
  check,
  GOOD,
  invalidFieldInCdb,
  putBe32,
  putBe64,
  type LogicalUnit,
  type Outcome,
  type ScsiCommand,
  type Sense,
} from "./scsi.js";

export const DISK_VENDOR = "Msft";
export const DISK_PRODUCT = "Virtual Disk";
export const DISK_REVISION = "1.0";

/** Hyper-V's bound on one WRITE SAME (bytes), kept so a single command's work stays bounded. */
const MAX_WRITE_SAME_BYTES = 8 * 1024 * 1024;
/** Bound on one UNMAP command: the blocks it may name and its descriptors. */
const MAX_UNMAP_LBA_COUNT = 0x400000;
const MAX_UNMAP_DESCRIPTORS = 256;

export interface DiskLunOptions {
  /** Largest transfer of one command, in bytes (the controller's; a multiple of 4096). */
  readonly maxTransferBytes: number;
  /** 16 bytes for VPD 83h; by default derived from the Disk's identity when the unit is made. */
  readonly deviceId?: Uint8Array;
  /** VPD 80h; by default the device id in hex. */
  readonly serial?: string;
  /** The image's allocation unit in bytes (trims of less may keep data); default one physical sector. */
  readonly unmapGranularityBytes?: number;
}

export class DiskLun implements LogicalUnit {
  readonly kind = "disk";
  readonly limits: TransferLimits;
  private readonly standard: Uint8Array;
  private readonly pages: ReadonlyMap<number, () => Uint8Array>;
  private readonly modePages: ReadonlyMap<number, ModePage>;
  private readonly deviceId: Uint8Array;

  constructor(
    readonly disk: Disk,
    options: DiskLunOptions,
  ) {
    const size = disk.logicalSectorSize;
    this.limits = {
      maxTransferBytes: options.maxTransferBytes,
      maxWriteSameBlocks: Math.floor(MAX_WRITE_SAME_BYTES / size),
      maxUnmapLbaCount: this.canUnmap ? MAX_UNMAP_LBA_COUNT : 0,
      maxUnmapDescriptors: this.canUnmap ? MAX_UNMAP_DESCRIPTORS : 0,
    };
    this.deviceId = options.deviceId ?? deviceIdFromText(disk.identity);
    const serial = options.serial ?? idHex(this.deviceId);
    this.standard = standardInquiry({
      peripheralType: PERIPHERAL_DISK,
      removable: false,
      vendor: DISK_VENDOR,
      product: DISK_PRODUCT,
      revision: DISK_REVISION,
    });
    const perPhysical = Math.max(1, Math.floor(disk.physicalSectorSize / size));
    const granularity = Math.max(
      1,
      Math.floor((options.unmapGranularityBytes ?? disk.physicalSectorSize) / size),
    );
    this.pages = new Map<number, () => Uint8Array>([
      [0x80, () => serialNumberPage(serial)],
      [0x83, () => deviceIdentificationPage(DISK_VENDOR, this.deviceId)],
      [
        0xb0,
        () =>
          blockLimitsPage({
            granularity: perPhysical,
            maxTransferBlocks: Math.floor(this.limits.maxTransferBytes / size),
            unmap: this.canUnmap
              ? {
                  maxLbaCount: this.limits.maxUnmapLbaCount,
                  maxDescriptors: this.limits.maxUnmapDescriptors,
                  granularity,
                }
              : null,
            maxWriteSameBlocks: this.limits.maxWriteSameBlocks,
          }),
      ],
      [0xb1, () => blockCharacteristicsPage()],
      [0xb2, () => provisioningPage(this.blockCount, this.canUnmap)],
    ]);
    this.modePages = new Map<number, ModePage>([[0x08, (pc) => cachingPage(pc)]]);
  }

  /** Trim frees space and changes data, so read-only media cannot do it. */
  get canUnmap(): boolean {
    return !this.disk.readOnly;
  }

  get blockCount(): number {
    return Math.floor(this.disk.capacity / this.disk.logicalSectorSize);
  }

  takeUnitAttention(): Sense | null {
    return null;
  }

  notReady(): Sense | null {
    return null;
  }

  inspect(): Record<string, unknown> {
    return {
      kind: this.kind,
      capacity: this.disk.capacity,
      logicalSectorSize: this.disk.logicalSectorSize,
      physicalSectorSize: this.disk.physicalSectorSize,
      readOnly: this.disk.readOnly,
    };
  }

  inquiry(cmd: ScsiCommand): Outcome {
    return inquiry(cmd, this.standard, PERIPHERAL_DISK, this.pages);
  }

  readCapacity10(cmd: ScsiCommand): Outcome {
    const c = cmd.cdb;
    if ((c[8]! & 0x01) === 0 && be32(c, 2) !== 0) return check(invalidFieldInCdb(2));
    const b = new Uint8Array(8);
    // Beyond 32 bits the answer is FFFFFFFFh, which tells the initiator to use READ CAPACITY(16).
    putBe32(b, 0, Math.min(0xffffffff, Math.max(0, this.blockCount - 1)));
    putBe32(b, 4, this.disk.logicalSectorSize);
    return cmd.dataIn(b, 8);
  }

  /** SERVICE ACTION IN(16): only READ CAPACITY(16) (service action 10h). */
  serviceActionIn16(cmd: ScsiCommand): Outcome {
    const c = cmd.cdb;
    if ((c[1]! & 0x1f) !== 0x10) return check(invalidFieldInCdb(1, 4));
    if ((c[14]! & 0x01) === 0 && be64(c, 2) !== 0) return check(invalidFieldInCdb(2));
    const b = new Uint8Array(32);
    putBe64(b, 0, Math.max(0, this.blockCount - 1));
    putBe32(b, 8, this.disk.logicalSectorSize);
    b[13] = Math.log2(Math.max(1, this.disk.physicalSectorSize / this.disk.logicalSectorSize)) & 0x0f;
    b[14] = this.canUnmap ? 0x80 : 0; // LBPME; LBPRZ stays 0
    return cmd.dataIn(b, be32(c, 10));
  }

  modeSense(cmd: ScsiCommand): Outcome {
    // WP for read-only media; DPOFUA: FUA is honoured (a flush after the write).
    const deviceSpecific = (this.disk.readOnly ? 0x80 : 0) | 0x10;
    return modeSense(cmd, deviceSpecific, this.modePages);
  }

  read(cmd: ScsiCommand): Promise<Outcome> {
    return readBlocks(this.disk, cmd, this.limits);
  }

  write(cmd: ScsiCommand): Promise<Outcome> {
    return writeBlocks(this.disk, cmd, this.limits);
  }

  synchronizeCache(cmd: ScsiCommand): Promise<Outcome> {
    return synchronizeCache(this.disk, cmd);
  }

  writeSame(cmd: ScsiCommand): Promise<Outcome> {
    return writeSame(this.disk, cmd, this.limits);
  }

  unmap(cmd: ScsiCommand): Promise<Outcome> {
    return unmap(this.disk, cmd, this.limits);
  }

  /** A disk cannot load or eject; stopping it makes written data durable (as a power-down would). */
  async startStopUnit(cmd: ScsiCommand): Promise<Outcome> {
    const c = cmd.cdb;
    if (c[4]! & 0x02) return check(invalidFieldInCdb(4, 1)); // LOEJ: the medium is not removable
    const start = (c[4]! & 0x01) !== 0;
    const noFlush = (c[4]! & 0x04) !== 0;
    const powerCondition = c[4]! >> 4;
    if (!start && !noFlush && powerCondition === 0) {
      try {
        await this.disk.flush();
      } catch (e) {
        return check(storageSense(e, true));
      }
    }
    return GOOD;
  }
}

/** Caching mode page (08h, 20 bytes): write cache enabled, so Linux sends SYNCHRONIZE CACHE and FUA. */
function cachingPage(pc: "current" | "changeable" | "default"): Uint8Array {
  const b = new Uint8Array(20);
  b[0] = 0x08;
  b[1] = b.length - 2;
  if (pc !== "changeable") b[2] = 0x04; // WCE; nothing is changeable (no MODE SELECT)
  return b;
}

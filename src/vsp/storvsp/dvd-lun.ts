// Owns: a read-only MMC logical unit (a DVD-ROM drive) whose medium is a 2048-byte-sector Disk (an ISO):
// the medium and tray state, media change (host insert/eject/swap with UNIT ATTENTION and media events,
// guest eject/load and PREVENT ALLOW MEDIUM REMOVAL), and the MMC commands Linux's sr and cdrom drivers send
// at probe, open and mount: READ TOC/PMA/ATIP (formats 0 and 1), GET CONFIGURATION, GET EVENT STATUS
// NOTIFICATION, READ DISC INFORMATION, READ TRACK INFORMATION, MECHANISM STATUS, MODE SENSE page 2Ah,
// READ CAPACITY and READ(10/12/16).
// Must not: write the medium (writes are DATA PROTECT, answered by the command table), close a medium (the
// host gets it back from changeMedium once no command uses it), or let a command see a medium swapped
// under it (each command keeps the medium it started with).
// Spec: MMC-6 6.44 (READ TOC/PMA/ATIP: formats 0000b and 0001b, MSF, the SFF-8020 format in the control
// byte), 6.6 (GET CONFIGURATION: RT, feature header, features 0000h-0003h, 0010h, 001Fh in 5.3), 6.7 (GET
// EVENT STATUS NOTIFICATION, polled, media class 6.7.2.4), 6.22 (READ DISC INFORMATION, standard disc
// information), 6.27 (READ TRACK INFORMATION), 6.11 (MECHANISM STATUS), 7.3 (capabilities page 2Ah, the
// MMC-3 form Linux reads), 6.39/6.40 (START STOP UNIT with LOEJ, PREVENT ALLOW MEDIUM REMOVAL); SPC-4 (UNIT
// ATTENTION 28h/00h on a new medium, NOT READY 3Ah/01h-02h without one).

import type { Disk } from "../../storage/disk.js";
import { readBlocks, type TransferLimits } from "./block-commands.js";
import {
  deviceIdentificationPage,
  deviceIdFromText,
  idHex,
  inquiry,
  PERIPHERAL_CDROM,
  serialNumberPage,
  standardInquiry,
} from "./inquiry.js";
import { modeSense, type ModePage } from "./mode-sense.js";
import {
  be16,
  be32,
  check,
  GOOD,
  invalidFieldInCdb,
  putBe16,
  putBe32,
  ScsiStatus,
  SENSE,
  type LogicalUnit,
  type Outcome,
  type ScsiCommand,
  type Sense,
} from "./scsi.js";

export const DVD_VENDOR = "Msft";
export const DVD_PRODUCT = "Virtual DVD-ROM";
export const DVD_REVISION = "1.0";

const PROFILE_NONE = 0x0000;
const PROFILE_CD_ROM = 0x0008;
const PROFILE_DVD_ROM = 0x0010;

/** MMC-6 table 152: media event codes. */
const enum MediaEvent {
  NoChange = 0,
  NewMedia = 2,
  MediaRemoval = 3,
}

/** Track descriptor control nibble: a data track, recorded uninterrupted (ADR 1, CONTROL 4). */
const ADR_CONTROL_DATA = 0x14;
const LEAD_OUT = 0xaa;

export interface DvdLunOptions {
  readonly maxTransferBytes: number;
  /** 16 bytes for VPD 83h; default derived from `name`. */
  readonly deviceId?: Uint8Array;
  /** A stable name for the drive (the VM's DVD slot), used for the default identifiers. */
  readonly name?: string;
}

export class DvdLun implements LogicalUnit {
  readonly kind = "dvd";
  readonly limits: TransferLimits;
  private current: Disk | null;
  private trayOpen = false;
  private prevent = false;
  private unitAttention: Sense | null = null;
  private mediaEvent = MediaEvent.NoChange;
  /** Commands running per medium, so a swap can hand the old medium back only when none uses it. */
  private readonly users = new Map<Disk, { count: number; idle: (() => void)[] }>();
  private readonly standard: Uint8Array;
  private readonly pages: ReadonlyMap<number, () => Uint8Array>;
  private readonly modePages: ReadonlyMap<number, ModePage>;

  constructor(medium: Disk | null, options: DvdLunOptions) {
    this.current = medium;
    this.limits = {
      maxTransferBytes: options.maxTransferBytes,
      maxWriteSameBlocks: 0,
      maxUnmapLbaCount: 0,
      maxUnmapDescriptors: 0,
    };
    const id = options.deviceId ?? deviceIdFromText(`dvd:${options.name ?? "0"}`);
    this.standard = standardInquiry({
      peripheralType: PERIPHERAL_CDROM,
      removable: true,
      vendor: DVD_VENDOR,
      product: DVD_PRODUCT,
      revision: DVD_REVISION,
    });
    this.pages = new Map<number, () => Uint8Array>([
      [0x80, () => serialNumberPage(idHex(id))],
      [0x83, () => deviceIdentificationPage(DVD_VENDOR, id)],
    ]);
    this.modePages = new Map<number, ModePage>([[0x2a, (pc) => this.capabilitiesPage(pc)]]);
  }

  /** The loaded medium, tray open or closed (null when the drive is empty). */
  get medium(): Disk | null {
    return this.current;
  }

  /** The medium commands can read: loaded and the tray closed. */
  private get ready(): Disk | null {
    return this.trayOpen ? null : this.current;
  }

  /**
   * Host side: loads `next` (null ejects), whatever the guest's PREVENT state (the host owns the drive).
   * Resolves with the previous medium once no command is using it, for the caller to close.
   */
  async changeMedium(next: Disk | null): Promise<Disk | null> {
    const old = this.current;
    this.current = next;
    this.trayOpen = false;
    if (next) {
      this.unitAttention = SENSE.mediumChanged;
      this.mediaEvent = MediaEvent.NewMedia;
    } else if (old) {
      this.mediaEvent = MediaEvent.MediaRemoval;
    }
    if (old && old !== next) {
      const use = this.users.get(old);
      if (use && use.count > 0) await new Promise<void>((resolve) => use.idle.push(resolve));
    }
    return old === next ? null : old;
  }

  takeUnitAttention(): Sense | null {
    const s = this.unitAttention;
    this.unitAttention = null;
    return s;
  }

  notReady(): Sense | null {
    if (this.ready) return null;
    return this.trayOpen ? SENSE.mediumNotPresentTrayOpen : SENSE.mediumNotPresentTrayClosed;
  }

  inspect(): Record<string, unknown> {
    return {
      kind: this.kind,
      medium: this.current ? { capacity: this.current.capacity, identity: this.current.identity } : null,
      trayOpen: this.trayOpen,
      preventRemoval: this.prevent,
      unitAttentionPending: this.unitAttention !== null,
      mediaEvent: this.mediaEvent,
    };
  }

  /** Runs fn on the ready medium, counting it as in use; NOT READY without one. */
  private async withMedium(fn: (disk: Disk) => Promise<Outcome> | Outcome): Promise<Outcome> {
    const disk = this.ready;
    if (!disk) return check(this.notReady()!);
    let use = this.users.get(disk);
    if (!use) this.users.set(disk, (use = { count: 0, idle: [] }));
    use.count++;
    try {
      return await fn(disk);
    } finally {
      if (--use.count === 0) {
        this.users.delete(disk);
        for (const wake of use.idle) wake();
      }
    }
  }

  private blocks(disk: Disk): number {
    return Math.floor(disk.capacity / disk.logicalSectorSize);
  }

  inquiry(cmd: ScsiCommand): Outcome {
    return inquiry(cmd, this.standard, PERIPHERAL_CDROM, this.pages);
  }

  read(cmd: ScsiCommand): Promise<Outcome> {
    return this.withMedium((disk) => readBlocks(disk, cmd, this.limits));
  }

  readCapacity(cmd: ScsiCommand): Promise<Outcome> {
    return this.withMedium((disk) => {
      const b = new Uint8Array(8);
      putBe32(b, 0, Math.min(0xffffffff, Math.max(0, this.blocks(disk) - 1)));
      putBe32(b, 4, disk.logicalSectorSize);
      return cmd.dataIn(b, 8);
    });
  }

  modeSense(cmd: ScsiCommand): Outcome {
    return modeSense(cmd, 0, this.modePages);
  }

  /** MMC-3 capabilities and mechanical status page (2Ah): reads DVD-ROM, writes nothing, tray, lock. */
  private capabilitiesPage(pc: "current" | "changeable" | "default"): Uint8Array {
    const b = new Uint8Array(22);
    b[0] = 0x2a;
    b[1] = b.length - 2;
    if (pc === "changeable") return b;
    b[2] = 0x0b; // reads CD-R, CD-RW, DVD-ROM
    b[3] = 0x00; // writes nothing
    b[6] = (1 << 5) | 0x08 | 0x01 | (this.prevent && pc === "current" ? 0x02 : 0); // tray, eject, lock
    putBe16(b, 8, 176 * 24); // maximum read speed (kB/s), shown by Linux as "24x"
    putBe16(b, 14, 176 * 24);
    return b;
  }

  /** START STOP UNIT: LOEJ with START clear opens the tray (unless prevented), with START set closes it. */
  startStopUnit(cmd: ScsiCommand): Outcome {
    const c = cmd.cdb;
    if (!(c[4]! & 0x02) || c[4]! >> 4 !== 0) return GOOD; // spin up/down and power conditions: nothing to do
    if (c[4]! & 0x01) {
      if (this.trayOpen) {
        this.trayOpen = false;
        if (this.current) {
          this.unitAttention = SENSE.mediumChanged;
          this.mediaEvent = MediaEvent.NewMedia;
        }
      }
      return GOOD;
    }
    if (this.prevent) return check(SENSE.mediumRemovalPrevented);
    if (!this.trayOpen) {
      this.trayOpen = true;
      if (this.current) this.mediaEvent = MediaEvent.MediaRemoval;
    }
    return GOOD;
  }

  preventAllowMediumRemoval(cmd: ScsiCommand): Outcome {
    this.prevent = (cmd.cdb[4]! & 0x01) !== 0;
    return GOOD;
  }

  /** READ TOC/PMA/ATIP: one data track and the lead-out, one session. */
  readToc(cmd: ScsiCommand): Promise<Outcome> {
    return this.withMedium((disk) => {
      const c = cmd.cdb;
      const msf = (c[1]! & 0x02) !== 0;
      // A format of 0 in byte 2 defers to the SFF-8020 format in the control byte's top bits (Linux's
      // multisession query uses it).
      const format = (c[2]! & 0x0f) !== 0 ? c[2]! & 0x0f : c[9]! >> 6;
      const allocation = be16(c, 7);
      const address = (lba: number): number => (msf ? toMsf(lba) : lba);
      if (format === 0) {
        const start = c[6]!;
        if (start > 1 && start !== LEAD_OUT) return check(invalidFieldInCdb(6));
        const tracks: [number, number][] = [];
        if (start <= 1) tracks.push([1, 0]);
        tracks.push([LEAD_OUT, this.blocks(disk)]);
        const b = new Uint8Array(4 + 8 * tracks.length);
        putBe16(b, 0, b.length - 2);
        b[2] = 1;
        b[3] = 1;
        tracks.forEach(([n, lba], i) => {
          b[4 + i * 8 + 1] = ADR_CONTROL_DATA;
          b[4 + i * 8 + 2] = n;
          putBe32(b, 4 + i * 8 + 4, address(lba));
        });
        return cmd.dataIn(b, allocation);
      }
      if (format === 1) {
        const b = new Uint8Array(12);
        putBe16(b, 0, 10);
        b[2] = 1; // first complete session
        b[3] = 1; // last complete session
        b[5] = ADR_CONTROL_DATA;
        b[6] = 1; // first track in the last session
        putBe32(b, 8, address(0));
        return cmd.dataIn(b, allocation);
      }
      return check(invalidFieldInCdb(2, 3));
    });
  }

  /** GET CONFIGURATION (RT 0: features from the starting number; 1: current ones; 2: that one feature). */
  getConfiguration(cmd: ScsiCommand): Outcome {
    const c = cmd.cdb;
    const rt = c[1]! & 0x03;
    if (rt === 3) return check(invalidFieldInCdb(1, 1));
    const from = be16(c, 2);
    const loaded = this.ready !== null;
    const features = this.features(loaded).filter((f) =>
      rt === 2 ? f.code === from : f.code >= from && (rt === 0 || f.current),
    );
    const length = features.reduce((n, f) => n + 4 + f.data.length, 8);
    const b = new Uint8Array(length);
    putBe32(b, 0, length - 4);
    putBe16(b, 6, loaded ? PROFILE_DVD_ROM : PROFILE_NONE);
    let at = 8;
    for (const f of features) {
      putBe16(b, at, f.code);
      b[at + 2] = (f.version << 2) | (f.persistent ? 0x02 : 0) | (f.current ? 0x01 : 0);
      b[at + 3] = f.data.length;
      b.set(f.data, at + 4);
      at += 4 + f.data.length;
    }
    return cmd.dataIn(b, be16(c, 7));
  }

  private features(
    loaded: boolean,
  ): { code: number; version: number; persistent: boolean; current: boolean; data: Uint8Array }[] {
    const profiles = new Uint8Array(8);
    putBe16(profiles, 0, PROFILE_DVD_ROM);
    profiles[2] = loaded ? 0x01 : 0;
    putBe16(profiles, 4, PROFILE_CD_ROM);
    const core = new Uint8Array(8);
    putBe32(core, 0, 0x00000001); // physical interface: SCSI family
    core[4] = 0x01; // DBE
    const morphing = Uint8Array.of(0x02, 0, 0, 0); // OCEvent: operational changes are reported by events
    const removable = Uint8Array.of((1 << 5) | 0x08 | 0x01, 0, 0, 0); // tray, eject, lock
    const randomReadable = new Uint8Array(8);
    putBe32(randomReadable, 0, 2048);
    putBe16(randomReadable, 4, 16); // blocking: a DVD ECC block is 16 sectors
    const dvdRead = new Uint8Array(4);
    return [
      { code: 0x0000, version: 0, persistent: true, current: true, data: profiles },
      { code: 0x0001, version: 2, persistent: true, current: true, data: core },
      { code: 0x0002, version: 1, persistent: true, current: true, data: morphing },
      { code: 0x0003, version: 0, persistent: true, current: true, data: removable },
      { code: 0x0010, version: 0, persistent: false, current: loaded, data: randomReadable },
      { code: 0x001f, version: 0, persistent: false, current: loaded, data: dvdRead },
    ];
  }

  /** GET EVENT STATUS NOTIFICATION, polled only; the media class reports and clears the pending event. */
  getEventStatusNotification(cmd: ScsiCommand): Outcome {
    const c = cmd.cdb;
    if (!(c[1]! & 0x01)) return check(invalidFieldInCdb(1, 0)); // asynchronous notification unsupported
    const allocation = be16(c, 7);
    if (!(c[4]! & 0x10)) {
      // No class we support was asked for: NEA with the supported-class mask.
      return cmd.dataIn(Uint8Array.of(0, 2, 0x80, 0x10), allocation);
    }
    const b = new Uint8Array(8);
    putBe16(b, 0, 6);
    b[2] = 0x04; // media class
    b[3] = 0x10; // supported: media
    b[4] = this.mediaEvent;
    b[5] = (this.ready ? 0x02 : 0) | (this.trayOpen ? 0x01 : 0);
    const out = cmd.dataIn(b, allocation);
    // The event is consumed once the initiator could see it.
    if (out.status === ScsiStatus.Good && out.transferred >= 5) this.mediaEvent = MediaEvent.NoChange;
    return out;
  }

  readDiscInformation(cmd: ScsiCommand): Promise<Outcome> {
    return this.withMedium(() => {
      const c = cmd.cdb;
      if (c[1]! & 0x07) return check(invalidFieldInCdb(1, 2)); // only standard disc information
      const b = new Uint8Array(34);
      putBe16(b, 0, b.length - 2);
      b[2] = 0x0e; // not erasable, last session complete, disc finalized
      b[3] = 1; // first track on disc
      b[4] = 1; // sessions
      b[5] = 1; // first track in the last session
      b[6] = 1; // last track in the last session
      b[7] = 0x20; // URU: unrestricted use
      putBe32(b, 16, 0xffffffff); // no next session lead-in
      putBe32(b, 20, 0xffffffff); // no last possible lead-out
      return cmd.dataIn(b, be16(c, 7));
    });
  }

  readTrackInformation(cmd: ScsiCommand): Promise<Outcome> {
    return this.withMedium((disk) => {
      const c = cmd.cdb;
      const type = c[1]! & 0x03;
      const n = be32(c, 2);
      const blocks = this.blocks(disk);
      // Type 0: the track holding LBA n; 1: track n; 2: the first track of session n. One of each here.
      if (type === 3) return check(invalidFieldInCdb(1, 1));
      if (type === 0 && n >= blocks) return check(SENSE.lbaOutOfRange);
      if (type !== 0 && n !== 1) return check(invalidFieldInCdb(2));
      const b = new Uint8Array(48);
      putBe16(b, 0, b.length - 2);
      b[2] = 1; // track number
      b[3] = 1; // session number
      b[5] = 0x04; // track mode: data, uninterrupted
      b[6] = 0x01; // data mode 1
      b[7] = 0x02; // LRA_V: the last recorded address is valid
      putBe32(b, 24, blocks); // track size
      putBe32(b, 28, Math.max(0, blocks - 1)); // last recorded address
      return cmd.dataIn(b, be16(c, 7));
    });
  }

  mechanismStatus(cmd: ScsiCommand): Outcome {
    const b = new Uint8Array(8);
    b[1] = this.trayOpen ? 0x10 : 0; // mechanism idle, door open bit
    return cmd.dataIn(b, be16(cmd.cdb, 8));
  }
}

/** An LBA as MSF (M, S, F of LBA + 150 frames), minutes capped at 255 for media longer than MSF can say. */
function toMsf(lba: number): number {
  const frames = Math.min(lba + 150, 255 * 60 * 75 + 59 * 75 + 74);
  const m = Math.floor(frames / (60 * 75));
  const s = Math.floor(frames / 75) % 60;
  const f = frames % 75;
  return (m << 16) | (s << 8) | f;
}

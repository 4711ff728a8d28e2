// Owns: a VM's storage as its configuration describes it: every `VmConfig.disks` image and the `dvd` ISO
// opened with `openImage` (raw, VHD, VHDX, differencing chains; the ISO read-only), attached as SCSI logical
// units of one synthetic SCSI controller (disks on LUN 0, 1, ... in order, the DVD on the next LUN) offered
// on the VM's VMBus server by one storage VSP, the DVD's medium swapped while the VM runs (the old medium is
// closed once no command uses it), and closed in order at the end of the VM (commands in flight finish,
// writable images are flushed, then every image is closed).
// Must not: run SCSI or storvsc itself (src/vsp/storvsp does), read or write guest memory, or leave an image
// open when it fails: a configuration that cannot be opened closes what it opened and is one `VmBuildError`
// naming the image.
// Spec: docs/architecture.md "Storage in a VM"; issue 10 (disks and DVD per VM, asynchronous I/O with a bound).

import { StorageError, type Disk, type FileOpener } from "../storage/disk.js";
import type { ImageDisk } from "../storage/image-format.js";
import { openImage } from "../storage/open.js";
import { guidConstant } from "../support/ms-guid.js";
import type { DvdLun } from "../vsp/storvsp/dvd-lun.js";
import { MAX_LUNS as CONTROLLER_LUNS, ScsiController } from "../vsp/storvsp/scsi-controller.js";
import { StorageVsp, type ChannelOfferer } from "../vsp/storvsp/storvsp.js";
import type { DiskConfig } from "./vm-config.js";

/** The one controller's instance GUID (what Linux names the device by under /sys/bus/vmbus/devices). */
export const SCSI_CONTROLLER_INSTANCE = guidConstant("{d7c4f3b8-1c5e-4f6a-9b1e-56a1d0c0a001}");
/** Commands running at once on the controller: the bound on queued host I/O (and on its buffers). */
export const MAX_IN_FLIGHT = 64;
/** Largest transfer of one command (1 MiB), reported to the guest; with MAX_IN_FLIGHT it bounds buffer memory. */
export const MAX_TRANSFER_BYTES = 1024 * 1024;

/** A failure to open the storage of a VM (the worker wraps it as its build error). */
export class VmStorageError extends Error {
  override name = "VmStorageError";
}

interface Attached {
  lun: number;
  what: string;
  disk: Disk;
}

/** The DVD drive: its unit, and the medium it holds (closed by whoever replaces it, or by close()). */
interface DvdDrive {
  lun: number;
  unit: DvdLun;
  medium: Attached | null;
}

export class VmStorage {
  private closing: Promise<void> | null = null;

  private constructor(
    readonly controller: ScsiController,
    readonly vsp: StorageVsp,
    /** The disks in configuration order (hot-added ones last); their LUNs need not be in order. */
    private readonly attached: Attached[],
    private readonly dvdDrive: DvdDrive | null,
  ) {}

  /**
   * Opens `disks` and `dvd` and offers them on `server` as one SCSI controller. With `dvdDrive` the DVD drive
   * exists even without a medium (one can be inserted while the VM runs); otherwise nothing is offered (and
   * null returned) when there are no disks and no DVD.
   */
  static async open(
    server: ChannelOfferer,
    opener: FileOpener,
    disks: readonly DiskConfig[],
    dvd: string | null,
    dvdDrive = false,
  ): Promise<VmStorage | null> {
    if (disks.length === 0 && dvd === null && !dvdDrive) return null;
    let drive: DvdDrive | null = null;
    const attached: Attached[] = [];
    const controller = new ScsiController({
      maxTransferBytes: MAX_TRANSFER_BYTES,
      maxInFlight: MAX_IN_FLIGHT,
    });
    try {
      for (const [lun, d] of disks.entries()) {
        const what = `disk ${lun} (${d.path})`;
        const disk = await openOne(opener, d.path, d.readOnly, what);
        attached.push({ lun, what, disk });
        // A dynamic image allocates in blocks: a trim of less than a block may keep its data, so the guest
        // is told to unmap in whole blocks (VPD B0 optimal unmap granularity).
        const block = disk.info().blockSize;
        controller.attachDisk(lun, disk, block > 0 ? { unmapGranularityBytes: block } : {});
      }
      if (dvd !== null || dvdDrive) {
        const lun = disks.length;
        let medium: Attached | null = null;
        if (dvd !== null) {
          const what = `the DVD (${dvd})`;
          const disk = await openOne(opener, dvd, true, what);
          medium = { lun, what, disk };
          attached.push(medium);
          checkIso(disk, what);
        }
        drive = { lun, unit: controller.attachDvd(lun, medium?.disk ?? null), medium };
      }
    } catch (e) {
      await closeAll(attached);
      throw e;
    }
    const vsp = new StorageVsp(server, controller, { instanceId: SCSI_CONTROLLER_INSTANCE, name: "storvsp" });
    // The DVD's medium changes over the VM's life: the drive owns it, not the fixed list.
    return new VmStorage(
      controller,
      vsp,
      attached.filter((a) => a !== drive?.medium),
      drive,
    );
  }

  /** Whether the controller has a DVD drive (media can be changed). */
  get hasDvdDrive(): boolean {
    return this.dvdDrive !== null;
  }

  /**
   * Puts `medium` (an ISO its opener checked; null ejects) in the DVD drive while the VM runs; the guest sees
   * a media change. The old medium is closed once no command uses it. `what` names the medium in messages.
   */
  async changeDvd(medium: Disk | null, what: string): Promise<void> {
    const drive = this.dvdDrive;
    if (drive === null) throw new VmStorageError("this VM has no DVD drive");
    if (this.closing) throw new VmStorageError("the VM's storage is closing");
    if (medium !== null && medium.logicalSectorSize !== 2048)
      throw new VmStorageError(
        `${what}: a DVD medium has 2048-byte sectors, not ${medium.logicalSectorSize}`,
      );
    const before = drive.medium;
    drive.medium = medium === null ? null : { lun: drive.lun, what: `the DVD (${what})`, disk: medium };
    await drive.unit.changeMedium(medium);
    if (before !== null && before.disk !== medium) {
      const failures = await closeAll([before]);
      if (failures.length > 0) throw new VmStorageError(failures.join("; "));
    }
  }

  /**
   * Hot add: attaches `disk` on the lowest free LUN as the VM's last disk and tells the guest to rescan
   * (storvsc then scans the bus and finds the new unit). Returns the LUN.
   */
  addDisk(disk: Disk, what: string): number {
    if (this.closing) throw new VmStorageError("the VM's storage is closing");
    const used = new Set(this.controller.luns);
    let lun = 0;
    while (used.has(lun)) lun++;
    if (lun >= CONTROLLER_LUNS) throw new VmStorageError(`every LUN of the controller is in use`);
    this.controller.attachDisk(lun, disk);
    this.attached.push({ lun, what, disk });
    this.vsp.rescan();
    return lun;
  }

  /**
   * Hot remove of the VM's disk number `index`: the unit leaves the controller at once (new commands to it
   * end as INVALID_LUN, which makes storvsc remove the device when the rescan's TEST UNIT READY meets it),
   * its commands in flight finish, the guest is told to rescan, then the image is flushed and closed.
   */
  async removeDisk(index: number): Promise<{ what: string; lun: number; disk: Disk }> {
    if (this.closing) throw new VmStorageError("the VM's storage is closing");
    const a = this.attached[index];
    if (a === undefined) throw new VmStorageError(`the VM has no disk ${index}`);
    this.attached.splice(index, 1);
    await this.controller.detach(a.lun);
    this.vsp.rescan();
    const failures: string[] = [];
    if (!a.disk.readOnly)
      await a.disk
        .flush()
        .catch((e: unknown) => failures.push(`${a.what}: flush failed: ${(e as Error).message}`));
    failures.push(...(await closeAll([a])));
    if (failures.length > 0) throw new VmStorageError(failures.join("; "));
    return { what: a.what, lun: a.lun, disk: a.disk };
  }

  /** LUN, role and path of each image, for inspect(). */
  describe(): string[] {
    const lines = this.attached.map((a) => `LUN ${a.lun}: ${a.what}${a.disk.readOnly ? ", read-only" : ""}`);
    const d = this.dvdDrive;
    if (d !== null)
      lines.push(d.medium ? `LUN ${d.lun}: ${d.medium.what}, read-only` : `LUN ${d.lun}: DVD drive, empty`);
    return lines;
  }

  /** The controller's state and its images in a few lines (the machine's inspect()). */
  summary(): string[] {
    const vsp = this.vsp;
    const c = vsp.counters;
    const refused = Object.entries(c.refused)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    return [
      `storage: storvsp ${vsp.state}` +
        (vsp.protocolVersion === 0
          ? ""
          : `, protocol ${vsp.protocolVersion >> 8}.${vsp.protocolVersion & 0xff}`) +
        `; ${c.srbs} SRBs, ${vsp.srbsRunning} in flight; refused: ${refused || "none"}`,
      ...this.describe().map((l) => `  ${l}`),
    ];
  }

  /**
   * The end of the VM: each unit is detached once its commands have finished, writable images are flushed
   * and every image is closed. Safe to call more than once (later calls wait for the first).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const failures: string[] = [];
      for (const a of this.attached) {
        await this.controller.detach(a.lun);
        if (a.disk.readOnly) continue;
        try {
          await a.disk.flush();
        } catch (e) {
          failures.push(`${a.what}: flush failed: ${(e as Error).message}`);
        }
      }
      const d = this.dvdDrive;
      if (d !== null) {
        await this.controller.detach(d.lun);
        if (d.medium !== null) failures.push(...(await closeAll([d.medium])));
      }
      failures.push(...(await closeAll(this.attached)));
      if (failures.length > 0) throw new VmStorageError(failures.join("; "));
    })();
    return this.closing;
  }
}

/** A DVD medium opened here must be an ISO 9660 image: 2048-byte sectors, a CD001 volume descriptor. */
function checkIso(disk: ImageDisk, what: string): void {
  if (disk.logicalSectorSize !== 2048 || disk.info().format !== "iso")
    throw new VmStorageError(`${what}: not an ISO 9660 image (no CD001 volume descriptor at sector 16)`);
}

async function openOne(
  opener: FileOpener,
  path: string,
  readOnly: boolean,
  what: string,
): Promise<ImageDisk> {
  try {
    return await openImage(opener, path, { readOnly });
  } catch (e) {
    if (e instanceof StorageError) throw new VmStorageError(`${what}: ${e.message}`);
    throw e;
  }
}

/** Closes every image; returns the failures as messages (closing goes on past one). */
async function closeAll(attached: readonly Attached[]): Promise<string[]> {
  const failures: string[] = [];
  for (const a of attached) {
    try {
      await a.disk.close();
    } catch (e) {
      failures.push(`${a.what}: close failed: ${(e as Error).message}`);
    }
  }
  return failures;
}

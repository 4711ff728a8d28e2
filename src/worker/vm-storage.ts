// Owns: a VM's storage as its configuration describes it: every `VmConfig.disks` image and the `dvd` ISO
// opened with `openImage` (raw, VHD, VHDX, differencing chains; the ISO read-only), attached as SCSI logical
// units of one synthetic SCSI controller (disks on LUN 0, 1, ... in order, the DVD on the next LUN) offered
// on the VM's VMBus server by one storage VSP, and closed in order at the end of the VM (commands in flight
// finish, writable images are flushed, then every image is closed).
// Must not: run SCSI or storvsc itself (src/vsp/storvsp does), read or write guest memory, or leave an image
// open when it fails: a configuration that cannot be opened closes what it opened and is one `VmBuildError`
// naming the image.
// Spec: docs/architecture.md "Storage in a VM"; issue 10 (disks and DVD per VM, asynchronous I/O with a bound).

import { StorageError, type FileOpener } from "../storage/disk.js";
import type { ImageDisk } from "../storage/image-format.js";
import { openImage } from "../storage/open.js";
import { guidConstant } from "../support/ms-guid.js";
import { ScsiController } from "../vsp/storvsp/scsi-controller.js";
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
  disk: ImageDisk;
}

export class VmStorage {
  private closing: Promise<void> | null = null;

  private constructor(
    readonly controller: ScsiController,
    readonly vsp: StorageVsp,
    private readonly attached: readonly Attached[],
  ) {}

  /**
   * Opens `disks` and `dvd` and offers them on `server` as one SCSI controller. Nothing is offered (and null
   * returned) when there is neither.
   */
  static async open(
    server: ChannelOfferer,
    opener: FileOpener,
    disks: readonly DiskConfig[],
    dvd: string | null,
  ): Promise<VmStorage | null> {
    if (disks.length === 0 && dvd === null) return null;
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
      if (dvd !== null) {
        const lun = disks.length;
        const what = `the DVD (${dvd})`;
        const medium = await openOne(opener, dvd, true, what);
        attached.push({ lun, what, disk: medium });
        if (medium.logicalSectorSize !== 2048 || medium.info().format !== "iso") {
          throw new VmStorageError(
            `${what}: not an ISO 9660 image (no CD001 volume descriptor at sector 16)`,
          );
        }
        controller.attachDvd(lun, medium);
      }
    } catch (e) {
      await closeAll(attached);
      throw e;
    }
    const vsp = new StorageVsp(server, controller, { instanceId: SCSI_CONTROLLER_INSTANCE, name: "storvsp" });
    return new VmStorage(controller, vsp, attached);
  }

  /** LUN, role and path of each image, for inspect(). */
  describe(): string[] {
    return this.attached.map((a) => `LUN ${a.lun}: ${a.what}${a.disk.readOnly ? ", read-only" : ""}`);
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
      failures.push(...(await closeAll(this.attached)));
      if (failures.length > 0) throw new VmStorageError(failures.join("; "));
    })();
    return this.closing;
  }
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

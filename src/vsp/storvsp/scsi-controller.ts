// Owns: the SCSI target of one storage controller: its logical units (disks and DVD drives at LUNs 0-63 of
// path 0, target 0), command dispatch through the command table (CDB copy, control byte, unit attention,
// not-ready, the kind's handler or its refusal), addresses without a logical unit (INQUIRY answers
// peripheral qualifier 3, REPORT LUNS answers for any address, anything else LOGICAL UNIT NOT SUPPORTED
// flagged `noLun`), the bound on commands in flight (TASK SET FULL beyond it), and turning every failure
// into a SCSI answer: no command ever rejects.
// Must not: know the transport (storvsp maps `ScsiResult` to SRB status and packets), touch guest memory
// other than through the DataBuffer it is given, or wait for a Disk on the caller's turn (execute returns a
// promise at once; Disk I/O completes later).
// Spec: SAM-5 5.3 (status: GOOD, CHECK CONDITION, TASK SET FULL when the task set is full); SPC-4 on an
// incorrect logical unit selection: INQUIRY returns peripheral qualifier 011b / type 1Fh, REQUEST SENSE
// returns LOGICAL UNIT NOT SUPPORTED as parameter data, other commands CHECK CONDITION with ILLEGAL REQUEST,
// LOGICAL UNIT NOT SUPPORTED (25h/00h); SAM-5 control byte (NACA is not supported: INVALID FIELD IN CDB).

import type { Disk } from "../../storage/disk.js";
import { COMMANDS, reportLuns } from "./command-table.js";
import { DiskLun, type DiskLunOptions } from "./disk-lun.js";
import { DvdLun, type DvdLunOptions } from "./dvd-lun.js";
import { notPresentInquiry } from "./inquiry.js";
import {
  be16,
  check,
  encodeSense,
  invalidFieldInCdb,
  ScsiCommand,
  ScsiStatus,
  SENSE,
  SenseKey,
  type DataBuffer,
  type Outcome,
  type Sense,
} from "./scsi.js";

/** Where a command is addressed: storvsc's path (channel), target and LUN. */
export interface ScsiAddress {
  readonly path: number;
  readonly target: number;
  readonly lun: number;
}

/** A command's answer, transport-independent. */
export interface ScsiResult {
  readonly status: ScsiStatus;
  /** Fixed-format sense data with CHECK CONDITION, else null. */
  readonly sense: Uint8Array | null;
  /** Bytes moved through the DataBuffer. */
  readonly transferred: number;
  /** More data than the buffer held (a residual overflow). */
  readonly overrun: boolean;
  /** No logical unit at the address (storvsp answers SRB_STATUS_INVALID_LUN). */
  readonly noLun: boolean;
}

export interface ControllerOptions {
  /** Largest data transfer of one command (a multiple of 4096); default 1 MiB. */
  readonly maxTransferBytes?: number;
  /** Commands in flight before TASK SET FULL; default 64. */
  readonly maxInFlight?: number;
}

/** LUNs per controller, as Hyper-V's SCSI controller has. */
export const MAX_LUNS = 64;
const LOGICAL_UNIT_NOT_SUPPORTED: Sense = { key: SenseKey.IllegalRequest, asc: 0x25, ascq: 0x00 };

type Unit = DiskLun | DvdLun;

/** READ(6/10/12/16) and WRITE(6/10/12/16) (SBC-4): the commands whose data counts as disk throughput. */
const READ_OPCODES = new Set([0x08, 0x28, 0xa8, 0x88]);
const WRITE_OPCODES = new Set([0x0a, 0x2a, 0xaa, 0x8a]);

export class ScsiController {
  readonly maxTransferBytes: number;
  readonly maxInFlight: number;
  private readonly units = new Map<number, Unit>();
  /** Commands running per unit, so a detach can wait for them. */
  private readonly running = new Map<Unit, { count: number; idle: (() => void)[] }>();
  private inFlight = 0;
  readonly counters = {
    commands: 0,
    checkConditions: 0,
    taskSetFull: 0,
    noLun: 0,
    /** Handler failures that were not StorageErrors (bugs); answered HARDWARE ERROR, 44h/00h. */
    internalErrors: 0,
    /** Data bytes of the READ and WRITE commands that succeeded (the management API's throughput figures). */
    readBytes: 0,
    writeBytes: 0,
  };
  lastInternalError: string | null = null;

  constructor(options: ControllerOptions = {}) {
    const max = options.maxTransferBytes ?? 1024 * 1024;
    if (!Number.isInteger(max) || max < 4096 || max % 4096 !== 0) {
      throw new RangeError(`maxTransferBytes must be a positive multiple of 4096, not ${max}`);
    }
    this.maxTransferBytes = max;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 64);
  }

  /** Whether a command submitted now would run rather than meet TASK SET FULL. */
  get hasRoom(): boolean {
    return this.inFlight < this.maxInFlight;
  }

  get commandsInFlight(): number {
    return this.inFlight;
  }

  attachDisk(lun: number, disk: Disk, options: Omit<DiskLunOptions, "maxTransferBytes"> = {}): DiskLun {
    this.checkFree(lun);
    const unit = new DiskLun(disk, { ...options, maxTransferBytes: this.maxTransferBytes });
    this.units.set(lun, unit);
    return unit;
  }

  attachDvd(lun: number, medium: Disk | null, options: Omit<DvdLunOptions, "maxTransferBytes"> = {}): DvdLun {
    this.checkFree(lun);
    if (medium && medium.logicalSectorSize !== 2048) {
      throw new RangeError(`a DVD medium has 2048-byte sectors, not ${medium.logicalSectorSize}`);
    }
    const unit = new DvdLun(medium, {
      name: String(lun),
      ...options,
      maxTransferBytes: this.maxTransferBytes,
    });
    this.units.set(lun, unit);
    return unit;
  }

  /** Removes a logical unit; resolves once none of its commands is running (then its Disk may be closed). */
  async detach(lun: number): Promise<void> {
    const unit = this.units.get(lun);
    if (!unit) return;
    this.units.delete(lun);
    const run = this.running.get(unit);
    if (run && run.count > 0) await new Promise<void>((resolve) => run.idle.push(resolve));
  }

  unit(lun: number): Unit | undefined {
    return this.units.get(lun);
  }

  /** The LUNs in use, ascending. */
  get luns(): number[] {
    return [...this.units.keys()].sort((a, b) => a - b);
  }

  private checkFree(lun: number): void {
    if (!Number.isInteger(lun) || lun < 0 || lun >= MAX_LUNS) {
      throw new RangeError(`LUN ${lun} is outside 0-${MAX_LUNS - 1}`);
    }
    if (this.units.has(lun)) throw new RangeError(`LUN ${lun} is already in use`);
  }

  /**
   * Runs one command. `cdb` is what the initiator sent (bytes past 16 are ignored; missing ones read as 0).
   * Never rejects: every failure is a SCSI answer.
   */
  async execute(address: ScsiAddress, cdb: Uint8Array, data: DataBuffer): Promise<ScsiResult> {
    this.counters.commands++;
    if (this.inFlight >= this.maxInFlight) {
      this.counters.taskSetFull++;
      return { status: ScsiStatus.TaskSetFull, sense: null, transferred: 0, overrun: false, noLun: false };
    }
    this.inFlight++;
    try {
      const copy = new Uint8Array(16);
      copy.set(cdb.subarray(0, 16));
      const cmd = new ScsiCommand(copy, data);
      const ours = address.path === 0 && address.target === 0;
      const unit = ours ? this.units.get(address.lun) : undefined;
      const r = await this.answer(unit, cmd, ours ? this.luns : []);
      const result: ScsiResult =
        r.outcome.status === ScsiStatus.Good
          ? { ...r.outcome, sense: null, noLun: r.noLun }
          : {
              status: ScsiStatus.CheckCondition,
              sense: encodeSense(r.outcome.sense),
              transferred: 0,
              overrun: false,
              noLun: r.noLun,
            };
      if (result.status === ScsiStatus.CheckCondition) this.counters.checkConditions++;
      else if (READ_OPCODES.has(copy[0]!)) this.counters.readBytes += result.transferred;
      else if (WRITE_OPCODES.has(copy[0]!)) this.counters.writeBytes += result.transferred;
      if (result.noLun) this.counters.noLun++;
      return result;
    } finally {
      this.inFlight--;
    }
  }

  /** An address with no logical unit; `targetLuns` are the units of its target (for REPORT LUNS). */
  private absent(cmd: ScsiCommand, targetLuns: readonly number[]): { outcome: Outcome; noLun: boolean } {
    const c = cmd.cdb;
    switch (c[0]) {
      case 0xa0:
        return { outcome: reportLuns(targetLuns, cmd), noLun: false };
      case 0x12:
        // Vital product data needs a device; the standard data says there is none.
        if (c[1]! & 0x03 || c[2] !== 0) return { outcome: check(invalidFieldInCdb(1, 0)), noLun: false };
        return { outcome: cmd.dataIn(notPresentInquiry(), be16(c, 3)), noLun: false };
      case 0x03:
        return { outcome: cmd.dataIn(encodeSense(LOGICAL_UNIT_NOT_SUPPORTED), c[4]!), noLun: false };
      default:
        return { outcome: check(LOGICAL_UNIT_NOT_SUPPORTED), noLun: true };
    }
  }

  /** Answers through the unit (counted as running on it) or as an absent address; a throw is our bug. */
  private async answer(
    unit: Unit | undefined,
    cmd: ScsiCommand,
    targetLuns: readonly number[],
  ): Promise<{ outcome: Outcome; noLun: boolean }> {
    let run: { count: number; idle: (() => void)[] } | undefined;
    if (unit) {
      run = this.running.get(unit);
      if (!run) this.running.set(unit, (run = { count: 0, idle: [] }));
      run.count++;
    }
    try {
      return unit ? { outcome: await this.run(unit, cmd), noLun: false } : this.absent(cmd, targetLuns);
    } catch (e) {
      this.counters.internalErrors++;
      this.lastInternalError = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return { outcome: check(SENSE.internalTargetFailure), noLun: false };
    } finally {
      if (unit && run && --run.count === 0) {
        this.running.delete(unit);
        for (const wake of run.idle) wake();
      }
    }
  }

  private async run(unit: Unit, cmd: ScsiCommand): Promise<Outcome> {
    const row = COMMANDS.get(cmd.opcode);
    if (!row || row.unitAttention) {
      const ua = unit.takeUnitAttention();
      if (ua) return check(ua);
    }
    if (!row) return check(SENSE.invalidOpcode);
    const control = cmd.cdb[row.cdbLength - 1]!;
    if (control & 0x04) return check(invalidFieldInCdb(row.cdbLength - 1, 2)); // NACA
    if (row.target) return reportLuns(this.luns, cmd);
    const handled = unit.kind === "disk" ? row.disk !== undefined : row.dvd !== undefined;
    if (!handled && !row.otherwise) return check(SENSE.invalidOpcode);
    if (row.needsMedium) {
      const notReady = unit.notReady();
      if (notReady) return check(notReady);
    }
    if (unit.kind === "disk") return row.disk ? row.disk(unit, cmd) : check(row.otherwise!);
    return row.dvd ? row.dvd(unit, cmd) : check(row.otherwise!);
  }

  inspect(): Record<string, unknown> {
    const luns: Record<string, unknown> = {};
    for (const lun of this.luns) luns[lun] = this.units.get(lun)!.inspect();
    return {
      maxTransferBytes: this.maxTransferBytes,
      maxInFlight: this.maxInFlight,
      inFlight: this.inFlight,
      counters: { ...this.counters },
      lastInternalError: this.lastInternalError,
      luns,
    };
  }
}

// Owns: the contracts every storage backend implements: the Disk a VM sees, the small file interface that
// format code does its I/O through, and the one error type storage code throws.
// Must not: import Node built-ins (the storage tier is platform-neutral; Node file access lives in
// src/host/) or know about any device that consumes a Disk.
// Spec: block-device semantics of SCSI SBC-3 (logical/physical block size, UNMAP as trim, SYNCHRONIZE CACHE
// as flush), which is what storvsp (src/vsp/) will map onto.

/** Why a storage operation failed; stable strings so callers and tests can branch on them. */
export type StorageErrorCode =
  | "io" // the underlying file failed
  | "not-found" // a file (e.g. a parent disk) does not exist
  | "corrupt" // structures in the image are invalid (bad checksum, overlap, out-of-file pointer)
  | "unsupported" // valid image using a feature we do not implement
  | "read-only" // a write to read-only media or a read-only open
  | "out-of-range" // an access beyond the disk's capacity or misaligned to its sector size
  | "parent-mismatch" // a differencing disk's parent identity does not match its link
  | "cycle" // a differencing chain refers back to itself
  | "invalid-argument" // a caller passed an impossible parameter (size, block size, ...)
  | "closed"; // the disk or file was used after close

export class StorageError extends Error {
  override name = "StorageError";
  constructor(
    readonly code: StorageErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A random-access file; the only I/O format code performs. Implementations: src/host (Node), tests (memory). */
export interface FileHandle {
  /** A name for messages (the path, for files on disk). */
  readonly name: string;
  readonly readOnly: boolean;
  /** Reads up to dst.length bytes at `position`; returns the count read (short only at end of file). */
  read(position: number, dst: Uint8Array): Promise<number>;
  write(position: number, src: Uint8Array): Promise<void>;
  /** Makes every completed write durable (fdatasync). */
  flush(): Promise<void>;
  size(): Promise<number>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens files by name, so parent locators can be resolved without the format code touching Node. */
export interface FileOpener {
  open(path: string, mode: "read" | "read-write"): Promise<FileHandle>;
  create(path: string): Promise<FileHandle>;
  /** Resolves `relative` against the directory holding `base`. */
  resolve(base: string, relative: string): string;
  isAbsolute(path: string): boolean;
  exists(path: string): Promise<boolean>;
}

/** The block device a VM (or a tool) sees, whatever the image format underneath. */
export interface Disk {
  /** Bytes per logical sector (512 or 4096); every offset and length below is a multiple of it. */
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  /** Capacity in bytes (a multiple of logicalSectorSize). */
  readonly capacity: number;
  readonly readOnly: boolean;
  /** Stable identity used for differencing-parent linkage (the VHD/VHDX unique id as a GUID string). */
  readonly identity: string;
  /** Reads dst.length bytes starting at logical sector `lba`. */
  read(lba: number, dst: Uint8Array): Promise<void>;
  /** Writes src.length bytes at sector `lba`; durable only after flush() resolves. */
  write(lba: number, src: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  /** Tells the backend a sector range is no longer needed; reads of it afterwards may return zeros. */
  trim(lba: number, sectorCount: number): Promise<void>;
  close(): Promise<void>;
}

// Owns: the contract between image formats (raw, VHD, VHDX, ISO) and the format-independent operations
// (open by detection, differencing chains, convert, merge, resize, compact, check) and the CLI.
// Must not: do I/O except through FileHandle/FileOpener (src/storage/disk.ts).
// Spec: the shared concepts of the VHD format specification (Microsoft, 2006) and MS-VHDX (v20240423):
// fixed / dynamic / differencing images, a block allocation table, parent linkage by unique id.

import type { Disk, FileHandle, FileOpener } from "./disk.js";

export type ImageFormatName = "raw" | "vhd" | "vhdx" | "iso";
export type ImageKind = "fixed" | "dynamic" | "differencing" | "media";

export interface CreateOptions {
  kind: "fixed" | "dynamic" | "differencing";
  /** Virtual size in bytes; taken from the parent for differencing images. */
  capacity?: number;
  /** Allocation unit of dynamic/differencing images (bytes; format default when absent). */
  blockSize?: number;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  /** Parent image path (differencing); stored relative and absolute in the parent locators. */
  parentPath?: string;
  /** Reports progress of long operations (0..1). */
  onProgress?: (fraction: number) => void;
}

export interface ImageInfo {
  format: ImageFormatName;
  kind: ImageKind;
  capacity: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  /** Allocation unit for dynamic/differencing images, 0 otherwise. */
  blockSize: number;
  /** Bytes of the file used by data blocks (what compaction can shrink). */
  allocatedBytes: number;
  fileSize: number;
  identity: string;
  /** For differencing images: the parent's path as resolved, and the identity the child expects. */
  parentPath?: string;
  parentIdentity?: string;
}

export interface CheckReport {
  /** Problems found, each a sentence naming the structure. Empty means clean. */
  problems: string[];
  /** Problems repaired (only when check was asked to repair). */
  repaired: string[];
}

/** An opened image: a Disk plus what tools need to see inside it. */
export interface ImageDisk extends Disk {
  info(): ImageInfo;
  /** The resolved path this disk was opened from, when opened through openImage (src/storage/open.ts). */
  readonly location?: string;
  /** The opened parent of a differencing image (read-only), else null. */
  readonly parent: ImageDisk | null;
  /**
   * Whether this layer itself holds data for the sector range (for dynamic/differencing images; fixed and raw
   * layers hold everything). Used by merge and convert to copy only what is present.
   */
  isAllocated(lba: number, sectorCount: number): Promise<boolean>;
  check(repair: boolean): Promise<CheckReport>;
  /**
   * Changes the virtual size (optional: formats that cannot resize leave it out). Shrinking refuses with
   * "invalid-argument" when data beyond the new end is allocated, unless `force`.
   */
  resize?(newCapacity: number, force: boolean): Promise<void>;
  /**
   * Drops all-zero blocks and moves blocks down so the file has no holes (optional: dynamic formats).
   * Returns the file size before and after.
   */
  compact?(onProgress?: (fraction: number) => void): Promise<{ before: number; after: number }>;
}

/** What a child asks of whoever opens its parent (src/storage/open.ts supplies the implementation). */
export interface ParentRequest {
  /** The child's path, for messages and for resolving relative locators. */
  child: string;
  /** Candidate parent paths in the order to try (relative locators first, then absolute). */
  candidates: string[];
  /** The identity the child's link names; a parent with another identity is "parent-mismatch". */
  expectedIdentity: string;
}

export interface OpenOptions {
  readOnly: boolean;
  /** Resolved paths of the images already opened below this one (its children), to detect cycles. */
  openChain?: Set<string>;
  /**
   * Opens (or shares) a differencing parent read-only: resolves candidates, detects cycles, checks identity.
   * Supplied by openImage; a format opened directly without it refuses differencing images.
   */
  openParent?: (request: ParentRequest) => Promise<ImageDisk>;
}

export interface ImageFormat {
  readonly name: ImageFormatName;
  /** Whether the file looks like this format (signature check only; no full validation). */
  probe(file: FileHandle): Promise<boolean>;
  create(opener: FileOpener, path: string, options: CreateOptions): Promise<void>;
  open(opener: FileOpener, path: string, options: OpenOptions): Promise<ImageDisk>;
}

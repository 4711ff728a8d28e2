// Owns: the format registry (probe order vhdx, vhd, iso, then raw as the fallback), openImage/createImage,
// and differencing chains: parent resolution (relative locators first, then absolute), read-only parents
// shared between children through a reference-counted cache keyed by resolved path, identity checks
// ("parent-mismatch") and cycle detection ("cycle").
// Must not: parse any format itself. (VHDX resolves its own parent locators inside src/storage/vhdx/; VHD
// parents go through the shared cache here.)
// Spec: VHD specification (2006) "Hard Disk Footer" / "Dynamic Disk Header" parent linkage by unique id;
// MS-VHDX 2.6 (parent locator) for the same idea in VHDX.

import { StorageError, type FileOpener } from "./disk.js";
import type {
  CheckReport,
  CreateOptions,
  ImageDisk,
  ImageFormat,
  ImageFormatName,
  ImageInfo,
  ParentRequest,
} from "./image-format.js";
import { isoFormat } from "./iso9660.js";
import { rawFormat } from "./raw.js";
import { vhdFormat } from "./vhd.js";
import { vhdxFormat } from "./vhdx/format.js";

const PROBE_ORDER: ImageFormatName[] = ["vhdx", "vhd", "iso", "raw"];
const registry = new Map<ImageFormatName, ImageFormat>([
  ["vhdx", vhdxFormat],
  ["vhd", vhdFormat],
  ["iso", isoFormat],
  ["raw", rawFormat],
]);

/** Adds (or replaces) a format (tests register instrumented formats this way). */
export function registerFormat(format: ImageFormat): void {
  registry.set(format.name, format);
}

export function getFormat(name: ImageFormatName): ImageFormat {
  const f = registry.get(name);
  if (!f) throw new StorageError("unsupported", `the ${name} format is not available`);
  return f;
}

/** A path in the form the cache keys on: absolute when the opener knows how. */
function canonical(opener: FileOpener, path: string): string {
  return opener.isAbsolute(path) ? opener.resolve(path, path) : opener.resolve("./.", path);
}

/** An opened image as handed out: the format's disk plus where it came from, and what close() means. */
class OpenedImage implements ImageDisk {
  constructor(
    private readonly inner: ImageDisk,
    readonly location: string,
    private readonly release: () => Promise<void>,
  ) {}
  get logicalSectorSize(): number {
    return this.inner.logicalSectorSize;
  }
  get physicalSectorSize(): number {
    return this.inner.physicalSectorSize;
  }
  get capacity(): number {
    return this.inner.capacity;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get identity(): string {
    return this.inner.identity;
  }
  get parent(): ImageDisk | null {
    return this.inner.parent;
  }
  info(): ImageInfo {
    return this.inner.info();
  }
  read(lba: number, dst: Uint8Array): Promise<void> {
    return this.inner.read(lba, dst);
  }
  write(lba: number, src: Uint8Array): Promise<void> {
    return this.inner.write(lba, src);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  trim(lba: number, sectorCount: number): Promise<void> {
    return this.inner.trim(lba, sectorCount);
  }
  isAllocated(lba: number, sectorCount: number): Promise<boolean> {
    return this.inner.isAllocated(lba, sectorCount);
  }
  check(repair: boolean): Promise<CheckReport> {
    return this.inner.check(repair);
  }
  async resize(newCapacity: number, force: boolean): Promise<void> {
    if (!this.inner.resize)
      throw new StorageError("unsupported", `${this.location}: this format cannot be resized`);
    return this.inner.resize(newCapacity, force);
  }
  async compact(onProgress?: (fraction: number) => void): Promise<{ before: number; after: number }> {
    if (!this.inner.compact)
      throw new StorageError("unsupported", `${this.location}: this format cannot be compacted`);
    return this.inner.compact(onProgress);
  }
  close(): Promise<void> {
    return this.release();
  }
}

interface Shared {
  disk: Promise<ImageDisk>;
  refs: number;
}

/** Parents currently open, per opener (paths only mean something relative to their file system). */
const sharedParents = new WeakMap<FileOpener, Map<string, Shared>>();

function cacheOf(opener: FileOpener): Map<string, Shared> {
  let m = sharedParents.get(opener);
  if (!m) sharedParents.set(opener, (m = new Map()));
  return m;
}

/** How many parents are open and shared for an opener (tests observe sharing through this). */
export function openParentCount(opener: FileOpener): number {
  return cacheOf(opener).size;
}

async function detect(opener: FileOpener, path: string): Promise<ImageFormat> {
  const file = await opener.open(path, "read");
  try {
    for (const name of PROBE_ORDER) {
      const f = registry.get(name);
      if (f && (await f.probe(file))) return f;
    }
  } finally {
    await file.close();
  }
  return rawFormat;
}

async function openLayer(
  opener: FileOpener,
  path: string,
  readOnly: boolean,
  chain: Set<string>,
): Promise<ImageDisk> {
  const format = await detect(opener, path);
  // `chain` holds this image and its children (for openParent's cycle check); formats that resolve parents
  // themselves (VHDX) receive only the images below this one, as OpenOptions.openChain documents.
  const below = new Set(chain);
  below.delete(path);
  return format.open(opener, path, {
    readOnly,
    openChain: below,
    openParent: (req) => openParent(opener, req, chain),
  });
}

async function openParent(opener: FileOpener, req: ParentRequest, chain: Set<string>): Promise<ImageDisk> {
  const tried: string[] = [];
  for (const candidate of req.candidates) {
    const path = canonical(opener, candidate);
    if (chain.has(path)) {
      throw new StorageError("cycle", `${req.child}: the differencing chain refers back to ${path}`);
    }
    tried.push(path);
    if (!(await opener.exists(path))) continue;
    const cache = cacheOf(opener);
    let entry = cache.get(path);
    if (!entry) {
      const next = new Set(chain).add(path);
      entry = { disk: openLayer(opener, path, true, next), refs: 0 };
      cache.set(path, entry);
      entry.disk.catch(() => cache.get(path) === entry && cache.delete(path));
    }
    entry.refs++;
    const shared = entry;
    const release = async (): Promise<void> => {
      if (--shared.refs > 0) return;
      if (cache.get(path) === shared) cache.delete(path);
      await (await shared.disk).close();
    };
    let disk: ImageDisk;
    try {
      disk = await shared.disk;
    } catch (e) {
      shared.refs--;
      throw e;
    }
    // A parent already open for another child was resolved with that child's chain; make sure this chain
    // does not appear in it.
    for (let p: ImageDisk | null = disk; p; p = p.parent) {
      if (p.location !== undefined && chain.has(p.location)) {
        await release();
        throw new StorageError("cycle", `${req.child}: the differencing chain refers back to ${p.location}`);
      }
    }
    if (disk.identity !== req.expectedIdentity) {
      await release();
      throw new StorageError(
        "parent-mismatch",
        `${req.child} expects parent identity ${req.expectedIdentity}, but ${path} is ${disk.identity}`,
      );
    }
    return new OpenedImage(disk, path, release);
  }
  throw new StorageError(
    "not-found",
    `${req.child}: parent not found (tried ${tried.join(", ") || "no locators"})`,
  );
}

/** Opens an image of any registered format, with its differencing chain. */
export async function openImage(
  opener: FileOpener,
  path: string,
  options: { readOnly: boolean },
): Promise<ImageDisk> {
  const resolved = canonical(opener, path);
  const disk = await openLayer(opener, resolved, options.readOnly, new Set([resolved]));
  return new OpenedImage(disk, resolved, () => disk.close());
}

/** Creates an image; refuses to replace an existing file (images are guest data). */
export async function createImage(
  opener: FileOpener,
  path: string,
  format: ImageFormatName,
  options: CreateOptions,
): Promise<void> {
  if (await opener.exists(path)) {
    throw new StorageError("invalid-argument", `${path} already exists; refusing to overwrite it`);
  }
  const target = canonical(opener, path);
  // A relative parent path is relative to the child's directory, as the locators store it.
  const opts = options.parentPath
    ? { ...options, parentPath: opener.resolve(target, options.parentPath) }
    : options;
  await getFormat(format).create(opener, target, opts);
}

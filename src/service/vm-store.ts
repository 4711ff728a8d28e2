// Owns: the VM inventory on disk: one directory per VM under `<data>/vms/<id>/` with its configuration file
// (`config.json`, schema `VmFile` in src/api/schemas.ts), read and validated on every access, migrated from
// older schema versions, written atomically and durably off the event loop (one VM's changes in order, one
// at a time), versioned by an ETag for If-Match.
// Must not: crash or overwrite anything because of a bad file (a file that does not parse, fails its schema
// or comes from a newer version makes that one VM "invalid" with the reason; the file is left as it is), or
// know about workers and lifecycle (vm-service.ts does).
// Spec: docs/architecture.md "Configuration store"; RFC 9110 13.1.1 (If-Match), 8.8.3 (ETag).

import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";
import { ApiError } from "../api/errors.js";
import { VM_FILE_VERSION, VmFile } from "../api/schemas.js";
import type { DataDir } from "./data-dir.js";
import { makePrivateDir, syncDirectoryAsync, writeFileDurableAsync } from "./durable-file.js";

/** Files larger than this are not parsed (a configuration is a few hundred bytes). */
const MAX_CONFIG_BYTES = 256 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One schema step: turns a document of version `from` into version `from + 1`. */
export interface Migration {
  from: number;
  migrate(doc: Record<string, unknown>): Record<string, unknown>;
}

/** The migrations this build knows, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    // Version 2 added NICs: a version 1 machine had none.
    from: 1,
    migrate(doc) {
      const machine = doc.machine;
      if (!isRecord(machine)) return { ...doc, schemaVersion: 2 };
      return { ...doc, schemaVersion: 2, machine: { ...machine, nics: [] } };
    },
  },
];

export type VmRecord =
  | { id: string; ok: true; file: VmFile; etag: string }
  | { id: string; ok: false; error: string; etag: string | null };

/** The ETag of a file's exact bytes: any change, by us or by hand, gives a new one. */
export function etagOf(bytes: Uint8Array): string {
  return `"${createHash("sha256").update(bytes).digest("hex").slice(0, 20)}"`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses and checks a configuration document; throws an Error whose message is the reason. */
export function parseVmFile(text: string, migrations: readonly Migration[] = MIGRATIONS): VmFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  if (!isRecord(doc)) throw new Error("not a JSON object");
  const declared = doc.schemaVersion;
  if (typeof declared !== "number" || !Number.isInteger(declared) || declared < 1)
    throw new Error("schemaVersion: missing or not a positive integer");
  let version: number = declared;
  if (version > VM_FILE_VERSION)
    throw new Error(`schemaVersion ${version} is newer than this viridian's ${VM_FILE_VERSION}`);
  while (version < VM_FILE_VERSION) {
    const step = migrations.find((m) => m.from === version);
    if (!step) throw new Error(`schemaVersion ${version}: no migration to ${version + 1}`);
    doc = step.migrate(doc as Record<string, unknown>);
    if (!isRecord(doc) || doc.schemaVersion !== version + 1)
      throw new Error(`migration from ${version} did not produce version ${version + 1}`);
    version += 1;
  }
  if (!Value.Check(VmFile, doc)) {
    const first = Value.Errors(VmFile, doc).First();
    throw new Error(first ? `${first.path || "/"}: ${first.message}` : "does not match the schema");
  }
  return doc;
}

export function serializeVmFile(file: VmFile): string {
  return JSON.stringify(file, null, 2) + "\n";
}

export class VmStore {
  /**
   * Parsed files by id, each with the identity of the bytes it came from (inode, size, mtime, ctime): a read
   * whose stat matches reuses the validated parse of those same bytes; any change, by us or by hand, is read
   * and validated again.
   */
  private cache = new Map<string, { key: string; rec: VmRecord }>();
  private readonly queues = new Map<string, Promise<void>>();

  constructor(
    readonly dirs: DataDir,
    private readonly migrations: readonly Migration[] = MIGRATIONS,
  ) {}

  /** Ids of every VM directory (names that are not UUIDs are not ours and are ignored). */
  ids(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dirs.vmsDir);
    } catch {
      return [];
    }
    return names.filter(
      (n) => UUID.test(n) && statSync(this.dirs.vmDir(n), { throwIfNoEntry: false })?.isDirectory(),
    );
  }

  exists(id: string): boolean {
    return UUID.test(id) && existsSync(this.dirs.vmDir(id));
  }

  /** Reads and validates one VM's file; a bad file is a record with the reason, never an exception. */
  read(id: string): VmRecord {
    const path = this.dirs.vmConfig(id);
    let bytes: Buffer;
    let key: string;
    try {
      const st = statSync(path, { bigint: true });
      key = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      const hit = this.cache.get(id);
      if (hit && hit.key === key) return hit.rec;
      if (!st.isFile()) return { id, ok: false, error: "config.json is not a regular file", etag: null };
      if (st.size > MAX_CONFIG_BYTES)
        return {
          id,
          ok: false,
          error: `config.json is ${st.size} bytes (limit ${MAX_CONFIG_BYTES})`,
          etag: null,
        };
      bytes = readFileSync(path);
    } catch (e) {
      return {
        id,
        ok: false,
        error: `cannot read config.json: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        etag: null,
      };
    }
    const etag = etagOf(bytes);
    let rec: VmRecord;
    try {
      const file = parseVmFile(bytes.toString("utf8"), this.migrations);
      rec =
        file.id !== id
          ? { id, ok: false, error: `id ${file.id} does not match its directory`, etag }
          : { id, ok: true, file, etag };
    } catch (e) {
      rec = { id, ok: false, error: (e as Error).message, etag };
    }
    this.cache.set(id, { key, rec });
    return rec;
  }

  /**
   * Runs `op` after every earlier operation queued for VM `id` has ended, so that one VM's configuration
   * changes never interleave while their writes wait on the disk (off the event loop). A VM's start reads
   * its configuration through here, so it sees an edit that was accepted before it.
   */
  serial<T>(id: string, op: () => T | Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const run = prev.then(op);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return run;
  }

  /** Creates a VM's directory and first configuration file; resolves once both are durable. */
  async create(file: VmFile): Promise<string> {
    if (!Value.Check(VmFile, file))
      throw new ApiError("bad-request", "configuration does not match the schema");
    return this.serial(file.id, async () => {
      makePrivateDir(this.dirs.vmDir(file.id));
      await syncDirectoryAsync(this.dirs.vmsDir);
      const text = serializeVmFile(file);
      await writeFileDurableAsync(this.dirs.vmConfig(file.id), text);
      return etagOf(Buffer.from(text, "utf8"));
    });
  }

  /**
   * Replaces a VM's configuration with `change(current)` if `ifMatch` (when given) is still current; resolves
   * with the new file and ETag once the file is durable. Serial per VM (see serial), so two requests never
   * interleave between read and rename; `change` may throw to refuse (it runs with the latest file and the
   * VM's state at that moment).
   */
  update(
    id: string,
    ifMatch: string | undefined,
    change: (current: VmFile) => VmFile,
  ): Promise<{ file: VmFile; etag: string }> {
    return this.serial(id, async () => {
      if (!this.exists(id)) throw new ApiError("not-found", "no such VM");
      const cur = this.read(id);
      if (!cur.ok)
        throw new ApiError("invalid-configuration", `the VM's configuration is invalid: ${cur.error}`);
      if (ifMatch !== undefined && !etagMatches(ifMatch, cur.etag))
        throw new ApiError("precondition-failed", `the configuration changed (current version ${cur.etag})`);
      const next = change(structuredClone(cur.file));
      if (!Value.Check(VmFile, next)) {
        const first = Value.Errors(VmFile, next).First();
        throw new ApiError(
          "bad-request",
          `the change makes an invalid configuration: ${first?.path ?? ""} ${first?.message ?? ""}`.trim(),
        );
      }
      const text = serializeVmFile(next);
      await writeFileDurableAsync(this.dirs.vmConfig(id), text);
      return { file: next, etag: etagOf(Buffer.from(text, "utf8")) };
    });
  }

  /** Removes a VM's directory (everything the VM owns in the data directory). */
  remove(id: string): Promise<void> {
    if (!UUID.test(id)) throw new ApiError("not-found", "no such VM");
    // After the changes queued before it (their writes would fail in a removed directory); those queued
    // after it find no VM.
    return this.serial(id, async () => {
      rmSync(this.dirs.vmDir(id), { recursive: true, force: true });
      this.cache.delete(id);
      await syncDirectoryAsync(this.dirs.vmsDir);
    });
  }
}

/** If-Match: `*` or a list of entity tags, one of which must equal the current one (strong comparison). */
export function etagMatches(header: string, current: string | null): boolean {
  if (current === null) return false;
  const h = header.trim();
  if (h === "*") return true;
  return h.split(",").some((t) => t.trim() === current);
}

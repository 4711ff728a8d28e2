// Owns: the service's own configuration (`<data>/service.json`, schema ServiceConfig): defaults, validation on
// read, durable updates.
// Must not: accept a file that fails its schema (the service refuses to start with the reason).
// Spec: docs/architecture.md "The VM service".

import { existsSync, readFileSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";
import { ServiceConfig, type ServiceConfig as Config } from "../api/schemas.js";
import { writeFileDurable } from "./durable-file.js";

export const DEFAULT_SERVICE_CONFIG: Config = {
  imageRoots: [],
  rateLimit: { max: 6000, windowSeconds: 60 },
  jobRetentionSeconds: 300,
  stopTimeoutSeconds: 60,
};

export class ServiceConfigStore {
  private current: Config;
  constructor(private readonly path: string) {
    if (!existsSync(path)) {
      this.current = structuredClone(DEFAULT_SERVICE_CONFIG);
      return;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, "utf8"));
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
    const merged = { ...DEFAULT_SERVICE_CONFIG, ...(doc as object) };
    if (!Value.Check(ServiceConfig, merged)) {
      const first = Value.Errors(ServiceConfig, merged).First();
      throw new Error(`${path}: ${first?.path ?? ""} ${first?.message ?? "invalid"}`);
    }
    this.current = merged;
  }
  get(): Config {
    return this.current;
  }
  update(patch: Partial<Config>): Config {
    const next = { ...this.current, ...patch };
    writeFileDurable(this.path, JSON.stringify(next, null, 2) + "\n");
    this.current = next;
    return next;
  }
}

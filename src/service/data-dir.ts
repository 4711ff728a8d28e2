// Owns: the layout of the service's data directory (where the inventory, the authorization store, the audit
// log, the API socket and each VM's files live) and its default location.
// Must not: read or write the files themselves (their owners do), or place anything outside the directory.
// Spec: XDG Base Directory Specification ($XDG_DATA_HOME, default ~/.local/share).

import { join, resolve } from "node:path";
import { apiSocketPath, defaultDataDir } from "../host/data-home.js";
import { makePrivateDir } from "./durable-file.js";

export { defaultDataDir };

/** A UNIX socket path must fit sockaddr_un.sun_path (108 bytes with its NUL on Linux). */
export const MAX_SOCKET_PATH = 107;

export class DataDir {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }
  get serviceConfig(): string {
    return join(this.root, "service.json");
  }
  get authStore(): string {
    return join(this.root, "auth.json");
  }
  get auditLog(): string {
    return join(this.root, "audit.log");
  }
  /** The default allowed root for disk images and ISOs. */
  get images(): string {
    return join(this.root, "images");
  }
  get runDir(): string {
    return join(this.root, "run");
  }
  get apiSocket(): string {
    return apiSocketPath(this.root);
  }
  /** The service's virtual switches: their settings (the inventory; the processes run from it). */
  get switchesFile(): string {
    return join(this.root, "switches.json");
  }
  /** The runtime directory the service's switches run under (`<run>/switches/<name>/` each). */
  get switchRuntime(): string {
    return this.runDir;
  }
  switchDir(name: string): string {
    return join(this.runDir, "switches", name);
  }
  switchLog(name: string): string {
    return join(this.root, "logs", `switch-${name}.log`);
  }
  get vmsDir(): string {
    return join(this.root, "vms");
  }
  vmDir(id: string): string {
    return join(this.vmsDir, id);
  }
  vmConfig(id: string): string {
    return join(this.vmDir(id), "config.json");
  }
  /** Runtime facts the service keeps about a VM across its own restarts (was it running). */
  vmState(id: string): string {
    return join(this.vmDir(id), "state.json");
  }
  workerSocket(id: string): string {
    return join(this.vmDir(id), "worker.sock");
  }
  workerPid(id: string): string {
    return join(this.vmDir(id), "worker.pid");
  }
  workerLog(id: string): string {
    return join(this.vmDir(id), "worker.log");
  }
  consoleLog(id: string): string {
    return join(this.vmDir(id), "console.log");
  }
  /** Creates the directory tree, every directory private to this user. */
  create(): void {
    for (const d of [this.root, this.images, this.runDir, this.vmsDir, join(this.root, "logs")])
      makePrivateDir(d);
  }
}

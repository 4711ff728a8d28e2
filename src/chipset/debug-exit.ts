// Owns: QEMU's isa-debug-exit device, which test kernels use to end a run with a status: a write of value v
// stops the machine; QEMU's process exit status is then (v << 1) | 1.
// Must not: end any process itself; it reports the request to whoever runs the machine.
// Spec: QEMU hw/misc/debugexit.c behaviour (-device isa-debug-exit,iobase=0xf4,iosize=4), as documented in
// QEMU's device help; no hardware datasheet exists.

import type { PortDevice } from "./port-bus.js";

export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_SIZE = 4;

/** The process exit status QEMU uses for a debug-exit write of `value` (truncated to 8 bits by the OS). */
export function qemuExitStatus(value: number): number {
  return ((value << 1) | 1) & 0xff;
}

export class DebugExit implements PortDevice {
  constructor(private readonly onExit: (value: number) => void) {}

  readPort(): number {
    return 0;
  }

  writePort(_offset: number, _size: number, value: number): void {
    this.onExit(value >>> 0);
  }
}

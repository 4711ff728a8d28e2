// Owns: the motherboard's I/O-port routing: which device answers which port range, and what an unclaimed
// port does (reads float to all ones, writes are dropped, as on the ISA bus).
// Must not: interpret any device's registers, or let two devices claim the same port.
// Spec: PC/AT I/O address space (IBM PC/AT Technical Reference, I/O address map); the open-bus behaviour of
// unclaimed ISA ports (pulled-up data lines read as 0xFF).

/** A device on the port bus; `offset` is relative to the base it was mapped at, `size` is 1, 2 or 4. */
export interface PortDevice {
  readPort(offset: number, size: number): number;
  writePort(offset: number, size: number, value: number): void;
}

export class PortBusError extends Error {
  override name = "PortBusError";
}

interface Mapping {
  base: number;
  count: number;
  device: PortDevice;
  name: string;
}

const PORT_COUNT = 0x10000;

function allOnes(size: number): number {
  return size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

export class PortBus {
  /** Index into `mappings` + 1 for every port, 0 when unclaimed: one array lookup per access. */
  private readonly owner = new Uint16Array(PORT_COUNT);
  private readonly mappings: Mapping[] = [];

  map(base: number, count: number, device: PortDevice, name: string): void {
    if (
      !Number.isInteger(base) ||
      !Number.isInteger(count) ||
      count <= 0 ||
      base < 0 ||
      base + count > PORT_COUNT
    ) {
      throw new PortBusError(`${name}: port range 0x${base.toString(16)}+${count} is outside 0..0xffff`);
    }
    for (let p = base; p < base + count; p++) {
      const o = this.owner[p]!;
      if (o !== 0)
        throw new PortBusError(
          `${name}: port 0x${p.toString(16)} already belongs to ${this.mappings[o - 1]!.name}`,
        );
    }
    this.mappings.push({ base, count, device, name });
    this.owner.fill(this.mappings.length, base, base + count);
  }

  read(port: number, size: number): number {
    const o = this.owner[port & 0xffff]!;
    if (o === 0) return allOnes(size);
    const m = this.mappings[o - 1]!;
    return m.device.readPort(port - m.base, size) & allOnes(size);
  }

  write(port: number, size: number, value: number): void {
    const o = this.owner[port & 0xffff]!;
    if (o === 0) return;
    const m = this.mappings[o - 1]!;
    m.device.writePort(port - m.base, size, value & allOnes(size));
  }

  /** Every mapped range, in mapping order (the worker registers them with the partition as intercepts). */
  ranges(): Array<{ base: number; count: number; name: string }> {
    return this.mappings.map((m) => ({ base: m.base, count: m.count, name: m.name }));
  }

  /** The device mapped at `port`, for inspection. */
  nameAt(port: number): string | undefined {
    const o = this.owner[port & 0xffff]!;
    return o === 0 ? undefined : this.mappings[o - 1]!.name;
  }
}

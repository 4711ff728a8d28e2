// Owns: structured emission on top of a function body (encoder.ts FuncCode): the nesting depth of open
// labels, so a branch names its target by the depth at which the target was opened instead of a counted
// relative index, and pools of scratch locals taken and given back around each emitted sequence.
// Must not: know about x86; the translator (unit.ts) and the runtime module (runtime.ts) use it.
// Spec: WebAssembly Core Specification 2.0, 2.4.8 (control instructions: labels are relative depths).

import { FuncCode, T } from "./encoder.js";

/**
 * A function body written with labels by depth. It is the body itself (not a wrapper around one), so each
 * instruction the translator emits is one call: the translator runs in V8's unoptimised tiers for its first
 * units, where a layer of forwarding calls costs as much as the encoding.
 */
export class Emitter extends FuncCode {
  /** Labels open now (block, loop, if); a label's id is the depth right after it was opened. */
  depth = 0;
  private readonly free64: number[] = [];
  private readonly free32: number[] = [];

  /** `buf`: scratch space to write the body into (see FuncCode). */
  constructor(paramCount: number, buf?: Uint8Array) {
    super(paramCount, buf);
  }

  override block(bt: T = T.Void): number {
    super.block(bt);
    return ++this.depth;
  }
  override loop(bt: T = T.Void): number {
    super.loop(bt);
    return ++this.depth;
  }
  override if_(bt: T = T.Void): number {
    super.if_(bt);
    return ++this.depth;
  }
  override end(): void {
    super.end();
    this.depth--;
  }
  /** Branches to the label opened as `label` (its id from block/loop/if_), not to a relative depth. */
  override br(label: number): void {
    super.br(this.depth - label);
  }
  override brIf(label: number): void {
    super.brIf(this.depth - label);
  }

  /** A scratch i64 local; give it back with `free` when the sequence using it is emitted. */
  tmp64(): number {
    return this.free64.pop() ?? this.locals(1, T.I64);
  }
  tmp32(): number {
    return this.free32.pop() ?? this.locals(1, T.I32);
  }
  free64l(l: number): void {
    this.free64.push(l);
  }
  free32l(l: number): void {
    this.free32.push(l);
  }

  /** Pushes an i64 constant given as a small signed integer. */
  i64s(v: number): void {
    this.i64(v | 0, v < 0 ? -1 : 0);
  }
}

// Owns: structured emission on top of a function body (encoder.ts FuncCode): the nesting depth of open
// labels, so a branch names its target by the depth at which the target was opened instead of a counted
// relative index, and pools of scratch locals taken and given back around each emitted sequence.
// Must not: know about x86; the translator (unit.ts) and the runtime module (runtime.ts) use it.
// Spec: WebAssembly Core Specification 2.0, 2.4.8 (control instructions: labels are relative depths).

import { FuncCode, Op, T } from "./encoder.js";

export class Emitter {
  /** Labels open now (block, loop, if); a label's id is the depth right after it was opened. */
  depth = 0;
  private readonly free64: number[] = [];
  private readonly free32: number[] = [];

  constructor(readonly c: FuncCode) {}

  block(bt: T = T.Void): number {
    this.c.block(bt);
    return ++this.depth;
  }
  loop(bt: T = T.Void): number {
    this.c.loop(bt);
    return ++this.depth;
  }
  if_(bt: T = T.Void): number {
    this.c.if_(bt);
    return ++this.depth;
  }
  else_(): void {
    this.c.else_();
  }
  end(): void {
    this.c.end();
    this.depth--;
  }
  /** Branches to the label opened as `label` (its id from block/loop/if_). */
  br(label: number): void {
    this.c.br(this.depth - label);
  }
  brIf(label: number): void {
    this.c.brIf(this.depth - label);
  }

  /** A scratch i64 local; give it back with `free` when the sequence using it is emitted. */
  tmp64(): number {
    return this.free64.pop() ?? this.c.locals(1, T.I64);
  }
  tmp32(): number {
    return this.free32.pop() ?? this.c.locals(1, T.I32);
  }
  free64l(l: number): void {
    this.free64.push(l);
  }
  free32l(l: number): void {
    this.free32.push(l);
  }

  // Short forms of the instructions the translator emits most.
  op(o: Op): void {
    this.c.op(o);
  }
  get(l: number): void {
    this.c.get(l);
  }
  set(l: number): void {
    this.c.set(l);
  }
  tee(l: number): void {
    this.c.tee(l);
  }
  i32(v: number): void {
    this.c.i32(v);
  }
  i64(lo: number, hi: number): void {
    this.c.i64(lo, hi);
  }
  call(fn: number): void {
    this.c.call(fn);
  }
  /** Pushes an i64 constant given as a small signed integer. */
  i64s(v: number): void {
    this.c.i64(v | 0, v < 0 ? -1 : 0);
  }
}

// Owns: the x87 FPU / MMX register state of one processor (eight physical 80-bit registers, control, status
// and tag words, last-instruction and last-operand pointers, last opcode) and XCR0, as plain fields with no
// behaviour beyond reset and the MMX aliasing rules. The XMM file and MXCSR stay in core.ts.
// Must not: import core.ts or execute instructions (handlers live in sse-*.ts, fxsave.ts, mmx.ts).
// Spec: Intel SDM Vol. 1 8.1 (x87 execution environment: data registers, FSW/FCW/FTW, pointers), 9.2.1 (MMX
// registers alias the significands of R0-R7; an MMX write sets the exponent field to all ones), 13.1 (XCR0).

/** Power-on values (SDM Vol. 3A Table 9-1): FCW 0040h, all tags empty, registers zero, XCR0 = x87 only. */
export class FpuState {
  /** Physical registers R0..R7, 10 bytes each (64-bit significand little-endian, then sign+exponent). */
  readonly regs = new Uint8Array(80);
  readonly regView = new DataView(this.regs.buffer);
  fcw = 0x40;
  /** Status word including TOP in bits 11..13. */
  fsw = 0;
  /** Abridged tag: bit i set = physical register i is not empty (the FXSAVE form). */
  ftw = 0;
  fop = 0;
  fipLo = 0;
  fipHi = 0;
  fcs = 0;
  fdpLo = 0;
  fdpHi = 0;
  fds = 0;
  /** XCR0 (XFEATURE_ENABLED_MASK): bit 0 x87 is always set; bit 1 SSE. */
  xcr0 = 1;

  reset(): void {
    this.regs.fill(0);
    this.fcw = 0x40;
    this.fsw = 0;
    this.ftw = 0;
    this.fop = 0;
    this.fipLo = this.fipHi = this.fcs = 0;
    this.fdpLo = this.fdpHi = this.fds = 0;
    this.xcr0 = 1;
  }

  /** FNINIT state (SDM Vol. 1 8.1.10): FCW 037Fh, FSW 0, tags empty, pointers cleared, registers kept. */
  init(): void {
    this.fcw = 0x37f;
    this.fsw = 0;
    this.ftw = 0;
    this.fop = 0;
    this.fipLo = this.fipHi = this.fcs = 0;
    this.fdpLo = this.fdpHi = this.fds = 0;
  }

  /** What every MMX instruction except EMMS does to the x87 state: TOP = 0, all tags valid. */
  enterMmx(): void {
    this.fsw &= ~0x3800;
    this.ftw = 0xff;
  }

  /** MMX register i (= physical R i): low and high halves of its 64-bit significand. */
  mmxLo(i: number): number {
    return this.regView.getInt32(i * 10, true);
  }
  mmxHi(i: number): number {
    return this.regView.getInt32(i * 10 + 4, true);
  }

  /** Writes MMX register i; the exponent/sign field becomes all ones (SDM Vol. 1 9.5.1). */
  setMmx(i: number, lo: number, hi: number): void {
    const v = this.regView;
    v.setInt32(i * 10, lo, true);
    v.setInt32(i * 10 + 4, hi, true);
    v.setUint16(i * 10 + 8, 0xffff, true);
  }
}

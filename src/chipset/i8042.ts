// Owns: a minimal 8042 keyboard controller at 0x60 (data) / 0x64 (status, command) with no keyboard and no
// mouse attached: the status register, the controller command byte, controller self-test (0xAA -> 0x55),
// port interface tests, the output port (A20 and the reset line), pulse-output commands (0xFE resets the
// machine), and the loopback commands Linux's i8042 driver uses to probe. Bytes sent to the absent devices
// end with a transmit timeout and 0xFE, as a real controller reports a missing device, so probes finish at
// once instead of waiting for their timeouts. Output-buffer data raises IRQ1 (keyboard) or IRQ12 (aux)
// when the command byte enables them.
// Must not: emulate a keyboard or mouse (later work); reset the machine itself (it calls the board).
// Spec: IBM PC/AT Technical Reference, "Keyboard controller" (status register bits, commands 0x20/0x60,
// 0xAA, 0xAB, 0xAD/0xAE, 0xC0, 0xD0/0xD1, 0xF0-0xFF); IBM PS/2 Technical Reference additions (0xA7-0xA9
// auxiliary device, 0xD2/0xD3 write output buffer, 0xD4 write to auxiliary device).

import type { PortDevice } from "./port-bus.js";
import type { IrqLine } from "../contracts/platform.js";
import type { ResetKind } from "./reset-control.js";

export const I8042_DATA_PORT = 0x60;
export const I8042_STATUS_PORT = 0x64;
export const KEYBOARD_IRQ = 1;
export const AUX_IRQ = 12;

const ST_OBF = 0x01;
const ST_SYS = 0x04;
const ST_CMD = 0x08;
const ST_UNLOCKED = 0x10;
const ST_AUX = 0x20;
const ST_TIMEOUT = 0x40;

const CB_KBD_INT = 0x01;
const CB_AUX_INT = 0x02;
const CB_SYS = 0x04;
const CB_KBD_OFF = 0x10;
const CB_AUX_OFF = 0x20;

const QUEUE_LIMIT = 16;
/** Keyboard interrupt on, system flag (POST passed), scan-code translation: what PC firmware leaves. */
const DEFAULT_COMMAND_BYTE = CB_KBD_INT | CB_SYS | 0x40;

export interface I8042Options {
  keyboardIrq: IrqLine;
  auxIrq: IrqLine;
  onReset: (kind: ResetKind, source: string) => void;
}

export class I8042 implements PortDevice {
  private commandByte = DEFAULT_COMMAND_BYTE;
  private outputPort = 0x03; // reset line high (inactive), A20 on
  private lastWasCommand = false;
  private timeout = false;
  /** A command waiting for its data byte on port 0x60. */
  private pending = 0;
  private readonly queue: { byte: number; aux: boolean }[] = [];
  private kbdLevel = false;
  private auxLevel = false;

  constructor(private readonly options: I8042Options) {}

  /** Platform reset: default command byte and output port, empty buffer, IRQs low. */
  reset(): void {
    this.commandByte = DEFAULT_COMMAND_BYTE;
    this.outputPort = 0x03;
    this.lastWasCommand = false;
    this.timeout = false;
    this.pending = 0;
    this.queue.length = 0;
    this.drive(false, false);
  }

  readPort(offset: number, _size: number): number {
    if (offset === 4) return this.status();
    if (offset !== 0) return 0xff;
    const head = this.queue.shift();
    this.timeout = false;
    // Reading the buffer drops the IRQ; a next byte raises it again (a fresh edge for the PIC).
    this.drive(false, false);
    this.updateIrq();
    return head ? head.byte : 0;
  }

  writePort(offset: number, _size: number, value: number): void {
    value &= 0xff;
    if (offset === 4) {
      this.lastWasCommand = true;
      this.command(value);
    } else if (offset === 0) {
      this.lastWasCommand = false;
      this.data(value);
    }
    this.updateIrq();
  }

  private status(): number {
    const head = this.queue[0];
    return (
      (head ? ST_OBF : 0) |
      (head?.aux ? ST_AUX : 0) |
      (this.commandByte & CB_SYS ? ST_SYS : 0) |
      (this.lastWasCommand ? ST_CMD : 0) |
      ST_UNLOCKED |
      (this.timeout ? ST_TIMEOUT : 0)
    );
  }

  private reply(byte: number, aux = false): void {
    if (this.queue.length < QUEUE_LIMIT) this.queue.push({ byte: byte & 0xff, aux });
  }

  private command(cmd: number): void {
    this.pending = 0;
    if (cmd >= 0x20 && cmd <= 0x3f) {
      // Read controller RAM; byte 0 is the command byte. The rest of the RAM is not modelled: reads 0.
      this.reply(cmd === 0x20 ? this.commandByte : 0);
      return;
    }
    if (cmd >= 0x60 && cmd <= 0x7f) {
      this.pending = cmd;
      return;
    }
    switch (cmd) {
      case 0xa7:
        this.commandByte |= CB_AUX_OFF;
        break;
      case 0xa8:
        this.commandByte &= ~CB_AUX_OFF;
        break;
      case 0xa9: // auxiliary interface test: 0 = no error
      case 0xab: // keyboard interface test
        this.reply(0x00);
        break;
      case 0xaa:
        this.commandByte |= CB_SYS;
        this.reply(0x55);
        break;
      case 0xad:
        this.commandByte |= CB_KBD_OFF;
        break;
      case 0xae:
        this.commandByte &= ~CB_KBD_OFF;
        break;
      case 0xc0: // input port: no keyboard lock, colour display
        this.reply(0xbf);
        break;
      case 0xd0:
        this.reply(this.outputPort);
        break;
      case 0xd1:
      case 0xd2:
      case 0xd3:
      case 0xd4:
        this.pending = cmd;
        break;
      case 0xdd:
        this.outputPort &= ~0x02;
        break;
      case 0xdf:
        this.outputPort |= 0x02;
        break;
      default:
        // 0xF0-0xFF pulse output-port bits whose bit in the low nibble is 0; bit 0 is the reset line.
        if (cmd >= 0xf0 && !(cmd & 0x01)) this.options.onReset("hard", "i8042 pulse reset");
        break;
    }
  }

  private data(value: number): void {
    const cmd = this.pending;
    this.pending = 0;
    if (cmd >= 0x60 && cmd <= 0x7f) {
      if (cmd === 0x60) this.commandByte = value;
      return;
    }
    switch (cmd) {
      case 0xd1:
        this.outputPort = value | 0x01;
        if (!(value & 0x01)) this.options.onReset("hard", "i8042 output port reset line");
        return;
      case 0xd2:
        this.reply(value, false);
        return;
      case 0xd3:
        this.reply(value, true);
        return;
      case 0xd4:
        this.absentDevice(true);
        return;
      default:
        this.absentDevice(false);
        return;
    }
  }

  /** No device answers on the keyboard or aux wire: transmit timeout and 0xFE (PC/AT status bit 6). */
  private absentDevice(aux: boolean): void {
    this.timeout = true;
    this.reply(0xfe, aux);
  }

  private drive(kbd: boolean, aux: boolean): void {
    if (kbd !== this.kbdLevel) {
      this.kbdLevel = kbd;
      this.options.keyboardIrq.set(kbd);
    }
    if (aux !== this.auxLevel) {
      this.auxLevel = aux;
      this.options.auxIrq.set(aux);
    }
  }

  private updateIrq(): void {
    const head = this.queue[0];
    this.drive(
      !!head && !head.aux && (this.commandByte & CB_KBD_INT) !== 0,
      !!head && head.aux && (this.commandByte & CB_AUX_INT) !== 0,
    );
  }

  inspect(): string {
    return (
      `i8042: status=0x${this.status().toString(16)} command byte=0x${this.commandByte.toString(16)} ` +
      `output port=0x${this.outputPort.toString(16)} queued=${this.queue.length}` +
      (this.pending ? ` awaiting data for 0x${this.pending.toString(16)}` : "")
    );
  }
}

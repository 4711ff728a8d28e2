// Owns: a VM's serial console in the page: xterm.js fed by the console WebSocket's binary frames, keys sent
// back only when the principal holds vm.console.input (otherwise the terminal is read-only and says so),
// reconnecting while the VM runs: after a dropped connection (the service restarted, the network failed) it
// retries with a doubling delay (0.5 s to 10 s) and resumes from the worker's backlog; a close that says the VM
// stopped or cannot be reached is final until the page reconnects it.
// Must not: interpret the console's bytes (the guest owns them) or send input the principal may not send.
// Spec: docs/architecture.md "The web UI (src/web/)"; the vmConsole route of src/api/routes.ts.

import { Terminal } from "@xterm/xterm";
import type { Client } from "./client.js";

export class ConsoleView {
  readonly term: Terminal;
  private ws: WebSocket | null = null;
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private delay = 500;
  /** Whether the terminal has shown a connection before: a new one replays the backlog onto a clean screen. */
  private connectedOnce = false;

  constructor(
    private readonly client: Client,
    private readonly vm: string,
    host: HTMLElement,
    private readonly canInput: boolean,
    private readonly note: (text: string) => void,
  ) {
    this.term = new Terminal({
      convertEol: false,
      disableStdin: !canInput,
      cursorBlink: canInput,
      rows: 24,
      cols: 80,
      scrollback: 2000,
    });
    this.term.open(host);
    this.term.textarea?.setAttribute(
      "aria-label",
      canInput ? `Serial console of ${vm}` : `Serial console of ${vm} (read only)`,
    );
    this.term.onData((d) => {
      if (this.canInput && this.ws?.readyState === WebSocket.OPEN) this.ws.send(new TextEncoder().encode(d));
    });
    this.connect();
  }

  private connect(): void {
    this.retry = null;
    const ws = this.client.websocket("vmConsole", { vm: this.vm });
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      // The worker sends its recent output first: on a clean screen it redraws what the guest last showed
      // instead of repeating it under the old text.
      if (this.connectedOnce) this.term.reset();
      const again = this.connectedOnce ? "reconnected" : "connected";
      this.connectedOnce = true;
      this.note(this.canInput ? `Console ${again}.` : `Console ${again} (read only).`);
    };
    ws.onmessage = (m) => {
      if (m.data instanceof ArrayBuffer) this.term.write(new Uint8Array(m.data));
    };
    ws.onclose = (c) => {
      if (this.closed || this.ws !== ws) return;
      // 1000: the VM stopped; 1008: refused; 1011: the VM is not running or its worker does not answer.
      // Anything else (1006 a lost connection, 1001/1012 the service going away) is worth retrying.
      if (c.code === 1000 || c.code === 1008 || c.code === 1011) {
        this.note(`Console closed: ${c.reason || `code ${c.code}`}`);
        return;
      }
      this.note(`Console connection lost (${c.reason || `code ${c.code}`}); reconnecting…`);
      this.retry = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10_000);
    };
  }

  /** Reopens the console (after the VM started again, or the connection dropped): at once, not after a delay. */
  reconnect(): void {
    if (this.retry !== null) clearTimeout(this.retry);
    else if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.connect();
  }

  /** The terminal's text as the guest wrote its lines (scrollback included): what a screen reader or a test reads. */
  text(): string {
    const b = this.term.buffer.active;
    let text = "";
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      // A line the terminal wrapped continues the previous one: no newline between them.
      if (i > 0 && !line?.isWrapped) text += "\n";
      text += line?.translateToString(true) ?? "";
    }
    return text;
  }

  focus(): void {
    this.term.focus();
  }

  dispose(): void {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.ws?.close();
    this.term.dispose();
  }
}

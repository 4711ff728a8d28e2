// Owns: a VM's serial console in the page: xterm.js fed by the console WebSocket's binary frames, keys sent
// back only when the principal holds vm.console.input (otherwise the terminal is read-only and says so),
// reconnecting while the VM runs.
// Must not: interpret the console's bytes (the guest owns them) or send input the principal may not send.
// Spec: docs/architecture.md "The web UI (src/web/)"; the vmConsole route of src/api/routes.ts.

import { Terminal } from "@xterm/xterm";
import type { Client } from "./client.js";

export class ConsoleView {
  readonly term: Terminal;
  private ws: WebSocket | null = null;
  private closed = false;

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
    const ws = this.client.websocket("vmConsole", { vm: this.vm });
    this.ws = ws;
    ws.onopen = () => this.note(this.canInput ? "Console connected." : "Console connected (read only).");
    ws.onmessage = (m) => {
      if (m.data instanceof ArrayBuffer) this.term.write(new Uint8Array(m.data));
    };
    ws.onclose = (c) => {
      if (this.closed) return;
      this.note(`Console closed: ${c.reason || `code ${c.code}`}`);
    };
  }

  /** Reopens the console (after the VM started again, or the connection dropped). */
  reconnect(): void {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
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
    this.ws?.close();
    this.term.dispose();
  }
}

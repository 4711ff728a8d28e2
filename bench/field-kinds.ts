// Field-kind probe (docs/decisions/0005, Round 5): boots the bundled guest in-process to its first prompt and
// powers it off, walking the machine's object graph (own enumerable properties, Map values, array elements)
// after construction and every 50 ms of the run, and lists the fields that V8 has to change an object's
// hidden class for: a number field that started as a small integer and later held a value outside the
// int32 range (V8 then deprecates the class and deoptimises every function that saw it; such a field should
// start as DOUBLE_ZERO, src/support/heap-number.ts), and fields added or deleted after construction.
// Fields already initialised with DOUBLE_ZERO are listed too (their zero looks like a small integer here):
// compare with the source. Typed arrays, WebAssembly objects and closures' variables are not walked.
// Run: npm run build && node dist/bench/field-kinds.js
import { readFileSync } from "node:fs";
import { GuestMemory } from "../src/memory/guest-memory.js";
import { PacedClock } from "../src/worker/paced-clock.js";
import { PcMachine } from "../src/worker/pc-machine.js";
import { tuneWasmEngine } from "../src/host/wasm-engine.js";
import { BUNDLED_INITRD, BUNDLED_KERNEL } from "../tests/linux/guest-console.js";

const PROMPT = /viridian-guest:[^\n]*? # $/;
const MAX_OBJECTS = 20_000;
const MAX_ELEMENTS = 50;

type Kind = "small" | "double" | "null" | "object" | "other";

function kindOf(v: unknown): Kind {
  // V8's small integers are int32 on x64 Node (no pointer compression); 31 bits where pointers are compressed.
  if (typeof v === "number") return (v | 0) === v && !Object.is(v, -0) ? "small" : "double";
  if (v === null) return "null";
  if (typeof v === "object" || typeof v === "function") return "object";
  return "other";
}

interface Seen {
  path: string;
  kinds: Map<string, Kind[]>;
}

function isLeaf(o: object): boolean {
  return (
    ArrayBuffer.isView(o) ||
    o instanceof ArrayBuffer ||
    o instanceof SharedArrayBuffer ||
    o instanceof WebAssembly.Memory ||
    o instanceof WebAssembly.Module ||
    o instanceof WebAssembly.Instance
  );
}

/** Visits the objects reachable from root (breadth first), each once, with the path it was reached by. */
function walk(root: object, visit: (o: Record<string, unknown>, path: string) => void): void {
  const seen = new Set<object>();
  const queue: [object, string][] = [[root, "machine"]];
  for (let i = 0; i < queue.length && seen.size < MAX_OBJECTS; i++) {
    const [o, path] = queue[i]!;
    if (seen.has(o) || isLeaf(o)) continue;
    seen.add(o);
    const push = (v: unknown, p: string): void => {
      if (v !== null && typeof v === "object") queue.push([v, p]);
    };
    if (o instanceof Map) {
      let n = 0;
      for (const v of o.values()) if (n++ < MAX_ELEMENTS) push(v, `${path}{}`);
      continue;
    }
    if (Array.isArray(o)) {
      for (let j = 0; j < Math.min(o.length, MAX_ELEMENTS); j++) push(o[j], `${path}[]`);
      continue;
    }
    const rec = o as Record<string, unknown>;
    visit(rec, path);
    for (const k of Object.keys(rec)) push(rec[k], `${path}.${k}`);
  }
}

const memory = new GuestMemory(256 * 1024 * 1024);
let line = "";
let sent = false;
tuneWasmEngine();
const machine: PcMachine = new PcMachine({
  memory,
  clock: new PacedClock(50e6),
  tscHz: 1_000_000_000,
  cpus: 1,
  serial: (b) => {
    const ch = String.fromCharCode(b);
    line = ch === "\n" ? "" : line + ch;
    if (line.endsWith("\u001b[6n")) {
      line = line.slice(0, -4);
      machine.sendInput(new TextEncoder().encode("\u001b[1;1R"));
    }
    if (ch !== " " || sent || !PROMPT.test(line)) return;
    sent = true;
    machine.sendInput(new TextEncoder().encode("poweroff\n"));
  },
});

const objects = new Map<object, Seen>();
const record = (o: Record<string, unknown>, path: string): void => {
  let s = objects.get(o);
  if (s === undefined) objects.set(o, (s = { path, kinds: new Map() }));
  for (const k of Object.keys(o)) {
    const kind = kindOf(o[k]);
    const list = s.kinds.get(k);
    if (list === undefined) s.kinds.set(k, [kind]);
    else if (!list.includes(kind)) list.push(kind);
  }
};
walk(machine, record);
const constructed = new Map<object, Set<string>>();
for (const [o] of objects) constructed.set(o, new Set(Object.keys(o)));
machine.bootLinux({
  kernel: readFileSync(BUNDLED_KERNEL),
  initrd: readFileSync(BUNDLED_INITRD),
  cmdline: "console=ttyS0",
});
const timer = setInterval(() => walk(machine, (o, p) => objects.has(o) && record(o, p)), 50);
const stop = await machine.run();
clearInterval(timer);
walk(machine, (o, p) => objects.has(o) && record(o, p));

const out = new Set<string>();
for (const [o, s] of objects) {
  const name = (o as { constructor?: { name?: string } }).constructor?.name ?? "?";
  const keys = constructed.get(o)!;
  for (const [k, kinds] of s.kinds) {
    if (!keys.has(k)) out.add(`${name}.${k}: added after construction (${kinds.join(" > ")})  @ ${s.path}`);
    else if (kinds[0] === "small" && kinds.includes("double"))
      out.add(`${name}.${k}: small integer > double  @ ${s.path}`);
  }
  for (const k of keys) if (!(k in o)) out.add(`${name}.${k}: deleted  @ ${s.path}`);
}
console.log(`stop: ${stop.kind}; ${objects.size} objects`);
for (const l of [...out].sort()) console.log(l);

// Owns: one processor's cache of decoded instructions per guest-physical code page: the pages held, their
// bounds (pages and decoded records) with eviction of the oldest page instead of flushing everything,
// instructions that straddle into the next page (kept with the first page; cpu.ts checks their tail
// bytes and mapping at every fetch, so the next page need not be marked as code), and the per-page
// translation state the run loop hangs on a page (heat, unit).
// Must not: decode bytes, translate addresses, or mark pages in GuestMemory.codePages (cpu.ts does, since
// it also drops the peers' write entries); a page leaves the cache only through `drop`, `evictOldest` or
// `clear`, which call `onDrop` so the owner can reset whatever pointed into the page.
// Spec: Intel SDM Vol. 3A 8.1.3 (self-modifying and cross-modifying code: a write to a code page must be
// seen by the next instruction fetched from it).

import type { Insn } from "./insn.js";

/** Longest x86 instruction: a straddling one starts in the last 14 bytes of its page. */
const MAX_INSN = 15;

export class CodePage {
  /** Decoded instructions by page offset (each in the code mode of its `mode` field). */
  readonly insns = new Array<Insn | undefined>(4096);
  /** Decoded records held here (counted against the cache's bound). */
  count = 0;
  /**
   * Instructions starting in this page's last 14 bytes and ending in the next one, by 4096 - offset. Each
   * records the RAM page of its tail (`Insn.page2`) and the tail's bytes (`Insn.tail`); it is valid while
   * the next linear page maps to that page and those bytes are unchanged.
   */
  straddle: Array<Insn | undefined> | null = null;
  /** Block starts executed on this page (heat for translation; cpu.ts counts it). */
  heat = 0;
  /** The translation unit compiled for this page, owned by the translation tier (opaque here). */
  unit: object | null = null;
  /** Units compiled for this page so far (recompilations add entry points found later; bounded). */
  compiles = 0;
  /** A compilation for this page still in the engine's background (owned by the tier; opaque here). */
  pending: object | null = null;

  constructor(readonly ramPage: number) {}
}

export class CodeCache {
  private readonly pages = new Map<number, CodePage>();
  /** Decoded records held across all pages. */
  decoded = 0;
  /** Pages evicted to respect the bounds (statistics). */
  evictions = 0;

  constructor(
    readonly maxPages: number,
    readonly maxDecoded: number,
    /** Called for every page that leaves the cache (dropped, evicted or cleared). */
    private readonly onDrop: (page: CodePage) => void,
  ) {}

  get size(): number {
    return this.pages.size;
  }

  get(ramPage: number): CodePage | undefined {
    return this.pages.get(ramPage);
  }

  /** The page's entry, created (after evicting the oldest page when the cache is full) if absent. */
  open(ramPage: number): { page: CodePage; created: boolean } {
    const p = this.pages.get(ramPage);
    if (p !== undefined) return { page: p, created: false };
    if (this.pages.size >= this.maxPages) this.evictOldest();
    const page = new CodePage(ramPage);
    this.pages.set(ramPage, page);
    return { page, created: true };
  }

  /** Accounts for one more decoded record in `page`; evicts older pages while over the bound. */
  noteDecoded(page: CodePage): void {
    page.count++;
    this.decoded++;
    while (this.decoded > this.maxDecoded && this.pages.size > 1) {
      const first = this.pages.keys().next().value as number;
      if (first === page.ramPage) {
        // The page being filled is the oldest: move it to the young end and evict the next one.
        this.pages.delete(first);
        this.pages.set(first, page);
        continue;
      }
      this.evictOldest();
    }
  }

  /** Caches a straddling instruction at offset po of `page` (its tail: RAM page d.page2, bytes d.tail). */
  addStraddle(page: CodePage, po: number, d: Insn): void {
    page.straddle ??= new Array<Insn | undefined>(MAX_INSN);
    page.straddle[4096 - po] = d;
  }

  /** The cached straddling instruction at offset po of `page`, if any. */
  straddleAt(page: CodePage, po: number): Insn | undefined {
    return page.straddle?.[4096 - po];
  }

  /** Drops a page (its code was written) with its decodes. */
  drop(ramPage: number): void {
    const p = this.pages.get(ramPage);
    if (p !== undefined) this.remove(p);
  }

  evictOldest(): void {
    const first = this.pages.values().next().value as CodePage | undefined;
    if (first === undefined) return;
    this.evictions++;
    this.remove(first);
  }

  clear(): void {
    for (const p of [...this.pages.values()]) this.remove(p);
    this.decoded = 0;
  }

  /** Every page held, oldest first (diagnostics and tests). */
  held(): CodePage[] {
    return [...this.pages.values()];
  }

  private remove(p: CodePage): void {
    this.pages.delete(p.ramPage);
    this.decoded -= p.count;
    p.count = 0;
    this.onDrop(p);
  }
}

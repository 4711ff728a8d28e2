// Owns: building DOM nodes from plain values (text only: nothing from the API is ever parsed as HTML).
// Must not: set innerHTML or attributes that run code.
// Spec: docs/architecture.md "The web UI (src/web/)".

type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

export function button(
  label: string,
  onClick: () => void,
  attrs: Record<string, string> = {},
): HTMLButtonElement {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

export function mib(bytes: number): string {
  return bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0
    ? `${bytes / 1024 ** 3} GiB`
    : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/**
 * A box that scrolls its (wide) table sideways on a narrow screen: focusable and named, so a keyboard can
 * scroll it too (WCAG 2.1.1; axe's scrollable-region-focusable).
 */
export function scrollBox(label: string, child: Node): HTMLDivElement {
  return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": label }, child);
}

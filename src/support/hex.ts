// Owns: formatting numbers for humans (traces, errors, inspect views).
// Must not: be used on a hot path; it allocates strings.
// Spec: none (presentation only).

/** Formats an unsigned 32-bit value as 0x-prefixed hexadecimal, zero-padded to `digits`. */
export function hex32(value: number, digits = 8): string {
  return "0x" + (value >>> 0).toString(16).padStart(digits, "0");
}

/** Formats a 64-bit value held as (lo, hi) 32-bit halves (docs/decisions/0001) as 16 hex digits. */
export function hex64(lo: number, hi: number): string {
  return "0x" + (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0");
}

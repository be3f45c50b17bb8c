/** Printing for the benchmarks: markdown tables that can be pasted into the README, and target verdicts. */

/** A markdown table; numbers are right-aligned. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, col) => Math.max(title.length, ...rows.map((row) => (row[col] ?? '').length)))
  const numeric = header.map((_, col) => rows.length > 0 && rows.every((row) => /^[\d.,×%<>~ µmnsx/–-]*$/.test(row[col] ?? '')))
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, col) => (numeric[col] ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0))).join(' | ')} |`
  const rule = `| ${widths.map((width, col) => (numeric[col] ? `${'-'.repeat(Math.max(1, width - 1))}:` : '-'.repeat(width))).join(' | ')} |`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

/** A count with thousands separators and no decimals (`1,234,567`). */
export function formatCount(value: number): string {
  if (!Number.isFinite(value)) return '–'
  return Math.round(value).toLocaleString('en-US')
}

/** Nanoseconds, shown in the unit that keeps them readable (`812 ns`, `41.3 µs`, `1.20 ms`). */
export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return '–'
  if (ns < 1_000) return `${ns.toFixed(0)} ns`
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(ns < 10_000 ? 2 : 1)} µs`
  return `${(ns / 1_000_000).toFixed(2)} ms`
}

/** Milliseconds with two decimals (`0.41 ms`). */
export function formatMs(ms: number): string {
  return Number.isFinite(ms) ? `${ms.toFixed(ms < 10 ? 3 : 1)} ms` : '–'
}

/** A ratio as `5.2×`. */
export function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(ratio < 10 ? 2 : 1)}×` : '–'
}

/** One target's verdict line, e.g. `target met: fragcache L1 hit ≥ 5× bentocache (measured 9.1×)`. */
export function verdict(met: boolean, target: string, measured: string): string {
  return `${met ? 'target met' : 'target NOT met'}: ${target} (measured ${measured})`
}

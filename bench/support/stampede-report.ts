/** The report of `bench:stampede`: one markdown table per case, a column per variant, and a verdict per target. */
import { markdownTable, verdict } from './report.ts'
import type { Variant, VariantId } from './stampede-variants.ts'

/** What a variant's cell says when this fragcache does not have its options yet. */
export const NOT_AVAILABLE = 'not available yet'

/** One row: a figure measured for each variant that ran. */
export interface Figure {
  readonly name: string
  readonly values: Partial<Record<VariantId, string>>
  /** The target, in words, when the row has one. */
  readonly target?: string
}

/** A target judged for each variant that ran. */
export interface Target {
  readonly text: string
  /** Whether the variant's figures meet it, and what was measured; undefined when the variant did not run. */
  readonly judge: (variant: VariantId) => { met: boolean; measured: string } | undefined
}

/** One case of the benchmark. */
export interface Section {
  readonly title: string
  /** How it was measured, in a sentence or two. */
  readonly method: string
  readonly figures: readonly Figure[]
  readonly targets: readonly Target[]
  /** Anything else worth printing under the table (per-trial figures, a server's stderr). */
  readonly notes?: readonly string[]
}

/** The section as markdown. */
export function renderSection(section: Section, variants: readonly Variant[]): string {
  const header = ['figure', ...variants.map((v) => v.label), 'target']
  const rows = section.figures.map((figure) => [
    figure.name,
    ...variants.map((v) => (v.available ? (figure.values[v.id] ?? '–') : NOT_AVAILABLE)),
    figure.target ?? '',
  ])
  const lines = [`### ${section.title}`, '', section.method, '', markdownTable(header, rows), '']
  for (const target of section.targets) {
    for (const v of variants) {
      const judged = v.available ? target.judge(v.id) : undefined
      lines.push(judged === undefined ? `${NOT_AVAILABLE} (${v.label}): ${target.text}` : `${verdict(judged.met, target.text, judged.measured)} — ${v.label}`)
    }
  }
  if (section.notes !== undefined && section.notes.length > 0) lines.push('', ...section.notes)
  return lines.join('\n')
}

/**
 * Fragments named from code: what compiling a template learned about each of its cache tags (line, name, digest,
 * dependencies), finding one by its name, and the debug listing of a template's fragments and what they render.
 */
import { InvalidArgumentError } from './errors.ts'
import { type DependencyNode, formatDependencies } from './fragment-digest.ts'

/**
 * One cache tag of a compiled template.
 * @example
 * ```ts
 * const tag: CompiledFragment = { template: 'page.njk', line: 3, text: '{% cache 300 "teaser" a.id %}', name: 'teaser', digest, dependencies: [] }
 * ```
 */
export interface CompiledFragment {
  readonly template: string
  readonly line: number
  /** The tag as written. */
  readonly text: string
  /** The fragment's name when it is written literally (`"teaser"`, `teaser` in Nunjucks); undefined for an expression. */
  readonly name: string | undefined
  readonly digest: string
  readonly dependencies: readonly DependencyNode[]
}

/**
 * The one tag named `name` among a template's tags.
 * @throws InvalidArgumentError when the template has no tag of that name, or several (then `line` picks one).
 * @example
 * ```ts
 * findFragment(tags, 'page.njk', 'teaser').digest
 * ```
 */
export function findFragment(tags: readonly CompiledFragment[], template: string, name: string, line?: number): CompiledFragment {
  const named = tags.filter((tag) => tag.name === name && (line === undefined || tag.line === line))
  if (named.length === 1) return named[0] as CompiledFragment
  const known = tags.map((tag) => `${tag.name === undefined ? tag.text : `"${tag.name}"`} (line ${tag.line})`).join(', ') || 'none'
  if (named.length === 0) {
    throw new InvalidArgumentError(
      `fragcache: ${template} has no cache tag named "${name}"${line === undefined ? '' : ` on line ${line}`}; its cache tags: ${known}`,
    )
  }
  throw new InvalidArgumentError(
    `fragcache: ${template} has ${named.length} cache tags named "${name}" (lines ${named.map((tag) => tag.line).join(', ')}): give the line`,
  )
}

/**
 * A template's fragments and what each one's digest covers, as text (Rails' `cache_digests:dependencies`).
 * @example
 * ```ts
 * console.log(listFragments('page.njk', tags))
 * // page.njk
 * //   line 4  {% cache 300 "teaser" a.id %}  digest k3Jx0cQm…
 * //     include "teaser.njk"
 * ```
 */
export function listFragments(template: string, tags: readonly CompiledFragment[]): string {
  const lines = [template]
  if (tags.length === 0) lines.push('  (no cache tags)')
  for (const tag of tags) {
    lines.push(`  line ${tag.line}  ${tag.text}  digest ${tag.digest}`)
    lines.push(...formatDependencies(tag.dependencies, '    '))
  }
  return `${lines.join('\n')}\n`
}

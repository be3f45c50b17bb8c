/**
 * What an Eta template renders besides its own source: `include`, `includeAsync` and `layout` calls in its code with a
 * literal name, read through the Eta instance's own `resolvePath` and `readFile` (so a custom resolver is honoured), so a
 * fragment's digest covers them (see `fragmentDigest`). Computed at a tag's first render: only then are the Eta
 * instance and the template's path known.
 */
import { describe } from '../../src/errors.ts'
import { type FragmentDigest, type ReadReference, type TemplateReference, fragmentDigest } from '../../src/fragment-digest.ts'
import type { AstNode } from './ast.ts'

/** The parts of an Eta instance read here. */
export interface EtaSources {
  config?: { views?: string; plugins?: unknown[] }
  resolvePath?: ((name: string, options?: { filepath?: string }) => string) | null
  readFile?: ((path: string) => string) | null
  parse?: (this: { config: unknown }, source: string) => AstNode[]
}

const CALL = /\b(includeAsync|include|layout)\s*\(\s*(?:"([^"\\\n]*)"|'([^'\\\n]*)'|`([^`\\$]*)`)?/g
const CODE_TYPES = new Set(['e', 'i', 'r'])

/**
 * The templates a piece of template code names (a fragment body's, or a whole template's tags): literal names, and
 * the dynamic ones as references without a name.
 * @example
 * ```ts
 * referencesInCode('await includeAsync("teaser", { a })') // [{ kind: 'include', name: 'teaser', text: 'includeAsync("teaser")' }]
 * ```
 */
export function referencesInCode(code: string): TemplateReference[] {
  const found = new Map<string, TemplateReference>()
  for (const match of code.matchAll(CALL)) {
    const [, call = '', ...quoted] = match
    const name = quoted.find((part) => part !== undefined)
    const kind = call === 'layout' ? 'layout' : 'include'
    const text = name === undefined ? `${call}(…)` : `${call}(${JSON.stringify(name)})`
    found.set(text, { kind, name, text })
  }
  return [...found.values()]
}

/** The code of a parsed template's tags, joined. */
export function codeOf(nodes: readonly AstNode[]): string {
  return nodes
    .map((node) => (typeof node === 'object' && node !== null && CODE_TYPES.has(node.t) ? node.val : ''))
    .join('\n')
}

/**
 * The digest of a fragment of the template at `filepath` (undefined for a template string) whose own digest is
 * `own` and whose body names the templates in `references` (JSON, as compiled), reading them through `eta`. A
 * fragment that names none keeps its own digest.
 */
export function etaFragmentDigest(eta: EtaSources | undefined, filepath: string | undefined, own: string, references: string): FragmentDigest {
  if (references === '[]') return { digest: own, dependencies: [] }
  const read: ReadReference = (reference, from) => {
    if (reference.name.startsWith('@')) return { unreadable: 'loaded with loadTemplate(): its source is not kept' }
    if (typeof eta?.resolvePath !== 'function' || typeof eta.readFile !== 'function' || typeof eta.parse !== 'function') {
      return { unreadable: 'this Eta cannot read templates from files' }
    }
    try {
      const path = eta.resolvePath(reference.name, from === ROOT ? { filepath } : { filepath: from })
      const source = eta.readFile(path)
      // Eta's own parser without the plugins: fragcache's must not see a template it is not compiling.
      const nodes = eta.parse.call({ config: { ...eta.config, plugins: [] } }, source)
      return { id: path, source, references: referencesInCode(codeOf(nodes)) }
    } catch (error) {
      return { unreadable: describe(error) }
    }
  }
  return fragmentDigest(own, JSON.parse(references) as TemplateReference[], read, ROOT)
}

/** The id of the template a fragment is in, while its path is read from `filepath`. */
const ROOT = '(this template)'

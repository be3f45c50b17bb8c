/**
 * A fragment's digest, as Rails' template digests: its own source and that of every template it renders where the
 * name is written literally (includes, imports, layouts, macros), followed recursively, cycles included; and the
 * dependency tree behind it, for a debug listing. Engines say how to find and read references; this does the rest.
 */
import { hash } from 'node:crypto'

/**
 * One reference from a template (or a fragment's body) to another template or macro, as written.
 * @example
 * ```ts
 * const ref: TemplateReference = { kind: 'include', name: 'teaser.njk', text: 'include "teaser.njk"' }
 * ```
 */
export interface TemplateReference {
  readonly kind: 'include' | 'import' | 'extends' | 'layout' | 'macro'
  /** The name as written; undefined when it is computed at render time (`include someVar`), which cannot be followed. */
  readonly name: string | undefined
  /** The reference as written, for the listing. */
  readonly text: string
}

/**
 * A template (or a macro) read for the digest: an id unique within the engine (its path), its source and its references.
 * @example
 * ```ts
 * const teaser: ReadTemplate = { id: '/views/teaser.njk', source: '<p>…</p>', references: [] }
 * ```
 */
export interface ReadTemplate {
  readonly id: string
  readonly source: string
  readonly references: readonly TemplateReference[]
}

/**
 * Reads what `reference`, written in the template `fromId`, names; or says why it cannot (not found, an asynchronous
 * loader, a template registered without its source).
 * @example
 * ```ts
 * const read: ReadReference = (ref, fromId) => ({ id: ref.name ?? '', source: readFileSync(ref.name ?? ''), references: [] })
 * ```
 */
export type ReadReference = (reference: TemplateReference & { name: string }, fromId: string) => ReadTemplate | { readonly unreadable: string }

/**
 * One reference in a fragment's dependency tree, and what it renders in turn.
 * @example
 * ```ts
 * const node: DependencyNode = { reference, id: '/views/teaser.njk', children: [] }
 * ```
 */
export interface DependencyNode {
  readonly reference: TemplateReference
  /** The template it resolved to. */
  readonly id?: string
  /** Why it is not followed further: `dynamic name`, `cycle`, `listed above`, or why it could not be read. */
  readonly note?: string
  readonly children: readonly DependencyNode[]
}

/**
 * A fragment's digest and the tree it covers.
 * @example
 * ```ts
 * const { digest, dependencies } = fragmentDigest(body, refs, read, 'views/page.njk')
 * ```
 */
export interface FragmentDigest {
  readonly digest: string
  readonly dependencies: readonly DependencyNode[]
}

/**
 * The digest of a fragment whose body is `body`, with the `references` found in it, written in template `fromId`:
 * every template reachable through literal names is read once (a cycle stops where it closes), and its source counts.
 * A fragment that renders nothing else keeps the digest of its own source ({@link sourceDigest}).
 * @example
 * ```ts
 * fragmentDigest('<p>{% include "teaser.njk" %}</p>', [{ kind: 'include', name: 'teaser.njk', text: 'include "teaser.njk"' }], read, 'page.njk')
 * ```
 */
export function fragmentDigest(body: string, references: readonly TemplateReference[], read: ReadReference, fromId: string): FragmentDigest {
  const covered = new Map<string, string>()
  const unreadable = new Set<string>()
  const onPath = new Set<string>([fromId])
  const visit = (refs: readonly TemplateReference[], from: string): DependencyNode[] =>
    refs.map((reference): DependencyNode => {
      const name = reference.name
      if (name === undefined) return { reference, note: 'dynamic name: not followed', children: [] }
      const found = read({ ...reference, name }, from)
      if ('unreadable' in found) {
        // Counted, so that the key changes when the template appears.
        unreadable.add(`${reference.kind} ${name} from ${from}`)
        return { reference, note: found.unreadable, children: [] }
      }
      if (onPath.has(found.id)) return { reference, id: found.id, note: 'cycle', children: [] }
      if (covered.has(found.id)) return { reference, id: found.id, note: 'listed above', children: [] }
      covered.set(found.id, sourceDigest(found.source))
      onPath.add(found.id)
      const children = visit(found.references, found.id)
      onPath.delete(found.id)
      return { reference, id: found.id, children }
    })
  const dependencies = visit(references, fromId)
  if (covered.size === 0 && unreadable.size === 0) return { digest: sourceDigest(body), dependencies }
  const parts = [body, ...[...covered].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, digest]) => `${id}\0${digest}`), ...[...unreadable].sort()]
  return { digest: sourceDigest(parts.join('\0\0')), dependencies }
}

/**
 * A short digest of a template source, so that editing it changes the keys of the fragments that render it.
 * @example
 * ```ts
 * sourceDigest('<aside>{{ lang }}</aside>') // 'k3Jx0c…' (16 characters)
 * ```
 */
export function sourceDigest(source: string): string {
  return hash('sha1', source, 'base64url').slice(0, 16)
}

/**
 * The dependency tree as text, one reference a line, indented by depth, as Rails' `cache_digests:dependencies` lists it.
 * @example
 * ```ts
 * formatDependencies(dependencies)
 * // include "teaser.njk"
 * //   import "macros.njk"
 * // include someVar  (dynamic name: not followed)
 * ```
 */
export function formatDependencies(nodes: readonly DependencyNode[], indent = ''): string[] {
  return nodes.flatMap((node) => [
    `${indent}${node.reference.text}${node.note === undefined ? '' : `  (${node.note})`}`,
    ...formatDependencies(node.children, `${indent}  `),
  ])
}

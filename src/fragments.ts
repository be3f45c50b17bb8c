/**
 * The caching logic of template cache tags, shared by every engine: keys, lookups, renders on a miss, and the recording
 * of what a body touched. Engine extensions only parse their syntax and glue.
 */
import { FragcacheError, PrivateReadError, TemplateTagError, describe, describeValue } from './errors.ts'
import { type FragmentCall, PreparedMemo, type PreparedFragment, callPath, checkCall } from './fragment-call.ts'
import { tryGetRequestScope } from './request-scope.ts'
import type { TieredCache } from './tiered-cache.ts'

export { type FragmentCall, type PreparedFragment } from './fragment-call.ts'
export { sourceDigest } from './fragment-digest.ts'
export {
  CACHE_TAG_KEYWORDS,
  OPTION_KEYWORDS,
  badGrace,
  badTtl,
  cacheTagArguments,
  type CacheTagArguments,
  type CacheTagItem,
  type CacheTagKeyword,
  type CacheTagSyntax,
  type OptionKeyword,
} from './fragment-tag.ts'

/** Hits and misses of one fragment name. */
export interface FragmentCounts {
  hits: number
  misses: number
}

/**
 * The caching logic of a template cache tag, shared by every engine (the extensions only parse and glue):
 * the key (name + hashed inputs + the digest of the fragment's source), lookup through every tier,
 * dependency checks, a single-flight render of the body on a miss, and the recording of the deps the body
 * saw (its own and its nested fragments') into any fragment or page around it.
 *
 * @example
 * ```ts
 * const fragments = new FragmentCache(cache)
 * const call = fragments.prepare({ name: 'sidebar', ttl: 300, inputs: ['en'], digest, template: 'page.njk', line: 3 })
 * const html = fragments.peek(call) ?? (await fragments.render(call, () => renderBody()))
 * ```
 */
export class FragmentCache {
  readonly cache: TieredCache
  readonly #counts = new Map<string, FragmentCounts>()
  /**
   * Fragments already checked and keyed, by the exact values of the call (for calls made only of plain values):
   * checking and hashing cost more than a hit itself, and a template calls the same tag with the same values often.
   */
  readonly #prepared = new PreparedMemo<PreparedFragment>()
  /** The collection each tag prefetched, per render. */
  readonly #prefetched = new WeakMap<object, Map<string, unknown>>()

  constructor(cache: TieredCache) {
    this.cache = cache
  }

  /**
   * Checks what the tag evaluated to and builds the key.
   * @throws TemplateTagError naming the template, line and what was wrong (a missing name, a bad TTL, bad deps).
   */
  prepare(call: FragmentCall): PreparedFragment {
    const path = callPath(call)
    const known = path === undefined ? undefined : this.#prepared.get(path)
    if (known !== undefined) return known
    const checked = checkCall(call)
    let key: string
    try {
      key = this.keyOf(checked.name, call.digest, call.inputs)
    } catch (error) {
      throw new TemplateTagError(call.template, call.line, `fragcache: fragment "${checked.name}" cannot vary by its inputs: ${describe(error)}`)
    }
    const prepared: PreparedFragment = { ...checked, key }
    if (path !== undefined) this.#prepared.set(path, prepared)
    return prepared
  }

  /**
   * The stored HTML if it can be had without waiting (request scope or L1, deps known), else undefined.
   * Engines use it where they cannot wait (inside a Nunjucks macro, say).
   */
  peek(fragment: PreparedFragment): string | undefined {
    const scoped = tryGetRequestScope() !== undefined
    const started = scoped ? performance.now() : 0
    const found = this.cache.peekByKey(fragment.key, fragment.vary)
    if (found === undefined || typeof found.value !== 'string') return undefined
    this.#count(fragment.name).hits += 1
    // Outside a request scope a hit is not timed (a clock read is a tenth of a hit): it counts 0 ms.
    this.cache.lookupStats.record({ kind: 'frag', name: fragment.name, state: 'hit', ms: scoped ? performance.now() - started : 0 })
    return found.value
  }

  /**
   * The fragment's HTML: stored HTML on a hit (the body is not run), else the body's output, rendered once per
   * key at a time and stored with the deps it saw. A cache failure renders the body. An error in the body fails the
   * render as a {@link TemplateTagError} naming the fragment, the template and the line, with the error as `cause`
   * (fragcache's own errors, a nested fragment's say, pass unchanged); nothing is stored.
   */
  async render(fragment: PreparedFragment, body: () => Promise<string>): Promise<string> {
    // Timed from the start in a request scope (for Server-Timing); outside one, only a miss is, from its body's start.
    let started = tryGetRequestScope() === undefined ? -1 : performance.now()
    let ran = false
    let html: string
    try {
      html = await this.cache.getOrSetByKey(
        fragment.key,
        async () => {
          ran = true
          if (started < 0) started = performance.now()
          const output = await body()
          if (typeof output !== 'string') {
            throw new TemplateTagError(
              fragment.template,
              fragment.line,
              `fragcache: the body of fragment "${fragment.name}" rendered ${describeValue(output)}, not a string`,
            )
          }
          return output
        },
        // HTML is a string: anything else under a fragment key (corrupt, or not fragcache's) is never emitted.
        { ttl: fragment.ttl, deps: fragment.deps, grace: fragment.grace, vary: fragment.vary, accept: isHtml },
      )
    } catch (error) {
      throw bodyFailure(fragment, error)
    }
    const counts = this.#count(fragment.name)
    if (ran) counts.misses += 1
    else counts.hits += 1
    this.cache.lookupStats.record({ kind: 'frag', name: fragment.name, state: ran ? 'miss' : 'hit', ms: started < 0 ? 0 : performance.now() - started })
    return html
  }

  /**
   * The key of fragment `name` with digest `digest` (its tag's, see `fragmentKey` in each engine) varied by `inputs`.
   * @throws InvalidArgumentError for inputs that cannot be part of a key.
   * @example
   * ```ts
   * fragments.keyOf('teaser', digest, [42]) // 'fragcache:1:frag:teaser#…'
   * ```
   */
  keyOf(name: string, digest: string, inputs: readonly unknown[]): string {
    return this.cache.keys.build('frag', name, [digest, ...inputs])
  }

  /**
   * Removes fragment `name` (digest `digest`, varied by `inputs`) from every tier and tells the other processes; the
   * next render of its tag renders its body.
   * @example
   * ```ts
   * await fragments.delete('teaser', digest, [42])
   * ```
   */
  async delete(name: string, digest: string, inputs: readonly unknown[]): Promise<void> {
    // A TTL of 0 removes, Django's way; the namespace and inputs build the same key as keyOf().
    await this.cache.set(name, null, 0, { namespace: 'frag', inputs: [digest, ...inputs] })
  }

  /**
   * Collection caching (Rails' `cached: true`): before the first item of a loop renders its fragment, reads the
   * fragments of every item of `collection` in one round trip (and one for their versions) into the request scope and
   * L1, so that every item's tag answers without waiting. `callFor(item)` is what the tag evaluates to for one item.
   * Once per `render` (an object the engine has per render) and `site` (the tag) for one collection; undefined when
   * there is nothing to read. An item whose call is wrong is left out: its tag reports it when it renders.
   * @example
   * ```ts
   * await fragments.prefetchCollection(context, 'page.njk:12', articles, (article) => ({ ...call, inputs: [article.id] }))
   * ```
   */
  prefetchCollection(render: object, site: string, collection: unknown, callFor: (item: unknown) => FragmentCall): Promise<void> | undefined {
    let sites = this.#prefetched.get(render)
    if (sites === undefined) this.#prefetched.set(render, (sites = new Map()))
    if (sites.get(site) === collection) return undefined
    sites.set(site, collection)
    const keys: string[] = []
    for (const item of itemsOf(collection)) {
      try {
        keys.push(this.prepare(callFor(item)).key)
      } catch {
        // Reported by the tag, with its line, when this item renders.
      }
    }
    if (keys.length === 0) return undefined
    // A failed read is a miss for every item, as any read is.
    return this.cache.prefetchByKey(keys).catch(() => undefined)
  }

  /** Hits and misses per fragment name, since this FragmentCache was created. */
  counts(): Map<string, FragmentCounts> {
    return new Map([...this.#counts].map(([name, c]) => [name, { ...c }]))
  }

  #count(name: string): FragmentCounts {
    let counts = this.#counts.get(name)
    if (counts === undefined) this.#counts.set(name, (counts = { hits: 0, misses: 0 }))
    return counts
  }
}

/** The items of a collection: an array or any iterable (a Map gives its entries); nothing for anything else. */
function itemsOf(collection: unknown): Iterable<unknown> {
  if (Array.isArray(collection)) return collection
  try {
    if (collection !== null && typeof collection === 'object' && Symbol.iterator in collection) return Array.from(collection as Iterable<unknown>)
  } catch {
    // An iterable that throws: the loop reports it.
  }
  return []
}

/** An error out of a fragment's body, as the render reports it (see {@link FragmentCache.render}). */
function bodyFailure(fragment: PreparedFragment, error: unknown): unknown {
  if (error instanceof PrivateReadError && error.key === fragment.key) {
    const message =
      `fragcache: fragment "${fragment.name}" read ${error.read}, private to the "${error.context}" context, while it was rendered for every visitor; ` +
      `add vary="${error.context}" to its tag, or read the value outside the fragment`
    return new TemplateTagError(fragment.template, fragment.line, message, { cause: error })
  }
  if (error instanceof FragcacheError) return error
  const message = `fragcache: the body of fragment "${fragment.name}" failed: ${describe(error)}`
  return new TemplateTagError(fragment.template, fragment.line, message, { cause: error })
}

function isHtml(value: unknown): value is string {
  return typeof value === 'string'
}

import { hash } from 'node:crypto'
import { FragcacheError, TemplateTagError, describe, describeValue } from './errors.ts'
import type { TieredCache } from './tiered-cache.ts'
import type { Ttl } from './ttl.ts'
import { checkTags } from './versions.ts'

/** What a template's cache tag evaluated to, handed over by an engine extension. */
export interface FragmentCall {
  /** The fragment's name (a string, or a number); must not be empty. */
  name: unknown
  /** Seconds, or null for no expiry. */
  ttl: unknown
  /** The values the fragment varies by (`user.id`, `lang`, …). */
  inputs: readonly unknown[]
  /** Data-version tags (`deps=[…]`), or undefined. */
  deps?: unknown
  /** Digest of the fragment's own template source, computed when the template was compiled. */
  digest: string
  /** Template name and 1-based line of the tag, for errors. */
  template: string
  line: number
}

/** A checked {@link FragmentCall}, with its cache key. */
export interface PreparedFragment {
  readonly name: string
  readonly key: string
  readonly ttl: Ttl
  readonly deps: readonly string[]
  readonly template: string
  readonly line: number
}

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
  readonly #prepared = new PreparedMemo()

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
    const { template, line } = call
    const name = typeof call.name === 'number' ? String(call.name) : call.name
    if (typeof name !== 'string' || name.length === 0) {
      throw new TemplateTagError(template, line, `fragcache: the cache tag needs a fragment name; got ${describeValue(call.name)}`)
    }
    const ttl = call.ttl
    if (ttl !== null && (typeof ttl !== 'number' || !Number.isFinite(ttl))) {
      throw new TemplateTagError(template, line, `fragcache: ${badTtl(describeValue(ttl), name)}`)
    }
    const deps = checkDeps(call.deps, name, template, line)
    let key: string
    try {
      key = this.cache.keys.build('frag', name, [call.digest, ...call.inputs])
    } catch (error) {
      throw new TemplateTagError(template, line, `fragcache: fragment "${name}" cannot vary by its inputs: ${describe(error)}`)
    }
    const prepared: PreparedFragment = { name, key, ttl, deps, template, line }
    if (path !== undefined) this.#prepared.set(path, prepared)
    return prepared
  }

  /**
   * The stored HTML if it can be had without waiting (request scope or L1, deps known), else undefined.
   * Engines use it where they cannot wait (inside a Nunjucks macro, say).
   */
  peek(fragment: PreparedFragment): string | undefined {
    const found = this.cache.peekByKey(fragment.key)
    if (found === undefined || typeof found.value !== 'string') return undefined
    this.#count(fragment.name).hits += 1
    return found.value
  }

  /**
   * The fragment's HTML: stored HTML on a hit (the body is not run), else the body's output, rendered once per
   * key at a time and stored with the deps it saw. A cache failure renders the body. An error in the body fails the
   * render as a {@link TemplateTagError} naming the fragment, the template and the line, with the error as `cause`
   * (fragcache's own errors, a nested fragment's say, pass unchanged); nothing is stored.
   */
  async render(fragment: PreparedFragment, body: () => Promise<string>): Promise<string> {
    let ran = false
    let html: string
    try {
      html = await this.cache.getOrSetByKey(
        fragment.key,
        async () => {
          ran = true
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
        { ttl: fragment.ttl, deps: fragment.deps, accept: isHtml },
      )
    } catch (error) {
      throw bodyFailure(fragment, error)
    }
    const counts = this.#count(fragment.name)
    if (ran) counts.misses += 1
    else counts.hits += 1
    return html
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

// ─── The cache tag's arguments: one grammar of TTL, name, inputs and keywords for every engine ──────────────────

/**
 * The keywords a cache tag takes, in the one place they are listed: every engine reads its tags against this list,
 * and every message that names them is built from it.
 * @example
 * ```ts
 * CACHE_TAG_KEYWORDS.includes('deps') // true
 * ```
 */
export const CACHE_TAG_KEYWORDS = ['deps', 'ttl'] as const

/** One of {@link CACHE_TAG_KEYWORDS}. */
export type CacheTagKeyword = (typeof CACHE_TAG_KEYWORDS)[number]

/**
 * One argument of a cache tag, as an engine parsed it, in the order written: an input, or `keyword=value`.
 * `Code` is whatever the engine holds an expression as (a parser node, a source string).
 * @example
 * ```ts
 * const items: CacheTagItem<string>[] = [{ value: '300' }, { value: '"sidebar"' }, { keyword: 'deps', value: '["site"]' }]
 * ```
 */
export interface CacheTagItem<Code> {
  /** The word before `=`, or '' when what stands there is not a plain name; absent for an input. */
  readonly keyword?: string
  readonly value: Code
}

/**
 * What an engine's cache tag differs in from another's.
 * @example
 * ```ts
 * const syntax: CacheTagSyntax = { example: '{% cache 300 "sidebar" lang %}', keywordsLast: true }
 * ```
 */
export interface CacheTagSyntax {
  /** The engine's own way to write a tag, quoted as the example in messages. */
  readonly example: string
  /** Whether every input must come before the keywords, as in a Nunjucks (Jinja, Python) call. */
  readonly keywordsLast: boolean
}

/**
 * A cache tag's arguments, sorted out: the TTL (from `ttl=`, else the first input), the name (the next input),
 * the inputs left, and every keyword given.
 */
export interface CacheTagArguments<Code> {
  ttl: Code
  name: Code
  inputs: Code[]
  keywords: Partial<Record<CacheTagKeyword, Code>>
}

/**
 * Sorts a cache tag's arguments into TTL, name, inputs and keywords, refusing an unknown keyword, a keyword given
 * twice, an input after a keyword (where the engine's syntax says so) and a missing TTL or name. `fail` is called
 * with the reason (the same words in every engine) and must throw the engine's error, with its template and line.
 * @example
 * ```ts
 * const fail = (reason: string): never => { throw new Error(reason) }
 * const args = cacheTagArguments([{ value: '300' }, { value: '"sidebar"' }, { value: 'it.lang' }], syntax, fail)
 * // { ttl: '300', name: '"sidebar"', inputs: ['it.lang'], keywords: {} }
 * ```
 */
export function cacheTagArguments<Code>(
  items: Iterable<CacheTagItem<Code>>,
  syntax: CacheTagSyntax,
  fail: (reason: string) => never,
): CacheTagArguments<Code> {
  const inputs: Code[] = []
  const keywords: Partial<Record<CacheTagKeyword, Code>> = {}
  let keywordSeen = false
  for (const item of items) {
    const keyword = item.keyword
    if (keyword === undefined) {
      if (keywordSeen && syntax.keywordsLast) fail(`the inputs of the cache tag must come before ${KEYWORD_LIST}`)
      inputs.push(item.value)
      continue
    }
    if (!isCacheTagKeyword(keyword)) fail(`the cache tag takes only ${KEYWORD_LIST} as keywords; got ${keyword || 'an expression'}=`)
    if (keywords[keyword] !== undefined) fail(`${keyword}= is given twice in the cache tag`)
    keywords[keyword] = item.value
    keywordSeen = true
  }
  const ttl = keywords.ttl ?? inputs.shift()
  const name = inputs.shift()
  if (ttl === undefined || name === undefined) {
    fail(`the cache tag needs a TTL and a fragment name, as in ${syntax.example} (or ttl=300 "sidebar")`)
  }
  return { ttl, name, inputs, keywords }
}

/**
 * The reason a TTL is refused, in the same words whether an engine sees it in the source or the tag sees its value.
 * @example
 * ```ts
 * badTtl('"soon"', 'sidebar') // 'the TTL of fragment "sidebar" must be a number of seconds or null; got "soon"'
 * ```
 */
export function badTtl(got: string, name?: string): string {
  return `the TTL${name === undefined ? '' : ` of fragment "${name}"`} must be a number of seconds or null; got ${got}`
}

const KEYWORD_LIST = CACHE_TAG_KEYWORDS.map((keyword, i) => `${i === 0 ? '' : i === CACHE_TAG_KEYWORDS.length - 1 ? ' and ' : ', '}${keyword}=`).join('')

function isCacheTagKeyword(word: string): word is CacheTagKeyword {
  return (CACHE_TAG_KEYWORDS as readonly string[]).includes(word)
}

/**
 * A short digest of a fragment's template source, so that editing the fragment's markup changes its key.
 * @example
 * ```ts
 * sourceDigest('<aside>{{ lang }}</aside>') // 'k3Jx0c…' (16 characters)
 * ```
 */
export function sourceDigest(source: string): string {
  return hash('sha1', source, 'base64url').slice(0, 16)
}

/**
 * The values that identify a call, in order, when they are all plain (strings, numbers, booleans, null, undefined);
 * undefined otherwise. Counts stand before the variable-length parts, so two different calls never share a path.
 */
function callPath(call: FragmentCall): unknown[] | undefined {
  const { name, ttl, deps, inputs } = call
  if (typeof name !== 'string' || (ttl !== null && typeof ttl !== 'number')) return undefined
  const path: unknown[] = [call.template, call.line, call.digest, name, ttl]
  if (deps === undefined || deps === null) path.push(-1)
  else if (!Array.isArray(deps)) return undefined
  else path.push(deps.length, ...deps)
  path.push(inputs.length)
  for (const value of inputs) {
    // An object is a key by identity in a Map, and could change between renders: never memoized.
    if ((value !== null && typeof value === 'object') || typeof value === 'function' || typeof value === 'symbol') return undefined
    path.push(value)
  }
  return path
}

const LEAF = Symbol('fragcache.prepared')
type Node = Map<unknown, Node | PreparedFragment>

/**
 * A trie of Maps keyed by the call's values themselves. Cheaper than one Map keyed by a string built per call, which
 * V8 must flatten and hash every time; Map's SameValueZero keeps `1` and `"1"` apart, as the key encoding does.
 */
class PreparedMemo {
  #root: Node = new Map()
  #size = 0

  get(path: readonly unknown[]): PreparedFragment | undefined {
    let node: Node | undefined = this.#root
    for (const value of path) {
      node = node.get(value) as Node | undefined
      if (node === undefined) return undefined
    }
    return node.get(LEAF) as PreparedFragment | undefined
  }

  set(path: readonly unknown[], prepared: PreparedFragment): void {
    // Bounded: a template varying by an unbounded input (a timestamp, say) must not grow this forever.
    if (this.#size >= 10_000) {
      this.#root = new Map()
      this.#size = 0
    }
    let node = this.#root
    for (const value of path) {
      let next = node.get(value) as Node | undefined
      if (next === undefined) node.set(value, (next = new Map()))
      node = next
    }
    node.set(LEAF, prepared)
    this.#size += 1
  }
}

function checkDeps(deps: unknown, name: string, template: string, line: number): readonly string[] {
  if (deps === undefined || deps === null) return []
  const list = typeof deps === 'string' ? [deps] : (deps as readonly unknown[])
  try {
    checkTags(list, `deps of fragment "${name}"`)
  } catch (error) {
    throw new TemplateTagError(template, line, describe(error), { cause: error })
  }
  return list
}

/** An error out of a fragment's body, as the render reports it (see {@link FragmentCache.render}). */
function bodyFailure(fragment: PreparedFragment, error: unknown): unknown {
  if (error instanceof FragcacheError) return error
  const message = `fragcache: the body of fragment "${fragment.name}" failed: ${describe(error)}`
  return new TemplateTagError(fragment.template, fragment.line, message, { cause: error })
}

function isHtml(value: unknown): value is string {
  return typeof value === 'string'
}

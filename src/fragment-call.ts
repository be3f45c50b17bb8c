/**
 * What a template's cache tag evaluated to, and its checks: the name, TTL, grace and deps an engine hands over are
 * refused with the template and line when wrong (described safely, whatever they are), and a call made only of plain
 * values is remembered once checked.
 */
import { TemplateTagError, describe, describeValue } from './errors.ts'
import { OPTION_KEYWORDS, type OptionKeyword, badGrace, badTtl } from './fragment-tag.ts'
import { checkContextNames } from './request-scope.ts'
import type { Ttl } from './ttl.ts'
import { checkTags } from './versions.ts'

/**
 * What a template's cache tag evaluated to, handed over by an engine extension. Every keyword of the tag but `ttl=`
 * (see `CACHE_TAG_KEYWORDS`) is a field of the same name.
 * @example
 * ```ts
 * const call: FragmentCall = { name: 'sidebar', ttl: 300, inputs: ['en'], deps: ['site'], grace: 60, digest, template: 'page.njk', line: 3 }
 * ```
 */
export interface FragmentCall {
  /** The fragment's name (a string, or a number); must not be empty. */
  name: unknown
  /** Seconds, or null for no expiry. */
  ttl: unknown
  /** The values the fragment varies by (`user.id`, `lang`, …). */
  inputs: readonly unknown[]
  /** Data-version tags (`deps=[…]`), or undefined. */
  deps?: unknown
  /** Seconds the entry is kept stale past its TTL (`grace=`), or undefined for the cache's default. */
  grace?: unknown
  /** Request contexts the fragment varies by (`vary="user"`, `vary=["user", "lang"]`), or undefined. */
  vary?: unknown
  /** Digest of the fragment's source and of the templates it renders, computed when the template was compiled. */
  digest: string
  /** Template name and 1-based line of the tag, for errors. */
  template: string
  line: number
}

/**
 * A checked {@link FragmentCall}, with its cache key.
 * @example
 * ```ts
 * const fragment: PreparedFragment = fragments.prepare(call)
 * fragment.key // 'fragcache:1:frag:sidebar#…'
 * ```
 */
export interface PreparedFragment {
  readonly name: string
  readonly key: string
  readonly ttl: Ttl
  readonly deps: readonly string[]
  /** Seconds; undefined for the cache's default. */
  readonly grace: number | undefined
  /** Request contexts, sorted (none: `[]`). */
  readonly vary: readonly string[]
  readonly template: string
  readonly line: number
}

/**
 * Checks a call's name, TTL, grace, deps and vary.
 * @throws TemplateTagError naming the template and line and what was wrong; never anything else, whatever the values.
 * @example
 * ```ts
 * checkCall({ name: 'x', ttl: '300', inputs: [], digest: '', template: 't.njk', line: 3 })
 * // throws: fragcache: the TTL of fragment "x" must be a number of seconds or null; got "300" (t.njk, line 3)
 * ```
 */
export function checkCall(call: FragmentCall): Omit<PreparedFragment, 'key'> {
  const { template, line } = call
  const fail = (reason: string): never => {
    throw new TemplateTagError(template, line, `fragcache: ${reason}`)
  }
  const name = typeof call.name === 'number' ? String(call.name) : call.name
  if (typeof name !== 'string' || name.length === 0) fail(`the cache tag needs a fragment name; got ${describeValue(call.name)}`)
  const fragment = name as string
  const ttl = call.ttl
  if (ttl !== null && (typeof ttl !== 'number' || !Number.isFinite(ttl))) fail(badTtl(describeValue(ttl), fragment))
  const grace = call.grace ?? undefined
  if (grace !== undefined && (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0)) fail(badGrace(describeValue(grace), fragment))
  let deps: readonly string[]
  try {
    deps = checkDeps(call.deps, fragment)
  } catch (error) {
    // A proxy or an array whose elements throw when read: say so rather than let a bare TypeError out.
    if (error instanceof TemplateTagError) throw error
    return fail(`the deps of fragment "${fragment}" cannot be read: ${describe(error)}`)
  }
  let vary: readonly string[] = []
  if (call.vary !== undefined && call.vary !== null) {
    try {
      vary = checkContextNames(call.vary, `vary of fragment "${fragment}"`)
    } catch (error) {
      fail((error as Error).message.replace(/^fragcache: /, ''))
    }
  }
  return { name: fragment, ttl: ttl as Ttl, deps, grace: grace as number | undefined, vary, template, line }

  function checkDeps(value: unknown, fragmentName: string): readonly string[] {
    if (value === undefined || value === null) return []
    const where = `deps of fragment "${fragmentName}"`
    if (typeof value === 'string') return tags([value], where)
    if (!Array.isArray(value)) return fail(`${where}: tags must be an array of strings; got ${describeValue(value)}`)
    return tags(Array.from(value as unknown[]), where)
  }

  function tags(list: unknown[], where: string): string[] {
    for (const tag of list) {
      // Described here: the core's message would JSON.stringify it, which throws for a cycle or a BigInt.
      if (typeof tag !== 'string') fail(`${where}: a tag must be a non-empty string of at most 200 characters without whitespace; got ${describeValue(tag)}`)
    }
    try {
      checkTags(list, where)
    } catch (error) {
      fail((error as Error).message.replace(/^fragcache: /, ''))
    }
    return list as string[]
  }
}

/**
 * The values that identify a call, in order, when they are all plain (strings, numbers, booleans, null, undefined);
 * undefined otherwise. Counts stand before the variable-length parts, so two different calls never share a path.
 * @example
 * ```ts
 * callPath({ name: 'x', ttl: 60, inputs: [1], digest: 'd', template: 't', line: 1 }) // ['t', 1, 'd', 'x', 60, 0, 1, 1]
 * ```
 */
export function callPath(call: FragmentCall): unknown[] | undefined {
  try {
    const { name, ttl, inputs } = call
    if (typeof name !== 'string' || (ttl !== null && typeof ttl !== 'number')) return undefined
    // Built with early returns, not checked afterwards: this runs on every hit of every tag.
    // Which keywords are given, as one number (one trie level however many there are); then their values.
    const path: unknown[] = [call.template, call.line, call.digest, name, ttl, 0]
    let given = 0
    for (let k = 0; k < OPTION_KEYWORDS.length; k++) {
      const value = call[OPTION_KEYWORDS[k] as OptionKeyword]
      if (value === undefined || value === null) continue
      given += 2 ** k
      if (Array.isArray(value)) {
        if (!pushPlain(path, value)) return undefined
      } else if (isPlain(value)) path.push(-1, value)
      else return undefined
    }
    path[5] = given
    return pushPlain(path, inputs) ? path : undefined
  } catch {
    return undefined // a proxy that throws: checked (and refused) the long way
  }
}

/** Pushes the length of `values`, then each of them; false (and stops) at the first that is not plain. */
function pushPlain(path: unknown[], values: readonly unknown[]): boolean {
  path.push(values.length)
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    // An object is a key by identity in a Map, and could change between renders: never memoized.
    if (!isPlain(value)) return false
    path.push(value)
  }
  return true
}

function isPlain(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol')
}

const LEAF = Symbol('fragcache.prepared')
type Node<T> = Map<unknown, Node<T> | T>

/**
 * A trie of Maps keyed by a call's values themselves. Cheaper than one Map keyed by a string built per call, which
 * V8 must flatten and hash every time; Map's SameValueZero keeps `1` and `"1"` apart, as the key encoding does.
 * @example
 * ```ts
 * const memo = new PreparedMemo<PreparedFragment>(); memo.set(path, fragment); memo.get(path) === fragment
 * ```
 */
export class PreparedMemo<T> {
  #root: Node<T> = new Map()
  #size = 0

  get(path: readonly unknown[]): T | undefined {
    let node: Node<T> | undefined = this.#root
    for (const value of path) {
      node = node.get(value) as Node<T> | undefined
      if (node === undefined) return undefined
    }
    return node.get(LEAF) as T | undefined
  }

  set(path: readonly unknown[], prepared: T): void {
    // Bounded: a template varying by an unbounded input (a timestamp, say) must not grow this forever.
    if (this.#size >= 10_000) {
      this.#root = new Map()
      this.#size = 0
    }
    let node = this.#root
    for (const value of path) {
      let next = node.get(value) as Node<T> | undefined
      if (next === undefined) node.set(value, (next = new Map()))
      node = next
    }
    node.set(LEAF, prepared)
    this.#size += 1
  }
}

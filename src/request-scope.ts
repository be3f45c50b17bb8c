/**
 * The per-request scope (AsyncLocalStorage): the entries and data versions one request has read, forced refresh, the
 * request's contexts (who is signed in, the language: what an entry may vary by) and the lookups made for it (for
 * `Server-Timing`).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Entry } from './entry.ts'
import { InvalidArgumentError, describeValue } from './errors.ts'

/** One fragment or page lookup of a request: what it was, how it was answered, how long it took. */
export interface Lookup {
  /** `frag` or `view`. */
  readonly kind: 'frag' | 'view'
  readonly name: string
  readonly state: 'hit' | 'miss' | 'stale'
  readonly ms: number
}

/**
 * What lives for one request (OEP-22's RequestCache): the entries read so far, the data versions seen
 * (so every fragment of one page judges against the same snapshot), the force-refresh state and the request's contexts.
 */
export interface RequestScope {
  /** Entries read or written in this request, by full key. */
  readonly entries: Map<string, Entry>
  /** Data versions read in this request, by tag. */
  readonly versions: Map<string, number>
  /** When true, every key read through `getOrSet` is recomputed once in this request. */
  readonly forceRefresh: boolean
  /** Keys already recomputed under `forceRefresh`. */
  readonly refreshed: Set<string>
  /** The request's contexts: what entries may vary by. */
  readonly contexts: RequestContexts
  /** Fragment and page lookups made for this request, in order (capped). */
  readonly lookups: Lookup[]
}

/** A context's value, or a function giving it (called at most once per request, on first use). */
export type ContextSource = unknown | (() => unknown)

/** Options of {@link runInRequestScope}. */
export interface RequestScopeOptions {
  /** Recompute (once per key) every value read through `getOrSet` in this scope, and write it through. */
  forceRefresh?: boolean
  /**
   * The request's contexts, by name (`user`, `lang`, …): what a fragment or value may vary by (`vary: ['user']`), each a
   * value or a function computing it on first use. A name a compute varies by but the scope does not declare has the
   * value `undefined` (the same variation for every request without it).
   */
  contexts?: Readonly<Record<string, ContextSource>>
}

/** The most lookups kept per request (a page of a thousand fragments keeps its first ones). */
export const MAX_LOOKUPS = 64
const CONTEXT_NAME = /^[\w.-]{1,64}$/

/**
 * The contexts of one request, computed on first use.
 * @example
 * ```ts
 * const contexts = new RequestContexts({ user: () => req.user?.id ?? null, lang: 'fr' })
 * contexts.value('lang') // 'fr'
 * ```
 */
export class RequestContexts {
  readonly #sources: Readonly<Record<string, ContextSource>>
  readonly #values = new Map<string, unknown>()

  constructor(sources: Readonly<Record<string, ContextSource>> = {}) {
    this.#sources = sources
  }

  /** The value of context `name` in this request (`undefined` when the scope does not declare it). */
  value(name: string): unknown {
    if (this.#values.has(name)) return this.#values.get(name)
    const source = Object.hasOwn(this.#sources, name) ? this.#sources[name] : undefined
    const value = typeof source === 'function' ? (source as () => unknown)() : source
    this.#values.set(name, value)
    return value
  }
}

/**
 * Checks context names given as `vary`, naming what was wrong.
 * @throws InvalidArgumentError for a name that is not 1–64 letters, digits, `_`, `.` or `-`.
 * @example
 * ```ts
 * checkContextNames(['user', 'lang'], 'getOrSet vary') // ['lang', 'user'] (sorted, once each)
 * ```
 */
export function checkContextNames(names: unknown, where: string): string[] {
  const list = typeof names === 'string' ? [names] : names
  if (!Array.isArray(list)) throw new InvalidArgumentError(`fragcache: ${where}: vary must be a context name or a list of them; got ${describeValue(names)}`)
  for (const name of list) {
    if (typeof name !== 'string' || !CONTEXT_NAME.test(name)) {
      throw new InvalidArgumentError(`fragcache: ${where}: a context name is 1 to 64 letters, digits, "_", "." or "-"; got ${describeValue(name)}`)
    }
  }
  return [...new Set(list as string[])].sort()
}

const storage = new AsyncLocalStorage<RequestScope>()

/**
 * Runs `fn` inside a fresh request scope: repeated reads of one key cost one tier lookup, every fragment is judged
 * against one snapshot of data versions, entries vary by the request's `contexts`, and with `forceRefresh` every value
 * read through `getOrSet` is recomputed once and written to every tier. Scopes do not nest: an inner call starts a new,
 * independent scope.
 *
 * @example
 * ```ts
 * app.use((req, res, next) => runInRequestScope(next, { contexts: { user: () => req.user?.id ?? null } }))
 * const html = await runInRequestScope(() => renderPage(), { forceRefresh: true })
 * ```
 */
export function runInRequestScope<T>(fn: () => T, options: RequestScopeOptions = {}): T {
  const scope: RequestScope = {
    entries: new Map(),
    versions: new Map(),
    forceRefresh: options.forceRefresh === true,
    refreshed: new Set(),
    contexts: new RequestContexts(options.contexts),
    lookups: [],
  }
  return storage.run(scope, fn)
}

/**
 * The current request scope, or undefined outside one.
 * @example
 * ```ts
 * if (tryGetRequestScope()?.forceRefresh) console.log('refreshing this request')
 * ```
 */
export function tryGetRequestScope(): RequestScope | undefined {
  return storage.getStore()
}

/**
 * Notes a fragment or page lookup of the current request (for `Server-Timing`), up to {@link MAX_LOOKUPS}.
 * @example
 * ```ts
 * recordLookup({ kind: 'frag', name: 'sidebar', state: 'hit', ms: 0.02 })
 * ```
 */
export function recordLookup(lookup: Lookup): void {
  const scope = storage.getStore()
  if (scope !== undefined && scope.lookups.length < MAX_LOOKUPS) scope.lookups.push(lookup)
}

/**
 * The per-request scope (AsyncLocalStorage): the entries and data versions one request has read, and forced refresh.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Entry } from './entry.ts'

/**
 * What lives for one request (OEP-22's RequestCache): the entries read so far, the data versions seen
 * (so every fragment of one page judges against the same snapshot), and the force-refresh state.
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
}

/** Options of {@link runInRequestScope}. */
export interface RequestScopeOptions {
  /** Recompute (once per key) every value read through `getOrSet` in this scope, and write it through. */
  forceRefresh?: boolean
}

const storage = new AsyncLocalStorage<RequestScope>()

/**
 * Runs `fn` inside a fresh request scope: repeated reads of one key cost one tier lookup, and with
 * `forceRefresh` every value read through `getOrSet` is recomputed once and written to every tier.
 * Scopes do not nest: an inner call starts a new, independent scope.
 *
 * @example
 * ```ts
 * app.use((req, res, next) => runInRequestScope(next, { forceRefresh: req.query.refresh === '1' }))
 * const html = await runInRequestScope(() => renderPage(), { forceRefresh: true })
 * ```
 */
export function runInRequestScope<T>(fn: () => T, options: RequestScopeOptions = {}): T {
  const scope: RequestScope = {
    entries: new Map(),
    versions: new Map(),
    forceRefresh: options.forceRefresh === true,
    refreshed: new Set(),
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

/**
 * Hits, misses and stale serves per fragment and page name, with what their computes cost: what the dashboard's
 * "per fragment" table, the per-name metrics and the time saved are made of.
 */
import { type Lookup, recordLookup, tryGetRequestScope } from './request-scope.ts'

/** What one fragment or page name did since the cache was created. */
export interface NameCounts {
  readonly kind: 'frag' | 'view'
  readonly name: string
  hits: number
  misses: number
  stale: number
  /** Total milliseconds of the misses (each a lookup that ran the body: about its compute time). */
  missMs: number
  /** Total milliseconds of the hits and stale serves. */
  hitMs: number
}

/** Distinct names kept; lookups of names beyond it are counted under `(other)` (bounded memory and metric cardinality). */
export const MAX_NAMES = 500

/**
 * The counts of every fragment and page name of one cache.
 * @example
 * ```ts
 * const names = new LookupStats(); names.record({ kind: 'frag', name: 'sidebar', state: 'hit', ms: 0.1 })
 * names.list()[0]?.hits // 1
 * ```
 */
export class LookupStats {
  // One map per kind, not a joined key: a lookup on the hit path allocates nothing.
  readonly #byKind = { frag: new Map<string, NameCounts>(), view: new Map<string, NameCounts>() }
  #size = 0

  /** Counts a lookup and notes it in the current request scope (for `Server-Timing`). */
  record(lookup: Lookup): void {
    recordLookup(lookup)
    const counts = this.#counts(lookup.kind, lookup.name)
    if (lookup.state === 'miss') {
      counts.misses += 1
      counts.missMs += lookup.ms
    } else {
      if (lookup.state === 'hit') counts.hits += 1
      else counts.stale += 1
      counts.hitMs += lookup.ms
    }
  }

  /** A copy of every name's counts: fragments, then pages, each in the order first seen. */
  list(): NameCounts[] {
    return [...this.#byKind.frag.values(), ...this.#byKind.view.values()].map((counts) => ({ ...counts }))
  }

  /** The average milliseconds a miss of `name` took (0 before its first miss). */
  averageMissMs(kind: 'frag' | 'view', name: string): number {
    const counts = this.#byKind[kind].get(name)
    return counts === undefined || counts.misses === 0 ? 0 : counts.missMs / counts.misses
  }

  #counts(kind: 'frag' | 'view', name: string): NameCounts {
    const names = this.#byKind[kind]
    let counts = names.get(name)
    if (counts !== undefined) return counts
    if (this.#size >= MAX_NAMES) name = '(other)'
    counts = names.get(name)
    if (counts !== undefined) return counts
    counts = { kind, name, hits: 0, misses: 0, stale: 0, missMs: 0, hitMs: 0 }
    names.set(name, counts)
    this.#size += 1
    return counts
  }
}

/** What the lookups of the current request came to (see {@link summarizeRequest}). */
export interface RequestSummary {
  /** Fragment and page lookups made (up to the scope's cap). */
  readonly lookups: number
  /** Of those, answered from the cache (hits and stale serves). */
  readonly fromCache: number
  /**
   * Milliseconds the cached answers saved, approximately: for each, the average time a miss of that name took in this
   * process minus the time the hit took (names never missed here count 0).
   */
  readonly savedMs: number
}

/**
 * What the current request's fragment and page lookups came to so far, for a footer such as "12 fragments, 11 from
 * cache, saved ≈ 340 ms". Outside a request scope, all zeros.
 * @example
 * ```ts
 * const { lookups, fromCache, savedMs } = summarizeRequest(cache.lookupStats)
 * ```
 */
export function summarizeRequest(names: LookupStats): RequestSummary {
  const scope = tryGetRequestScope()
  if (scope === undefined) return { lookups: 0, fromCache: 0, savedMs: 0 }
  let fromCache = 0
  let savedMs = 0
  for (const lookup of scope.lookups) {
    if (lookup.state === 'miss') continue
    fromCache += 1
    savedMs += Math.max(0, names.averageMissMs(lookup.kind, lookup.name) - lookup.ms)
  }
  return { lookups: scope.lookups.length, fromCache, savedMs }
}

/**
 * What a computed value may be stored as, from what its compute recorded: until when (no later than the nested entries
 * it contains), under which key (its own, or the variation for the contexts it turned out to vary by, with a redirect
 * under its own), and whether at all (a read of a private value, by the cache's `privateReads`).
 */
import type { Recorded } from './dependency-recorder.ts'
import { type Entry, ENTRY_OVERHEAD, deepFreeze } from './entry.ts'
import { PrivateReadError } from './errors.ts'
import type { PrivateReads } from './options.ts'
import type { RequestScope } from './request-scope.ts'
import type { EntryWrite } from './tiers/redis.ts'
import { type Variation, contextValues, unionOf, variationKey } from './variation.ts'


/** Where a compute stores: the key it was asked for, and the contexts that key is already varied by. */
export interface Target {
  /** The key the caller named (`cache.keys.build(…)`). */
  readonly base: string
  /** The key looked up first: the base, or its variation for the declared contexts. */
  readonly start: string
  /** The contexts `key` varies by (declared, or named by a redirect already followed). */
  readonly known: readonly string[]
  /** The key computed into. */
  readonly key: string
}

/** The writes a computed value turns into, and what callers sharing the compute must check. */
export interface Settled {
  readonly writes: EntryWrite[]
  /** The entry as stored (or as it would have been): what callers record into the computes around them. */
  readonly entry: Entry
  /** Set when the value varies by contexts: callers whose values differ must not take it. */
  readonly variation: Variation | undefined
}

/**
 * The entry and writes for a computed value. Undefined `lifetime`, a lifetime already over, or a private read with
 * `'bypass'`: nothing is written.
 * @throws PrivateReadError for a private read not covered by the key's contexts, with `'error'`.
 * @example
 * ```ts
 * settle({ target, value, payloadEntry, recorded, privateReads: 'vary', scope, now })
 * ```
 */
export function settle(options: {
  target: Target
  made: { entry: Entry; payload: string }
  recorded: Recorded
  privateReads: PrivateReads
  scope: RequestScope | undefined
  now: number
}): Settled {
  const { target, made, recorded, privateReads, scope, now } = options
  const known = new Set(target.known)
  const undeclared = [...recorded.privateReads].filter(([context]) => !known.has(context))
  const first = undeclared[0]
  if (first !== undefined && privateReads === 'error') throw new PrivateReadError(target.base, first[0], first[1])
  const varies = unionOf(target.known, [...recorded.varies, ...(privateReads === 'vary' ? undeclared.map(([context]) => context) : [])])
  const entry: Entry = { ...made.entry, ...bounded(made.entry, recorded), varies: varies.length === 0 ? null : varies }
  const variation = varies.length === 0 ? undefined : { contexts: varies, values: contextValues(varies, scope) }
  const storable = !(first !== undefined && privateReads === 'bypass') && !(entry.graceUntil !== null && entry.graceUntil <= now)
  if (!storable) return { writes: [], entry, variation }
  if (varies.length === target.known.length) return { writes: [{ key: target.key, entry, payload: made.payload }], entry, variation }
  // It varies by more than its key says: the redirect under the first key looked up names every context.
  const key = variationKey(target.base, varies, scope)
  return { writes: [redirect(target.start, varies, entry), { key, entry, payload: made.payload }], entry, variation }
}

/** A value's own lifetime, cut to the earliest of the nested entries it contains. */
function bounded(entry: Entry, recorded: Recorded): Pick<Entry, 'expiresAt' | 'graceUntil'> {
  const expiresAt = earliest(entry.expiresAt, recorded.expiresAt)
  const graceUntil = earliest(entry.graceUntil, recorded.graceUntil ?? recorded.expiresAt)
  return { expiresAt, graceUntil: graceUntil === null || expiresAt === null ? graceUntil : Math.max(graceUntil, expiresAt) }
}

function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b
  if (b === null) return a
  return Math.min(a, b)
}

/** The redirect under `key`: its value names the contexts its variations are keyed by. It lives as long as the entry. */
function redirect(key: string, contexts: readonly string[], entry: Entry): EntryWrite {
  const payload = JSON.stringify(contexts)
  return {
    key,
    payload,
    entry: {
      value: deepFreeze([...contexts]),
      kind: 'r',
      expiresAt: entry.expiresAt,
      graceUntil: entry.graceUntil,
      computeMs: 0,
      deps: null,
      varies: contexts,
      size: payload.length + ENTRY_OVERHEAD,
    },
  }
}


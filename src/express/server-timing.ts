// `Server-Timing` entries for the fragment and page lookups of one request, added as the response's head is written.
import type { ServerResponse } from 'node:http'
import type { Lookup } from '../request-scope.ts'

/** The most lookups one response lists (a page of a thousand fragments lists its first ones). */
export const MAX_TIMING_ENTRIES = 50

/** Characters outside RFC 9110's token grammar (what a `Server-Timing` metric name must be). */
const NOT_TOKEN = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/g

/**
 * A `Server-Timing` metric name for a lookup: `frag.` or `view.` then its name, each character outside the token
 * grammar replaced by `_`, at most 80 characters.
 * @example
 * ```ts
 * timingName({ kind: 'frag', name: 'article body', state: 'hit', ms: 0.2 }) // 'frag.article_body'
 * ```
 */
export function timingName(lookup: Lookup): string {
  return `${lookup.kind}.${lookup.name}`.replace(NOT_TOKEN, '_').slice(0, 80)
}

/**
 * The `Server-Timing` value for `lookups`: one entry each (`frag.sidebar;desc=hit;dur=0.12`), the first
 * {@link MAX_TIMING_ENTRIES}; undefined for none.
 * @example
 * ```ts
 * lookupTimings([{ kind: 'frag', name: 'sidebar', state: 'miss', ms: 12.345 }]) // 'frag.sidebar;desc=miss;dur=12.35'
 * ```
 */
export function lookupTimings(lookups: readonly Lookup[]): string | undefined {
  if (lookups.length === 0) return undefined
  return lookups
    .slice(0, MAX_TIMING_ENTRIES)
    .map((lookup) => `${timingName(lookup)};desc=${lookup.state};dur=${lookup.ms.toFixed(2)}`)
    .join(', ')
}

/**
 * Adds the lookups' entries to `res`'s `Server-Timing` (after any it has) when its head is written: every way Node
 * writes a head (`writeHead`, or the first `write`/`end`) goes through `writeHead`.
 * @example
 * ```ts
 * addTimingsOnHead(res, scope.lookups)
 * ```
 */
export function addTimingsOnHead(res: ServerResponse, lookups: readonly Lookup[]): void {
  const writeHead = res.writeHead
  const patched = function fragcacheWriteHead(this: ServerResponse, ...args: unknown[]): ServerResponse {
    const value = lookupTimings(lookups)
    // writeHead's own headers argument is merged by Node after this; those set through setHeader are here.
    if (value !== undefined && !this.headersSent) {
      const existing = this.getHeader('server-timing')
      const before = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)]
      this.setHeader('Server-Timing', [...before, value].join(', '))
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args)
  }
  res.writeHead = patched as ServerResponse['writeHead']
}

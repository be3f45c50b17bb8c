// The query string as a page's key holds it, and the queries that keep a request out of the cache: the key must
// never tell apart less than the page sees, or one request's page is served to another.
import type { ResolvedPageOptions } from './options.ts'

/**
 * The `&`-separated pieces of a query string Express reads, empty ones included: its `simple` parser
 * (`querystring.parse`, `maxKeys`) and its `extended` one (qs, `parameterLimit`) both stop at 1,000 and drop the rest.
 */
export const EXPRESS_QUERY_PIECES = 1000

/**
 * The query part of a page's key for the URL `url`: null when there is none, undefined when the query keeps the
 * request out of the cache, which is when it has more pieces than Express reads (the page would not see what the
 * key holds, so two requests whose first 1,000 pieces differ could share a key), or, with `query` set, a parameter
 * named in neither `query` nor `ignoreQuery` (junk parameters cannot fill the cache).
 *
 * Parameters are kept as sent, not decoded: `%FE` and `%FF` both decode to U+FFFD, but qs reads them apart. They are
 * ordered by name up to the first `[`, stably, so the client's order of names does not matter but the order within
 * one name does, as it does to parsers (`a=1&a=2` is not `a=2&a=1`; to qs, `a=1&a[]=2` is not `a[]=2&a=1`).
 */
export function keyedQuery(url: string, o: ResolvedPageOptions): string | null | undefined {
  const start = url.indexOf('?')
  if (start < 0) return null
  const search = url.slice(start + 1)
  if (tooManyPieces(search)) return undefined
  // URLSearchParams skips empty pieces: its entries are the non-empty pieces, in order, decoded.
  const pieces = search.split('&').filter((piece) => piece !== '')
  const kept: { base: string; piece: string }[] = []
  let i = 0
  for (const [name] of new URLSearchParams(search)) {
    const piece = pieces[i++] as string
    if (o.ignoreQuery.has(name)) continue
    if (o.query !== undefined && !o.query.has(name)) return undefined
    const bracket = name.indexOf('[')
    kept.push({ base: bracket < 0 ? name : name.slice(0, bracket), piece })
  }
  if (kept.length === 0) return null
  kept.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0))
  return kept.map((k) => k.piece).join('&')
}

function tooManyPieces(search: string): boolean {
  let pieces = 1
  for (let at = search.indexOf('&'); at >= 0; at = search.indexOf('&', at + 1)) {
    if (++pieces > EXPRESS_QUERY_PIECES) return true
  }
  return false
}

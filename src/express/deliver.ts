// Writing a page out: a stored page replayed (or a 304), a captured one as the view wrote it, and the cache headers.
import type { ServerResponse } from 'node:http'
import type { CapturedResponse, ResponseMethods } from './response-tap.ts'
import { type ReadyPage, matchesEtag } from './stored-page.ts'

/** How a response relates to the cache, as `X-Cache` says. */
export type CacheState = 'HIT' | 'MISS' | 'BYPASS'

/** Per-delivery facts of a stored page. */
export interface Delivery {
  readonly state: CacheState
  /** The `Server-Timing` entries of the cache. */
  readonly timing: string
  readonly now: number
  /** The request's `If-None-Match`. */
  readonly ifNoneMatch: string | undefined
  /** True for HEAD: headers only. */
  readonly head: boolean
}

/** Headers that describe a body, left out of a 304. */
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'transfer-encoding']

/**
 * Writes a stored page to `res`: its status and headers over this request's own, `ETag`, `Age`, `X-Cache`,
 * `Server-Timing`, and the body byte for byte, or a 304 when `If-None-Match` matches.
 */
export function sendStored(res: ServerResponse, methods: ResponseMethods, ready: ReadyPage, delivery: Delivery): void {
  const { page } = ready
  for (const name of page.removed) res.removeHeader(name)
  res.removeHeader('transfer-encoding')
  // Set one by one, not handed to writeHead as a list: a list skips the response's header map, so loggers and
  // finish listeners reading `res.getHeader('content-length')` would see nothing (and a wrapped writeHead, as
  // compression's, may drop a list).
  setAll(res, ready.headers)
  res.setHeader('Age', String(Math.max(0, Math.floor((delivery.now - page.storedAt) / 1000))))
  markDelivery(res, delivery.state, delivery.timing)
  if (matchesEtag(delivery.ifNoneMatch, page.etag)) {
    for (const name of BODY_HEADERS) res.removeHeader(name)
    methods.writeHead.call(res, 304)
    methods.end.call(res)
    return
  }
  res.setHeader('Content-Length', ready.length)
  methods.writeHead.call(res, page.status, page.statusMessage ?? undefined)
  if (delivery.head) methods.end.call(res)
  else methods.end.call(res, ready.body)
}

/** Sets a flat `[name, value, …]` list of headers. */
function setAll(res: ServerResponse, headers: readonly (string | readonly string[])[]): void {
  for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(headers[i] as string, headers[i + 1] as string | string[])
}

/**
 * Writes a captured response that was not stored, as the view wrote it (its headers are on `res` already). The
 * view did not see the conditional headers, so a 200 whose own ETag matches `If-None-Match` becomes a 304 here.
 */
export function sendCaptured(
  res: ServerResponse,
  methods: ResponseMethods,
  captured: CapturedResponse,
  timing: string,
  ifNoneMatch: string | undefined,
): void {
  markDelivery(res, 'BYPASS', timing)
  const etag = res.getHeader('etag')
  if (captured.status === 200 && typeof etag === 'string' && matchesEtag(ifNoneMatch, etag)) {
    for (const name of BODY_HEADERS) res.removeHeader(name)
    methods.writeHead.call(res, 304)
    methods.end.call(res)
    return
  }
  methods.writeHead.call(res, captured.status, captured.statusMessage)
  methods.end.call(res, captured.body)
}

/** Sets `X-Cache` and adds the cache's entries to any `Server-Timing` the view set. */
export function markDelivery(res: ServerResponse, state: CacheState, timing: string): void {
  res.setHeader('X-Cache', state)
  res.setHeader('Server-Timing', timingValue(res, timing))
}

/** The cache's `Server-Timing` entries after any the response has already. */
function timingValue(res: ServerResponse, timing: string): string {
  const existing = res.getHeader('server-timing')
  if (existing === undefined) return timing
  return [...(Array.isArray(existing) ? existing : [String(existing)]), timing].join(', ')
}

/** Milliseconds since `started`, for `Server-Timing` (two decimals). */
export function since(started: number): string {
  return (performance.now() - started).toFixed(2)
}

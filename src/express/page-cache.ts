// One request through the page cache: a hit from memory answered without waiting; otherwise the far tier, or one
// render per key shared by the identical requests that arrive meanwhile, stored when it may be.
import type { NextFunction, Request, Response } from 'express'
import { runInRequestScope, tryGetRequestScope } from '../request-scope.ts'
import type { TieredCache } from '../tiered-cache.ts'
import { type CacheState, markDelivery, sendCaptured, sendStored, since } from './deliver.ts'
import { type PageCacheOptions, type ResolvedPageOptions, checkCache, checkPageOptions } from './options.ts'
import { type PageKey, PageKeys, requestCookies } from './page-key.ts'
import { type CapturedResponse, type ResponseMethods, type ResponseTap, methodsOf, tapResponse } from './response-tap.ts'
import { type StorePolicy, type StoredPage, readyPage, snapshotHeaders, toStoredPage, unstorableReason } from './stored-page.ts'

/** The request handler of one page cache; `cachePage` and `cacheSite` wrap it in functions of their own name. */
export type PageHandler = (req: Request, res: Response, next: NextFunction) => void

/** Renders identical requests once: by cache, by full key, the page being rendered (undefined if it is not stored). */
const rendering = new WeakMap<TieredCache, Map<string, Promise<StoredPage | undefined>>>()
/** Marks a request a page cache already handles, so a nested one passes it on instead of waiting for itself. */
const HANDLED = Symbol('fragcache.pageCache')

/** What the page's compute returns when the response may not be stored; carries what was rendered, when whole. */
class PageNotStored {
  constructor(readonly captured: CapturedResponse | undefined) {}
}

const storeOnlyPages = (value: unknown): boolean => !(value instanceof PageNotStored)

interface PageContext {
  readonly cache: TieredCache
  readonly o: ResolvedPageOptions
  readonly policy: StorePolicy
  readonly inflight: Map<string, Promise<StoredPage | undefined>>
  readonly keys: PageKeys
}

/**
 * The handler of one page cache, its options checked up front.
 * @throws InvalidArgumentError for a cache not made by `createCache()` or a bad option.
 */
export function createPageHandler(cache: TieredCache, options: PageCacheOptions, where: string): PageHandler {
  checkCache(cache, where)
  const o = checkPageOptions(cache, options, where)
  const keyed = new Set([...o.varyHeaders, ...(o.varyCookies.length > 0 ? ['cookie'] : [])])
  let inflight = rendering.get(cache)
  if (inflight === undefined) rendering.set(cache, (inflight = new Map()))
  const policy: StorePolicy = { statuses: o.statuses, keyedHeaders: keyed }
  const context: PageContext = { cache, o, policy, inflight, keys: new PageKeys(cache, o) }
  return (req: Request, res: Response, next: NextFunction): void => {
    const marked = req as Request & { [HANDLED]?: true }
    if (marked[HANDLED]) {
      next()
      return
    }
    marked[HANDLED] = true
    const started = performance.now()
    let key: PageKey | undefined
    try {
      key = cacheableKey(context, req)
      if (key !== undefined) {
        for (const header of keyed) res.vary(header)
        if (serveNear(context, req, res, key, started)) return
      }
    } catch (error) {
      next(error)
      return
    }
    const serve = (): Promise<void> => servePage(context, req, res, next, key, started)
    // Whatever runs the view runs it in a request scope: without requestScope in front, the page gets one of its
    // own (one version snapshot for all its fragments). A hit served from memory above needs none.
    void (tryGetRequestScope() === undefined ? runInRequestScope(serve) : serve())
  }
}

/** The page's key, or undefined when the request bypasses the cache (method, skip, host, credentials, range, depth). */
function cacheableKey(context: PageContext, req: Request): PageKey | undefined {
  const { o } = context
  const method = req.method
  if ((method !== 'GET' && method !== 'HEAD') || o.skip?.(req) === true) return undefined
  const host = allowedHost(req, o)
  if (host === false || signedIn(req, o) || req.headers.range !== undefined) return undefined
  return context.keys.of(req, host)
}

/**
 * The hit that needs no waiting: the page is in L1 (or this request's scope) with its deps known to be current.
 * Writes it out and returns true; false when only the asynchronous path can tell (or a refresh is forced).
 */
function serveNear(context: PageContext, req: Request, res: Response, key: PageKey, started: number): boolean {
  const head = req.method === 'HEAD'
  if (!head && tryGetRequestScope()?.forceRefresh === true) return false
  const found = context.cache.peekByKey(key.fullKey)
  const ready = found === undefined ? undefined : readyPage(found.value)
  if (ready === undefined) return false
  const timing = `cache;desc=hit;dur=${since(started)}`
  const delivery = { ifNoneMatch: header(req, 'if-none-match'), head, now: context.o.clock(), state: 'HIT' as const, timing }
  sendStored(res, res as unknown as ResponseMethods, ready, delivery)
  return true
}

/**
 * One request through the page cache when {@link serveNear} could not answer it (`key` undefined: a bypass);
 * never rejects (errors go to `next` while the view has not run).
 */
async function servePage(
  context: PageContext,
  req: Request,
  res: Response,
  next: NextFunction,
  key: PageKey | undefined,
  started: number,
): Promise<void> {
  const { cache, o } = context
  let handedOver = false
  const handOver = (state: CacheState, timing: string | undefined): void => {
    if (timing !== undefined) markDelivery(res, state, timing)
    handedOver = true
    next()
  }
  try {
    if (key === undefined) return handOver('BYPASS', 'cache;desc=bypass')
    const method = req.method
    const deps = o.deps?.(req) ?? []
    const ifNoneMatch = header(req, 'if-none-match')
    const delivery = { ifNoneMatch, head: method === 'HEAD' }

    if (method === 'HEAD' || tryGetRequestScope()?.forceRefresh !== true) {
      const found = await cache.get(key.name, undefined, { namespace: 'view', inputs: key.inputs })
      const stored = readyPage(found)
      const running = stored === undefined ? context.inflight.get(key.fullKey) : undefined
      const ready = stored ?? readyPage(await running)
      if (ready !== undefined) {
        return sendStored(res, methodsOf(res), ready, { ...delivery, now: o.clock(), state: 'HIT', timing: `cache;desc=hit;dur=${since(started)}` })
      }
      // HEAD has no body to store; a GET render in flight that was not stored will not be either.
      if (method === 'HEAD') return handOver('MISS', `cache;desc=miss;dur=${since(started)}`)
      if (running !== undefined) return handOver('BYPASS', `cache;desc=bypass;dur=${since(started)}`)
    }
    await renderPage(context, req, res, { key, deps, delivery, started, handOver: () => handOver('MISS', undefined) })
  } catch (error) {
    if (!handedOver) next(error)
    else if (!res.headersSent) res.destroy(error as Error)
  }
}

interface RenderRequest {
  readonly key: PageKey
  readonly deps: readonly string[]
  readonly delivery: { ifNoneMatch: string | undefined; head: boolean }
  readonly started: number
  readonly handOver: () => void
}

/**
 * The miss: runs the rest of the chain as the compute of `getOrSetByKey`, so that every fragment rendered into the
 * page records its deps into the page's entry, holding the response back until it ends; stores it when it may be,
 * and writes it out either way.
 */
async function renderPage(context: PageContext, req: Request, res: Response, r: RenderRequest): Promise<void> {
  const { cache, o, policy, inflight } = context
  const lookup = since(r.started)
  const before = snapshotHeaders(res.getHeaders())
  let tap: ResponseTap | undefined
  let renderMs = '0'
  // The view must not answer conditional requests itself: the page cache owns the ETag and the 304.
  const restoreConditionals = hideConditionals(req)
  const computed = cache.getOrSetByKey(
    r.key.fullKey,
    async () => {
      const renderStarted = performance.now()
      tap = tapResponse(res, o.maxBodyBytes, () => {
        restoreConditionals()
        markDelivery(res, 'BYPASS', `cache;desc=miss;dur=${lookup}, render;dur=${since(renderStarted)}`)
      })
      r.handOver()
      const captured = await tap.done.catch(() => undefined)
      renderMs = since(renderStarted)
      if (captured === undefined || unstorableReason(captured, before, policy) !== undefined) return new PageNotStored(captured)
      return toStoredPage(captured, before, o.clock())
    },
    { ttl: o.ttl, deps: [...r.key.tags, ...r.deps], force: true, store: storeOnlyPages },
  )
  const shared = computed.then(
    (page) => (page instanceof PageNotStored ? undefined : (page as StoredPage)),
    () => undefined,
  )
  inflight.set(r.key.fullKey, shared)
  void shared.then(() => {
    if (inflight.get(r.key.fullKey) === shared) inflight.delete(r.key.fullKey)
  })
  let page: unknown
  try {
    page = await computed
  } finally {
    restoreConditionals()
  }
  const timing = `cache;desc=miss;dur=${lookup}, render;dur=${renderMs}`
  const ready = page instanceof PageNotStored ? undefined : readyPage(page)
  if (ready !== undefined) {
    sendStored(res, (tap as ResponseTap).original, ready, { ...r.delivery, now: o.clock(), state: 'MISS', timing })
  } else if (page instanceof PageNotStored && page.captured !== undefined && tap !== undefined) {
    // Without a whole capture the response already streamed through (too large) or the client left.
    sendCaptured(res, tap.original, page.captured, timing, r.delivery.ifNoneMatch)
  }
}

/** The host for the key: null when hosts are not part of it, false when this one is not allowed. */
function allowedHost(req: Request, o: ResolvedPageOptions): string | null | false {
  if (o.allowedHosts === undefined) return null
  const host = (req.hostname ?? '').toLowerCase()
  return o.allowedHosts.has(host) ? host : false
}

/** True when the request carries credentials the page does not explicitly vary on. */
function signedIn(req: Request, o: ResolvedPageOptions): boolean {
  if (req.headers.authorization !== undefined && !o.varyHeaders.includes('authorization')) return true
  const header = req.headers.cookie
  if (o.varyAllCookies || o.sessionCookies.length === 0 || header === undefined) return false
  // A cookie's name is in the header as it is: without any of the names there, no parsing is needed.
  if (!o.sessionCookies.some((name) => header.includes(name))) return false
  const cookies = requestCookies(req)
  return o.sessionCookies.some((name) => cookies.has(name) && !o.varyCookies.includes(name))
}

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/** Removes the conditional headers from the request for the view; the returned function puts them back. */
function hideConditionals(req: Request): () => void {
  const saved: [string, string | string[] | undefined][] = ['if-none-match', 'if-modified-since'].map((name) => [name, req.headers[name]])
  for (const [name] of saved) delete req.headers[name]
  return () => {
    for (const [name, value] of saved) if (value !== undefined) req.headers[name] = value
  }
}

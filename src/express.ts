import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { runInRequestScope, tryGetRequestScope } from './request-scope.ts'
import type { TieredCache } from './tiered-cache.ts'
import { type CacheState, markDelivery, sendCaptured, sendStored, since } from './express/deliver.ts'
import { type PageCacheOptions, type ResolvedPageOptions, checkCache, checkKnown, checkPageOptions, optionalFunction } from './express/options.ts'
import { type PageKey, PageKeys, prefixTag, requestCookies } from './express/page-key.ts'
import { type CapturedResponse, type ResponseMethods, type ResponseTap, methodsOf, tapResponse } from './express/response-tap.ts'
import { type StorePolicy, type StoredPage, readyPage, snapshotHeaders, toStoredPage, unstorableReason } from './express/stored-page.ts'

export type { PageCacheOptions } from './express/options.ts'
export type { StoredPage } from './express/stored-page.ts'

/** Options of {@link requestScope}. */
export interface RequestScopeMiddlewareOptions {
  /**
   * When it returns true, every value read through `getOrSet` in this request (fragments, and the page itself
   * under `cachePage`) is recomputed once and written through. Decide who may: it costs a full render.
   */
  forceRefresh?: (req: Request) => boolean
}

/**
 * Opens fragcache's per-request scope for every request: repeated reads of one key cost one lookup, every
 * fragment of a page is judged against one snapshot of data versions, and `forceRefresh` re-renders what the
 * request reads. Mount it before the routes; everything the rest of the chain runs, awaits and renders is inside.
 *
 * @example
 * ```ts
 * import { requestScope } from 'fragcache/express'
 * app.use(requestScope(cache, { forceRefresh: (req) => req.query.refresh === '1' && isStaff(req) }))
 * ```
 */
export function requestScope(cache: TieredCache, options: RequestScopeMiddlewareOptions = {}): RequestHandler {
  checkCache(cache, 'requestScope')
  checkKnown(options, ['forceRefresh'], 'requestScope')
  const forceRefresh = optionalFunction(options.forceRefresh, 'forceRefresh', 'requestScope')
  return function fragcacheRequestScope(req: Request, _res: Response, next: NextFunction): void {
    let force = false
    try {
      force = forceRefresh?.(req) === true
    } catch (error) {
      next(error)
      return
    }
    runInRequestScope(() => next(), { forceRefresh: force })
  }
}

/**
 * Caches whole responses of one route (Django's `cache_page`), safe by default. The key is the method, the path
 * (kept readable), the query with parameter order ignored, and the `vary` headers and cookies, hashed. Only GET and
 * HEAD of anonymous requests are served from it, and only 200s (or `statuses`) that set no cookie and are not
 * `private`/`no-store` are stored, with the data versions every fragment rendered into the page recorded, so a
 * `versions.bump` of any of them, or an {@link invalidatePath} above the page's path, invalidates it.
 *
 * Responses say `X-Cache: HIT|MISS|BYPASS`, `Age` and `Server-Timing`; stored pages carry an `ETag` and answer a
 * matching `If-None-Match` with a 304. Identical requests arriving during a render wait for it and share it.
 *
 * @example
 * ```ts
 * import { cachePage } from 'fragcache/express'
 * app.get('/articles', cachePage(cache, { ttl: 300, vary: ['accept-language', 'cookie:lang'], deps: () => ['article'] }), listArticles)
 * ```
 */
export function cachePage(cache: TieredCache, options: PageCacheOptions = {}): RequestHandler {
  const handle = createPageHandler(cache, options, 'cachePage')
  return function fragcacheCachePage(req: Request, res: Response, next: NextFunction): void {
    handle(req, res, next)
  }
}

/**
 * {@link cachePage} for every route mounted after it (Django's site-wide cache middleware): anonymous GET and HEAD
 * requests are served from the cache, everything else (and anything signed in, or setting a cookie) passes through.
 * A route that has its own `cachePage` inside is cached once, by the outer one.
 *
 * @example
 * ```ts
 * import { cacheSite } from 'fragcache/express'
 * app.use(cacheSite(cache, { ttl: 60, skip: (req) => req.path.startsWith('/admin') }))
 * ```
 */
export function cacheSite(cache: TieredCache, options: PageCacheOptions = {}): RequestHandler {
  const handle = createPageHandler(cache, options, 'cacheSite')
  return function fragcacheCacheSite(req: Request, res: Response, next: NextFunction): void {
    handle(req, res, next)
  }
}

/**
 * Invalidates every cached page at or under `prefix`, in every process, without scanning keys: each page depends on
 * a version tag per directory of its path, and this bumps the prefix's. A prefix is always read as a directory:
 * `/tournaments/5` and `/tournaments/5/` both clear `/tournaments/5`, `/tournaments/5/` and `/tournaments/5/bracket`,
 * never `/tournaments/50`; `/` clears every page. Case and percent-encoding do not matter.
 * @throws InvalidArgumentError for a prefix that is not a path; AtomicityError when Redis is configured but down.
 *
 * @example
 * ```ts
 * import { invalidatePath } from 'fragcache/express'
 * await invalidatePath(cache, '/tournaments/5/')                 // from a job, a hook, another process
 * await invalidatePath(cache, ['/tournaments/5/', '/players/9/']) // one round trip
 * ```
 */
export async function invalidatePath(cache: TieredCache, prefix: string | readonly string[]): Promise<void> {
  checkCache(cache, 'invalidatePath')
  const tags = (Array.isArray(prefix) ? prefix : [prefix]).map(prefixTag)
  if (tags.length > 0) await cache.versions.bump(...tags)
}

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

function createPageHandler(cache: TieredCache, options: PageCacheOptions, where: string) {
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

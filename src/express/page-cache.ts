// One request through the page cache: a hit from memory answered without waiting; otherwise the far tier, or one
// render per key shared by the identical requests that arrive meanwhile, stored when it may be.
import type { NextFunction, Request, Response } from 'express'
import { runInRequestScope, tryGetRequestScope } from '../request-scope.ts'
import type { TieredCache } from '../tiered-cache.ts'
import { type CacheState, markDelivery, sendCaptured, sendStored, since } from './deliver.ts'
import { type PageCacheOptions, type ResolvedPageOptions, checkCache, checkPageOptions } from './options.ts'
import { type PageKey, PageKeys } from './page-key.ts'
import { mayUseSharedCache } from './request-policy.ts'
import { type CapturedResponse, type ResponseMethods, type ResponseTap, tapResponse } from './response-tap.ts'
import { type ReadyPage, type StorePolicy, type StoredPage, readyPage, snapshotHeaders, toStoredPage, unstorableReason } from './stored-page.ts'

/** The request handler of one page cache; `cachePage` and `cacheSite` wrap it in functions of their own name. */
export type PageHandler = (req: Request, res: Response, next: NextFunction) => void

/** Marks a request a page cache already handles, so a nested one passes it on instead of waiting for itself. */
const HANDLED = Symbol('fragcache.pageCache')

/** What a render returns when the response may not be stored; carries what was rendered, when whole. */
class PageNotStored {
  constructor(readonly captured: CapturedResponse | undefined) {}
}

const storeOnlyPages = (value: unknown): boolean => !(value instanceof PageNotStored)

interface PageContext {
  readonly cache: TieredCache
  readonly o: ResolvedPageOptions
  readonly policy: StorePolicy
  readonly keys: PageKeys
}

/** Passes the request on to the view, with the `X-Cache` state and `Server-Timing` to answer with (if known yet). */
type HandOver = (state: CacheState, timing: string | undefined) => void

/**
 * The handler of one page cache, its options checked up front.
 * @throws InvalidArgumentError for a cache not made by `createCache()` or a bad option.
 */
export function createPageHandler(cache: TieredCache, options: PageCacheOptions, where: string): PageHandler {
  checkCache(cache, where)
  const o = checkPageOptions(cache, options, where)
  const keyed = new Set([...o.varyHeaders, ...(o.varyCookies.length > 0 ? ['cookie'] : [])])
  const context: PageContext = { cache, o, policy: { statuses: o.statuses, keyedHeaders: keyed }, keys: new PageKeys(cache, o) }
  return (req, res, next) => {
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

/** The page's key, or undefined when the request bypasses the cache (see {@link mayUseSharedCache} and {@link PageKeys.of}). */
function cacheableKey(context: PageContext, req: Request): PageKey | undefined {
  return mayUseSharedCache(req, context.o) ? context.keys.of(req) : undefined
}

/**
 * The hit that needs no waiting: the page is in L1 (or this request's scope) with its deps known to be current.
 * Writes it out and returns true; false when only the asynchronous path can tell (`peekByKey` answers nothing under
 * a forced refresh).
 */
function serveNear(context: PageContext, req: Request, res: Response, key: PageKey, started: number): boolean {
  const found = context.cache.peekByKey(key.fullKey)
  const ready = found === undefined ? undefined : readyPage(found.value)
  if (ready === undefined) return false
  sendHit(context, req, res, ready, started)
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
  let handedOver = false
  const handOver: HandOver = (state, timing) => {
    if (timing !== undefined) markDelivery(res, state, timing)
    handedOver = true
    next()
  }
  try {
    if (key === undefined) handOver('BYPASS', 'cache;desc=bypass')
    else if (req.method === 'HEAD') await serveHead(context, req, res, key, started, handOver)
    else await serveGet(context, req, res, key, started, handOver)
  } catch (error) {
    if (!handedOver) next(error)
    else if (!res.headersSent) res.destroy(error as Error)
  }
}

/** HEAD is answered from a stored page and never rendered into one (it has no body to store): else the view answers. */
async function serveHead(context: PageContext, req: Request, res: Response, key: PageKey, started: number, handOver: HandOver): Promise<void> {
  const ready = readyPage(await context.cache.getByKey(key.fullKey))
  if (ready === undefined) handOver('MISS', `cache;desc=miss;dur=${since(started)}`)
  else sendHit(context, req, res, ready, started)
}

/**
 * A GET the near tiers could not answer. `getOrSetByKey` reads the far tier, then either joins the render of this
 * key already under way in this process or starts this request's own: the cache's single-flight, whose check and
 * claim have no `await` between them, so a burst of identical requests renders once. With Redis, the cache's lock
 * makes that one render across processes (the others wait for it, or render themselves after the lock's wait).
 * Under a forced refresh the cache starts this request's render whatever is stored or under way.
 */
async function serveGet(context: PageContext, req: Request, res: Response, key: PageKey, started: number, handOver: HandOver): Promise<void> {
  const { cache, o } = context
  const render = new OwnRender(context, req, res, started, handOver)
  const page = await cache.getOrSetByKey(key.fullKey, render.run, {
    ttl: o.ttl,
    deps: [...key.tags, ...(o.deps?.(req) ?? [])],
    store: storeOnlyPages,
    // The render answers this request: it must never be started in the background for a request answered already,
    // nor outlive a soft timeout that answers with a stale page while the view still writes. Without grace no page
    // is ever stale, so the cache's softTimeoutMs never applies to one.
    earlyRefresh: false,
    grace: 0,
    // A stored page that cannot be replayed (corrupt, or not fragcache's) is dropped and rendered anew.
    accept: (value) => readyPage(value) !== undefined,
  })
  if (render.ran) return render.deliver(page)
  const ready = readyPage(page)
  if (ready !== undefined) return sendHit(context, req, res, ready, started)
  // Another request's render that could not be stored (it set a cookie, say): this request is rendered for itself.
  handOver('BYPASS', `cache;desc=bypass;dur=${since(started)}`)
}

/** A stored page written out as a hit (no tap on the response: its own methods write). */
function sendHit(context: PageContext, req: Request, res: Response, ready: ReadyPage, started: number): void {
  context.cache.lookupStats.record({ kind: 'view', name: pageName(req), state: 'hit', ms: performance.now() - started })
  const timing = `cache;desc=hit;dur=${since(started)}`
  const delivery = { ifNoneMatch: header(req, 'if-none-match'), head: req.method === 'HEAD', now: context.o.clock(), state: 'HIT' as const, timing }
  sendStored(res, res as unknown as ResponseMethods, ready, delivery)
}

/**
 * This request's own render: the compute of the page's entry hands the request to the view, holding its response
 * back until it ends, so that every fragment rendered into the page records its deps into the page's entry; then
 * the response is judged (stored or not) and written out either way.
 */
class OwnRender {
  /** True once the cache has run {@link run}: this request's view renders the page. */
  ran = false
  #tap: ResponseTap | undefined
  #timing = ''
  readonly #context: PageContext
  readonly #req: Request
  readonly #res: Response
  readonly #started: number
  readonly #handOver: HandOver
  /** Read before the view runs: the view must not answer conditional requests itself (the page cache owns the ETag and the 304). */
  readonly #ifNoneMatch: string | undefined

  constructor(context: PageContext, req: Request, res: Response, started: number, handOver: HandOver) {
    this.#context = context
    this.#req = req
    this.#res = res
    this.#started = started
    this.#handOver = handOver
    this.#ifNoneMatch = header(req, 'if-none-match')
  }

  /** The compute of the page's entry: the view's response, ready to store, or why it may not be. */
  readonly run = async (): Promise<StoredPage | PageNotStored> => {
    this.ran = true
    const { o, policy } = this.#context
    const res = this.#res
    const lookup = since(this.#started)
    const before = snapshotHeaders(res.getHeaders())
    const restoreConditionals = hideConditionals(this.#req)
    const renderStarted = performance.now()
    const tap = tapResponse(res, o.maxBodyBytes, () => {
      restoreConditionals()
      markDelivery(res, 'BYPASS', `cache;desc=miss;dur=${lookup}, render;dur=${since(renderStarted)}`)
    })
    this.#tap = tap
    this.#handOver('MISS', undefined)
    const captured = await tap.done.catch(() => undefined)
    restoreConditionals()
    // Before the response is written out: its Server-Timing lists this lookup.
    this.#context.cache.lookupStats.record({ kind: 'view', name: pageName(this.#req), state: 'miss', ms: performance.now() - this.#started })
    this.#timing = `cache;desc=miss;dur=${lookup}, render;dur=${since(renderStarted)}`
    if (captured === undefined || unstorableReason(captured, before, policy) !== undefined) return new PageNotStored(captured)
    return toStoredPage(captured, before, o.clock())
  }

  /** Writes out what {@link run} rendered, as stored (`MISS`) or as the view wrote it (`BYPASS`). */
  deliver(page: unknown): void {
    const tap = this.#tap as ResponseTap
    if (page instanceof PageNotStored) {
      // Without a whole capture the response already streamed through (too large) or the client left.
      if (page.captured !== undefined) sendCaptured(this.#res, tap.original, page.captured, this.#timing, this.#ifNoneMatch)
      return
    }
    const ready = readyPage(page)
    if (ready === undefined) return
    const delivery = { ifNoneMatch: this.#ifNoneMatch, head: false, now: this.#context.o.clock(), state: 'MISS' as const, timing: this.#timing }
    sendStored(this.#res, tap.original, ready, delivery)
  }
}

/** A page's name in the per-name counts: its route's path when it has one (`/articles/:id`), else the request's path. */
function pageName(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path
  return req.baseUrl + (typeof route === 'string' ? route : req.path)
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

// `fragcache/express`: the middleware factories (request scope, page and site cache) and path invalidation.
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { InvalidArgumentError, describeValue } from '../errors.ts'
import { checkKnownOptions } from '../options.ts'
import { checkContextNames, runInRequestScope, tryGetRequestScope } from '../request-scope.ts'
import type { TieredCache } from '../tiered-cache.ts'
import { type PageCacheOptions, checkCache, optionalFunction } from './options.ts'
import { createPageHandler } from './page-cache.ts'
import { prefixTag } from './page-key.ts'
import { addTimingsOnHead } from './server-timing.ts'

export { cacheDashboard, type DashboardOptions } from './dashboard.ts'

export type { PageCacheOptions } from './options.ts'
export type { StoredPage } from './stored-page.ts'

/** Options of {@link requestScope}. */
export interface RequestScopeMiddlewareOptions {
  /**
   * When it returns true, every value read through `getOrSet` in this request (fragments, and the page itself
   * under `cachePage`) is recomputed once and written through. Decide who may: it costs a full render.
   */
  forceRefresh?: (req: Request) => boolean
  /**
   * The request's contexts, by name: what a fragment or value may vary by (`vary="user"` on a tag, `vary: ['user']` on
   * `getOrSet`), each computed from the request on first use. Nested fragments' contexts bubble up to the fragments
   * and pages around them, so a shared entry containing a per-user one is itself kept per user.
   */
  contexts?: Readonly<Record<string, (req: Request) => unknown>>
  /**
   * Adds a `Server-Timing` entry per fragment and page lookup of the request (`frag.sidebar;desc=hit;dur=0.04`, at most
   * 50; names outside the header's token grammar get `_`), so browser devtools show what was cached (default true).
   * They name your fragments: turn it off where that should not be public.
   */
  serverTiming?: boolean
}

/**
 * Opens fragcache's per-request scope for every request: repeated reads of one key cost one lookup, every
 * fragment of a page is judged against one snapshot of data versions, entries may vary by the request's `contexts`,
 * and `forceRefresh` re-renders what the request reads. Mount it before the routes; everything the rest of the chain
 * runs, awaits and renders is inside.
 *
 * @example
 * ```ts
 * import { requestScope } from 'fragcache/express'
 * app.use(requestScope(cache, {
 *   forceRefresh: (req) => req.query.refresh === '1' && isStaff(req),
 *   contexts: { user: (req) => req.user?.id ?? null, lang: (req) => req.acceptsLanguages('en', 'fr') || 'en' },
 * }))
 * ```
 */
export function requestScope(cache: TieredCache, options: RequestScopeMiddlewareOptions = {}): RequestHandler {
  checkCache(cache, 'requestScope')
  checkKnownOptions(options, ['forceRefresh', 'contexts', 'serverTiming'], 'requestScope')
  if (options.serverTiming !== undefined && typeof options.serverTiming !== 'boolean') {
    throw new InvalidArgumentError(`fragcache: requestScope: serverTiming must be true or false; got ${describeValue(options.serverTiming)}`)
  }
  const timing = options.serverTiming !== false
  const forceRefresh = optionalFunction(options.forceRefresh, 'forceRefresh', 'requestScope')
  const sources = Object.entries(options.contexts ?? {})
  for (const [name, source] of sources) {
    checkContextNames(name, 'requestScope contexts')
    optionalFunction(source, `contexts.${name}`, 'requestScope')
  }
  return function fragcacheRequestScope(req: Request, res: Response, next: NextFunction): void {
    let force = false
    try {
      force = forceRefresh?.(req) === true
    } catch (error) {
      next(error)
      return
    }
    const contexts = sources.length === 0 ? undefined : Object.fromEntries(sources.map(([name, source]) => [name, () => source(req)]))
    runInRequestScope(
      () => {
        if (timing) addTimingsOnHead(res, (tryGetRequestScope() as NonNullable<ReturnType<typeof tryGetRequestScope>>).lookups)
        next()
      },
      { forceRefresh: force, contexts },
    )
  }
}

/**
 * Caches whole responses of one route (Django's `cache_page`), safe by default. The key is the path (kept readable),
 * then, hashed, the host, the query as Express reads it (the order of names ignored), and the `vary` headers and
 * cookies. Like Varnish's built-in rule, only GET and HEAD requests without a cookie (but those named in
 * `ignoreCookies` or `vary`) or an `Authorization` header use it; so does only a query Express reads whole, of
 * names in `query` when that is set. Only 200s (or `statuses`) that set no cookie and are not `private`/`no-store`
 * are stored, with the data versions every fragment rendered into the page recorded, so a `versions.bump` of any of
 * them, or an {@link invalidatePath} above the page's path, invalidates it.
 *
 * Responses say `X-Cache: HIT|MISS|BYPASS`, `Age` and `Server-Timing`; stored pages carry an `ETag` and answer a
 * matching `If-None-Match` with a 304. Identical requests arriving during a render wait for it and share it.
 *
 * @example
 * ```ts
 * import { cachePage } from 'fragcache/express'
 * app.get('/articles', cachePage(cache, { ttl: 300, vary: ['accept-language', 'cookie:lang'], ignoreCookies: ['_ga'], query: ['page'], deps: () => ['article'] }), listArticles)
 * ```
 */
export function cachePage(cache: TieredCache, options: PageCacheOptions = {}): RequestHandler {
  const handle = createPageHandler(cache, options, 'cachePage')
  return function fragcacheCachePage(req: Request, res: Response, next: NextFunction): void {
    handle(req, res, next)
  }
}

/**
 * {@link cachePage} for every route mounted after it (Django's site-wide cache middleware): GET and HEAD requests
 * without cookies or credentials are served from the cache; everything else (any other method, a request with a
 * cookie, a response setting one) passes through.
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

// `cacheDashboard`: the cache's figures for the people running it, behind an authorization the caller must give.
import type { NextFunction, Request, Response } from 'express'
import { InvalidArgumentError, describe, describeValue } from '../errors.ts'
import { checkKnownOptions } from '../options.ts'
import type { TieredCache } from '../tiered-cache.ts'
import { renderDashboard } from './dashboard-html.ts'
import { checkCache } from './options.ts'
import { prefixTag } from './page-key.ts'

/** Options of {@link cacheDashboard}. */
export interface DashboardOptions {
  /**
   * Required. Whether this request may see the dashboard and use its forms: return true (or a promise of true) for
   * staff only. Every other answer, and a throw, is a 403.
   */
  authorize: (req: Request) => boolean | Promise<boolean>
  /** Entries listed under "largest" (default 10). */
  largest?: number
}

const MAX_FORM_BYTES = 8 * 1024
const SECURITY_HEADERS: Record<string, string> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'Referrer-Policy': 'same-origin',
}

/**
 * A mountable dashboard of the cache (an Express middleware that routes its own two paths): hit rates per tier, per
 * fragment and per page, the time cached answers saved, the largest L1 entries, the latest invalidations, Redis and
 * bus health, and forms to invalidate a path or bump a tag. Server-rendered HTML with no script. Every request is
 * refused (403) unless `authorize(req)` returns true; the forms also refuse any request a browser marks as cross-site
 * (`Sec-Fetch-Site`) or whose `Origin` is another site, and one that carries neither.
 * @throws InvalidArgumentError when `authorize` is missing or not a function, or for an unknown option.
 * @example
 * ```ts
 * import { cacheDashboard } from 'fragcache/express'
 * app.use('/_cache', cacheDashboard(cache, { authorize: (req) => req.user?.isStaff === true }))
 * ```
 */
export function cacheDashboard(cache: TieredCache, options: DashboardOptions): (req: Request, res: Response, next: NextFunction) => void {
  checkCache(cache, 'cacheDashboard')
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`fragcache: cacheDashboard needs options with authorize, a function telling who may see it; got ${describeValue(options)}`)
  }
  checkKnownOptions(options, ['authorize', 'largest'], 'cacheDashboard')
  const { authorize } = options
  if (typeof authorize !== 'function') {
    throw new InvalidArgumentError(`fragcache: cacheDashboard: authorize must be a function telling who may see the dashboard; got ${describeValue(authorize)}`)
  }
  const largest = options.largest ?? 10
  if (!Number.isSafeInteger(largest) || largest < 0) {
    throw new InvalidArgumentError(`fragcache: cacheDashboard: largest must be a whole number of entries; got ${describeValue(options.largest)}`)
  }
  return function fragcacheDashboard(req: Request, res: Response, next: NextFunction): void {
    void handle(cache, authorize, largest, req, res).catch(next)
  }
}

async function handle(cache: TieredCache, authorize: DashboardOptions['authorize'], largest: number, req: Request, res: Response): Promise<void> {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value)
  let allowed = false
  try {
    allowed = (await authorize(req)) === true
  } catch {
    allowed = false
  }
  if (!allowed) return void res.status(403).type('text/plain').send('Forbidden: the cache dashboard needs authorization.\n')
  if (req.path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
    const notice = typeof req.query.done === 'string' ? req.query.done.slice(0, 300) : undefined
    res.type('html').send(
      renderDashboard({
        stats: cache.stats(),
        names: cache.lookupStats.list(),
        largest: cache.largestEntries(largest),
        invalidations: cache.invalidations(),
        now: cache.now(),
        notice,
        action: `${req.baseUrl}/invalidate`,
      }),
    )
    return
  }
  if (req.path === '/invalidate' && req.method === 'POST') return invalidate(cache, req, res)
  res.status(404).type('text/plain').send('Not found\n')
}

/** The forms' target: refuses cross-site posts, then invalidates and redirects back with what was done (POST/redirect/GET). */
async function invalidate(cache: TieredCache, req: Request, res: Response): Promise<void> {
  const refusal = crossSite(req)
  if (refusal !== undefined) return void res.status(403).type('text/plain').send(`Forbidden: ${refusal}\n`)
  const form = await readForm(req)
  if (form === undefined) return void res.status(400).type('text/plain').send('Bad request: expected a form of kind and target.\n')
  const kind = form.get('kind')
  const target = (form.get('target') ?? '').trim()
  let done: string
  try {
    if (kind === 'path') {
      await cache.versions.bump(prefixTag(target))
      done = `Invalidated every page at or under ${target}`
    } else if (kind === 'tag' && target !== '') {
      await cache.versions.bump(target)
      done = `Bumped tag ${target}`
    } else return void res.status(400).type('text/plain').send('Bad request: kind must be "path" or "tag", with a target.\n')
  } catch (error) {
    if (error instanceof InvalidArgumentError) return void res.status(400).type('text/plain').send(`Bad request: ${error.message}\n`)
    return void res.status(503).type('text/plain').send(`Not done: ${describe(error)}\n`)
  }
  res.redirect(303, `${req.baseUrl}/?done=${encodeURIComponent(done)}`)
}

/** Why a post is refused as not same-origin, or undefined when it is. */
function crossSite(req: Request): string | undefined {
  const site = req.headers['sec-fetch-site']
  if (site !== undefined) return site === 'same-origin' ? undefined : `a ${String(site)} request may not change the cache.`
  const origin = req.headers.origin
  if (origin === undefined) return 'a request that says neither Sec-Fetch-Site nor Origin may not change the cache.'
  return origin === `${req.protocol}://${req.get('host') ?? ''}` ? undefined : `a request from ${origin} may not change the cache.`
}

/** The urlencoded form of the request, parsed already (by `express.urlencoded`) or read here; undefined when it is not one. */
async function readForm(req: Request): Promise<URLSearchParams | undefined> {
  const parsed: unknown = req.body
  if (typeof parsed === 'object' && parsed !== null && !Buffer.isBuffer(parsed)) {
    const fields = Object.entries(parsed).filter((pair): pair is [string, string] => typeof pair[1] === 'string')
    return new URLSearchParams(fields)
  }
  if (!req.is('application/x-www-form-urlencoded')) return undefined
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_FORM_BYTES) return undefined
    chunks.push(chunk)
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

import type { Server } from 'node:http'
import { fileURLToPath } from 'node:url'
import cookieParser from 'cookie-parser'
import express, { type ErrorRequestHandler, type Express } from 'express'
import { cacheDashboard, requestScope } from '../src/express/index.ts'
import type { TieredCache } from '../src/index.ts'
import { ArticleRepository } from './articles.ts'
import { benchCounters } from './bench-counters.ts'
import { DEFAULT_DB_FILE, SEED_DIR, openDatabase } from './db.ts'
import { ENGINES, createRenderers } from './engines.ts'
import { engineRoutes, userOf } from './engine-routes.ts'
import { PageCounters } from './page-counters.ts'
import { type Upstream, startUpstream } from './upstream.ts'
import { USER_COOKIE, loadUsers } from './users.ts'

/** Options of {@link createSite}. */
export interface SiteOptions {
  /** The cache every page, fragment and data version goes through (memory only, or with Redis). */
  cache: TieredCache
  /** The SQLite file, created and seeded on first use; `':memory:'` for a fresh one. Default `example-site/data/site.db`. */
  dbFile?: string
  /** Where the seed JSON lives. Default `fixtures/site-seed/`. */
  seedDir?: string
  /** A running slow upstream to use; omitted, the site starts its own on 127.0.0.1 (and stops it on close). */
  upstreamUrl?: string
  /** Delay of the upstream the site starts itself (ms, default 2000 like the seeds' `/delay/2`). */
  upstreamDelayMs?: number
  /** Seconds a per-view cached page lives (default 300). */
  pageTtl?: number
  /** The city of the forecast widget (default Paris). */
  city?: string
  /** Seconds the forecast widget fragment and the per-view forecast page live (default 60). */
  widgetTtl?: number
}

/** A demo site, ready to `listen`. */
export interface Site {
  readonly app: Express
  readonly articles: ArticleRepository
  /** The slow upstream the widget waits on. */
  readonly upstreamUrl: string
  /** How many times the site's own upstream was called (undefined when `upstreamUrl` was given). */
  readonly upstreamCalls: () => number | undefined
  /** Listens on 127.0.0.1 (port 0: a free one) and resolves with the server. */
  listen(port?: number, host?: string): Promise<Server>
  /** Stops the server (if `listen` was called), the upstream it started and the database; the cache is the caller's. */
  close(): Promise<void>
}

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url))

/**
 * Builds the demo site: the same pages in Nunjucks (`/nunjucks/…`) and Eta (`/eta/…`), a fake login
 * (`/login/alice`), an edit form that saves through the article model (bumping its data version), and
 * `/_cache`, the library's dashboard (`cacheDashboard`, for staff: sign in as alice). Every response names
 * the process that answered in `X-Worker`.
 *
 * @example
 * ```ts
 * const cache = createCache({ prefix: 'demo' })
 * const site = await createSite({ cache, dbFile: ':memory:', upstreamDelayMs: 50 })
 * const server = await site.listen(0)
 * // … GET http://127.0.0.1:<port>/eta/article/1
 * await site.close(); await cache.close()
 * ```
 */
export async function createSite(options: SiteOptions): Promise<Site> {
  const { cache, dbFile = DEFAULT_DB_FILE, seedDir = SEED_DIR, pageTtl = 300, city = 'Paris', widgetTtl = 60 } = options
  let upstream: Upstream | undefined
  const upstreamUrl = options.upstreamUrl ?? (upstream = await startUpstream({ delayMs: options.upstreamDelayMs ?? 2000 })).url
  const db = openDatabase(dbFile, seedDir)
  const articles = new ArticleRepository(db, cache)
  const users = loadUsers(seedDir)
  const renderers = createRenderers(cache, upstreamUrl)
  const pages = new PageCounters()

  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  // Which process answered (a page served from the shared cache still names, in its footer, the one that rendered
  // it): with `start:cluster` this tells the workers apart. Set before `cachePage`, so it is never stored.
  app.use(function workerHeader(_req, res, next) {
    res.setHeader('X-Worker', String(process.pid))
    next()
  })
  app.use(cookieParser())
  // Only a staff member's `?refresh=1` recomputes every fragment of the page (and writes it through).
  app.use(
    requestScope(cache, {
      forceRefresh: (req) => req.query.refresh === '1' && userOf(req, users)?.staff === true,
      // What fragments may vary by: vary="user" keeps one per signed-in user (and one for guests).
      contexts: { user: (req) => userOf(req, users)?.id ?? null },
    }),
  )
  app.use('/static', express.static(PUBLIC, { maxAge: '1h' }))

  app.get('/', (_req, res) => res.redirect(302, '/nunjucks/'))
  for (const engine of ENGINES) {
    app.use(`/${engine}`, engineRoutes({ engine, cache, articles, users, renderers, pages, pageTtl, city, widgetTtl }))
  }

  const login = (id: unknown, res: express.Response, next: unknown) => {
    const user = typeof id === 'string' ? users.get(id) : undefined
    if (user === undefined) {
      res.status(404).type('text').send(`No demo user "${String(id)}"; try ${[...users.keys()].join(', ')}`)
      return
    }
    res.cookie(USER_COOKIE, user.id, { httpOnly: true, sameSite: 'lax', path: '/' })
    res.redirect(303, safeNext(next))
  }
  app.get('/login/:user', (req, res) => login(req.params.user, res, req.query.next))
  app.post('/login', express.urlencoded({ extended: false, limit: '1kb' }), (req, res) => {
    const form = (req.body ?? {}) as Record<string, unknown>
    login(form.user, res, form.next)
  })
  app.get('/logout', (req, res) => {
    res.clearCookie(USER_COOKIE, { path: '/' })
    res.redirect(303, safeNext(req.query.next))
  })

  // The library's dashboard, for staff only (sign in as alice): its figures and its invalidation form.
  app.use('/_cache', cacheDashboard(cache, { authorize: (req) => userOf(req, users)?.staff === true }))

  // Renders counted across worker processes by bench:stampede; off unless asked for.
  if (process.env.FRAGCACHE_BENCH === '1') app.get('/_bench/counters', benchCounters({ cache, renderers, pages }))

  app.use(function notFound(_req, res) {
    res.status(404).type('text').send('Not found: the demo lives under /nunjucks/ and /eta/')
  })
  const onError: ErrorRequestHandler = function siteError(error, _req, res, _next) {
    console.error(error)
    if (res.headersSent) return
    res.status(500).type('text').send(`Internal error: ${(error as Error).message}`)
  }
  app.use(onError)

  let server: Server | undefined
  return {
    app,
    articles,
    upstreamUrl,
    upstreamCalls: () => upstream?.calls(),
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        const started = app.listen(port, host, (error?: Error) => (error ? reject(error) : resolve(started)))
        server = started
      })
    },
    async close() {
      if (server) {
        const closing = server
        await new Promise<void>((resolve) => {
          closing.closeAllConnections()
          closing.close(() => resolve())
        })
      }
      await upstream?.close()
      db.close()
    },
  }
}

/** Where to go after login/logout: a local path only (never another site). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && next.startsWith('/') && !next.startsWith('//') ? next : '/nunjucks/'
}

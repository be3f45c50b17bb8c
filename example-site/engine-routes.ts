import express, { type Request, type RequestHandler, type Router } from 'express'
import { cachePage } from '../src/express/index.ts'
import { AtomicityError, OutcomeUnknownError, type TieredCache, markPrivate, summarizeRequest } from '../src/index.ts'
import type { Article, ArticleRepository } from './articles.ts'
import type { EngineName, Renderers } from './engines.ts'
import type { PageCounters } from './page-counters.ts'
import { STRINGS } from './strings.ts'
import { USER_COOKIE, type User, pickLang } from './users.ts'

/** What the routes of one engine need. */
export interface EngineRoutesOptions {
  engine: EngineName
  cache: TieredCache
  articles: ArticleRepository
  users: Map<string, User>
  renderers: Renderers
  pages: PageCounters
  /** Seconds a per-view cached page lives (default 300). */
  pageTtl: number
  /** The city the forecast widget shows. */
  city: string
  /** Seconds the forecast widget fragment (and the per-view forecast page) lives. */
  widgetTtl: number
}

const ENGINE_NAMES: Record<EngineName, string> = { nunjucks: 'Nunjucks', eta: 'Eta' }

/**
 * The signed-in demo user of a request (the fake-login cookie), or undefined for a guest.
 * @example
 * ```ts
 * userOf(req, users)?.name // 'Alice Martin'
 * ```
 */
export function userOf(req: Request, users: Map<string, User>): User | undefined {
  const id: unknown = req.cookies?.[USER_COOKIE]
  return typeof id === 'string' ? users.get(id) : undefined
}

/**
 * The pages of the demo in one engine, mounted at `/<engine>`: home, category (cached per view for guests),
 * article (body cached as a fragment that depends on the article's version), the edit form, and the forecast
 * page in three flavours (fragment-cached widget, `/live` uncached, `/page` cached per view).
 *
 * @example
 * ```ts
 * app.use('/eta', engineRoutes({ engine: 'eta', cache, articles, users, renderers, pages, pageTtl: 300, city: 'Paris', widgetTtl: 60 }))
 * ```
 */
export function engineRoutes(options: EngineRoutesOptions): Router {
  const { engine, cache, articles, users, renderers, pages, pageTtl, city, widgetTtl } = options
  const router = express.Router()

  /** The data every page of the layout needs. */
  const common = (req: Request) => {
    const signedIn = userOf(req, users)
    const lang = pickLang({ query: req.query.lang, user: signedIn, acceptLanguage: req.get('accept-language') })
    // Private to the visitor: a shared fragment that shows it without vary="user" fails in development, naming the line.
    const user = signedIn === undefined ? undefined : markPrivate('user', signedIn)
    return {
      engine,
      engineName: ENGINE_NAMES[engine],
      lang,
      t: STRINGS[lang],
      user,
      users: [...users.values()],
      path: req.path,
      pid: process.pid,
      popular: (forLang: string) => articles.popular(forLang),
      now: () => new Date().toISOString().slice(11, 19),
      // Called by the footer, after the page's fragments: what they came to in this request (a page served whole from
      // the page cache replays the footer of the render that stored it).
      cacheSummary: () => {
        const { lookups, fromCache, savedMs } = summarizeRequest(cache.lookupStats)
        return STRINGS[lang].cacheSummary.replace('{n}', String(lookups)).replace('{s}', lookups === 1 ? '' : 's').replace('{m}', String(fromCache)).replace('{ms}', savedMs.toFixed(0))
      },
      paragraphs,
    }
  }

  const render = async (res: express.Response, page: string, data: Record<string, unknown>, status = 200) => {
    const html = await renderers.render(engine, page, data)
    res.status(status).type('html').send(html)
  }

  const notFound = async (req: Request, res: express.Response) => {
    const data = common(req)
    await render(res, 'not-found', { ...data, title: data.t.notFound }, 404)
  }

  // Per-view caching is for guests only: a signed-in visitor's page shows their header. Guests carry no cookie, and
  // cachePage never serves or stores a request with a cookie it was not told about, such as the fake-login one.
  const guestPageCache = (ttl: number, deps: (req: Request) => string[]): RequestHandler =>
    cachePage(cache, { ttl, vary: ['accept-language'], deps })

  router.get('/', async (req, res) => {
    const data = common(req)
    await render(res, 'home', {
      ...data,
      title: data.t.latest,
      latest: articles.latest(6),
      categories: articles.categories(),
      widget: { city, live: false, ttl: widgetTtl },
    })
  })

  router.get('/category/:slug', pages.count(`${engine} category`), guestPageCache(pageTtl, () => ['article']), async (req, res) => {
    const category = articles.category(String(req.params.slug))
    if (category === undefined) return notFound(req, res)
    const data = common(req)
    await render(res, 'category', {
      ...data,
      title: category.name,
      category,
      articles: articles.inCategory(category.slug).map(withLabel),
    })
  })

  const findArticle = (req: Request): Article | undefined => {
    const id = Number(req.params.id)
    return Number.isInteger(id) && id > 0 ? articles.find(id) : undefined
  }

  router.get('/article/:id', async (req, res) => {
    const article = findArticle(req)
    if (article === undefined) return notFound(req, res)
    const data = common(req)
    // After a save whose cache invalidation could not be confirmed (see the edit handler), say so.
    const notice = req.query.saved === 'unknown' ? data.t.savedUnknown : req.query.saved === 'unavailable' ? data.t.savedUnavailable : undefined
    await render(res, 'article', { ...data, title: article.title, article: withLabel(article), notice })
  })

  router.get('/article/:id/edit', async (req, res) => {
    const article = findArticle(req)
    if (article === undefined) return notFound(req, res)
    const data = common(req)
    await render(res, 'edit', { ...data, title: `${data.t.edit}: ${article.title}`, article })
  })

  router.post('/article/:id/edit', express.urlencoded({ extended: false, limit: '64kb' }), async (req, res) => {
    const article = findArticle(req)
    if (article === undefined) return notFound(req, res)
    const form = (req.body ?? {}) as Record<string, unknown>
    const edited = {
      ...article,
      title: text(form.title),
      summary: text(form.summary),
      body: text(form.body).replace(/\r\n/g, '\n'),
    }
    try {
      await articles.save(edited)
    } catch (error) {
      // The row is saved; only the cache's invalidation failed (Redis down) or could not be confirmed (no answer).
      // The editor is told the truth, not that the save failed.
      if (error instanceof OutcomeUnknownError) return res.redirect(303, `/${engine}/article/${article.id}?saved=unknown`)
      if (error instanceof AtomicityError) return res.redirect(303, `/${engine}/article/${article.id}?saved=unavailable`)
      const data = common(req)
      await render(res, 'edit', { ...data, title: `${data.t.edit}: ${article.title}`, article: edited, error: (error as Error).message }, 400)
      return
    }
    res.redirect(303, `/${engine}/article/${article.id}`)
  })

  const forecastPage = (live: boolean): RequestHandler =>
    async function forecast(req, res) {
      const data = common(req)
      await render(res, 'forecast', { ...data, title: data.t.forecast, widget: { city, live, ttl: widgetTtl } })
    }
  router.get('/forecast', pages.count(`${engine} forecast (fragment)`), forecastPage(false))
  router.get('/forecast/live', forecastPage(true))
  router.get('/forecast/page', pages.count(`${engine} forecast (per view)`), guestPageCache(widgetTtl, () => []), forecastPage(true))

  router.use(function notFoundInEngine(req, res) {
    return notFound(req, res)
  })
  return router
}

/** An article with its date as the pages show it (one format for both engines). */
function withLabel(article: Article): Article & { updatedLabel: string } {
  return { ...article, updatedLabel: article.updatedAt.slice(0, 10) }
}

/** The paragraphs of an article body: blank lines separate them. */
function paragraphs(body: string): string[] {
  return body
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => p !== '')
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : ''
}

import { hash } from 'node:crypto'
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache, tryGetRequestScope } from '../src/index.ts'
import { cachePage, cacheSite, invalidatePath, requestScope } from '../src/express/index.ts'
import { eventually } from './support/redis-server.ts'
import { suiteRedis } from './support/redis-suite.ts'
import { TOPOLOGIES } from './support/redis-topology.ts'
import { thrownMessage } from './support/assertions.ts'
import { type Reply, call, callWithHost, withServer } from './support/http.ts'

/** An app with the request scope in front, and a render counter per path. */
function appWith(cache: TieredCache): { app: Express; renders: Map<string, number>; count(req: Request): number } {
  const app = express()
  app.use(requestScope(cache))
  const renders = new Map<string, number>()
  const count = (req: Request): number => {
    const n = (renders.get(req.path) ?? 0) + 1
    renders.set(req.path, n)
    return n
  }
  return { app, renders, count }
}

/**
 * `n` identical GETs through `cachePage`, held in front of it until every one has arrived and then let go together
 * (the burst a loaded server sees): how many times the handler ran, and what each request got.
 */
async function crowd(
  cache: TieredCache,
  n: number,
  view = (res: Response, render: number): void => {
    res.send(`crowd #${render}`)
  },
): Promise<{ renders: number; replies: Reply[] }> {
  const app = express()
  let arrived = 0
  let allArrived: () => void = () => {}
  const everyoneHere = new Promise<void>((resolve) => (allArrived = resolve))
  app.use(async (_req, _res, next) => {
    if (++arrived === n) allArrived()
    await everyoneHere
    next()
  })
  app.use(requestScope(cache))
  let renders = 0
  app.get('/crowd', cachePage(cache), (_req, res) => view(res, ++renders))
  return withServer(app, async (base) => {
    const replies = await Promise.all(Array.from({ length: n }, () => call(`${base}/crowd`)))
    return { renders, replies }
  })
}

/** Asserts that a {@link crowd} of 200 was rendered once and every request got that render. */
function assertRenderedOnce({ renders, replies }: { renders: number; replies: Reply[] }): void {
  assert.is(renders, 1, 'the handler ran once')
  assert.equal(
    replies.map((r) => `${r.status} ${r.body}`),
    Array(200).fill('200 crowd #1'),
  )
  assert.equal(
    replies.map((r) => r.cache).sort(),
    ['HIT', 'MISS'].flatMap((state) => Array(state === 'HIT' ? 199 : 1).fill(state)),
  )
}

// ---------------------------------------------------------------------------------------------------------------
const scopeSuite = suite('requestScope')

scopeSuite('exports :: every middleware is a function', () => {
  for (const fn of [requestScope, cachePage, cacheSite, invalidatePath]) assert.type(fn, 'function')
  assert.is(requestScope(createCache()).name, 'fragcacheRequestScope')
  assert.is(cachePage(createCache()).name, 'fragcacheCachePage')
  assert.is(cacheSite(createCache()).name, 'fragcacheCacheSite')
})

scopeSuite('scope :: covers the async handler and a callback-style render', async () => {
  const cache = createCache()
  const app = express()
  app.use(requestScope(cache))
  app.get('/', async (_req, res) => {
    const first = tryGetRequestScope()
    await new Promise((resolve) => setTimeout(resolve, 5))
    const afterAwait = tryGetRequestScope()
    setImmediate(() => {
      const inCallback = tryGetRequestScope()
      res.send(`${first !== undefined} ${first === afterAwait} ${first === inCallback}`)
    })
  })
  await withServer(app, async (base) => {
    assert.is((await call(base)).body, 'true true true')
  })
})

scopeSuite('scope :: one scope per request, forceRefresh decided per request', async () => {
  const cache = createCache()
  const app = express()
  app.use(requestScope(cache, { forceRefresh: (req) => req.query.refresh === '1' && req.get('x-staff') === 'yes' }))
  const seen = new Set<object>()
  app.get('/', (_req, res) => {
    const scope = tryGetRequestScope()
    if (scope) seen.add(scope)
    res.send(String(scope?.forceRefresh))
  })
  await withServer(app, async (base) => {
    assert.is((await call(base)).body, 'false')
    assert.is((await call(`${base}/?refresh=1`)).body, 'false')
    assert.is((await call(`${base}/?refresh=1`, { headers: { 'x-staff': 'yes' } })).body, 'true')
    assert.is(seen.size, 3)
  })
})

scopeSuite('scope :: an error in forceRefresh goes to the error handler', async () => {
  const cache = createCache()
  const app = express()
  app.use(
    requestScope(cache, {
      forceRefresh: () => {
        throw new Error('no staff list')
      },
    }),
  )
  app.get('/', (_req, res) => res.send('never'))
  app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => res.status(500).send(`caught: ${error.message}`))
  await withServer(app, async (base) => {
    const reply = await call(base)
    assert.is(reply.status, 500)
    assert.is(reply.body, 'caught: no staff list')
  })
})

scopeSuite('options :: validated up front', () => {
  const cache = createCache()
  assert.is(
    thrownMessage(() => requestScope({} as TieredCache)),
    'fragcache: requestScope needs a cache made by createCache(); got an object (Object)',
  )
  assert.is(
    thrownMessage(() => requestScope(cache, { force: true } as never)),
    'fragcache: requestScope: unknown option "force"; known options are forceRefresh, contexts, serverTiming',
  )
  assert.is(
    thrownMessage(() => requestScope(cache, { forceRefresh: true } as never)),
    'fragcache: requestScope: forceRefresh must be a function; got true',
  )
})

scopeSuite.run()

// ---------------------------------------------------------------------------------------------------------------
const pageSuite = suite('cachePage')

pageSuite('hit :: the second GET is replayed: same status, headers and body, X-Cache, Age, ETag', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/articles', cachePage(cache, { ttl: 300 }), (req, res) => {
    res.set('X-Custom', 'kept').type('html').send(`<h1>articles</h1> render ${count(req)}`)
  })
  await withServer(app, async (base) => {
    const miss = await call(`${base}/articles`)
    const hit = await call(`${base}/articles`)
    assert.is(miss.cache, 'MISS')
    assert.is(hit.cache, 'HIT')
    assert.is(miss.body, '<h1>articles</h1> render 1')
    assert.is(hit.body, '<h1>articles</h1> render 1')
    assert.is(hit.status, 200)
    assert.is(hit.headers.get('x-custom'), 'kept')
    assert.is(hit.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.is(hit.headers.get('content-length'), String(miss.bytes.length))
    assert.is(hit.headers.get('age'), '0')
    const etag = `"${hash('sha1', miss.bytes, 'base64url')}"`
    assert.is(miss.headers.get('etag'), etag)
    assert.is(hit.headers.get('etag'), etag)
  })
})

pageSuite('body :: Buffers and string encodings are replayed byte for byte', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/bytes', cachePage(cache), (req, res) => {
    count(req)
    res.type('application/octet-stream')
    res.write(Buffer.from([0xff, 0x00, 0xfe]))
    res.write('héllo', 'latin1')
    res.write(new Uint8Array([1, 2, 3]))
    res.end('aGk=', 'base64')
  })
  await withServer(app, async (base) => {
    const expected = Buffer.concat([Buffer.from([0xff, 0x00, 0xfe]), Buffer.from('héllo', 'latin1'), Buffer.from([1, 2, 3]), Buffer.from('hi')])
    const miss = await call(`${base}/bytes`)
    const hit = await call(`${base}/bytes`)
    assert.is(miss.cache, 'MISS')
    assert.is(hit.cache, 'HIT')
    assert.ok(miss.bytes.equals(expected), 'the miss sends every byte')
    assert.ok(hit.bytes.equals(expected), 'the hit replays every byte')
    assert.is(hit.headers.get('content-length'), String(expected.length))
  })
})

pageSuite('HEAD :: after a GET it is a hit without a body; a HEAD first stores nothing', async () => {
  const cache = createCache()
  const { app, renders, count } = appWith(cache)
  app.get('/page', cachePage(cache), (req, res) => {
    res.send(`page body ${count(req)}`)
  })
  app.get('/other', cachePage(cache), (req, res) => {
    res.send(`other body ${count(req)}`)
  })
  await withServer(app, async (base) => {
    const get = await call(`${base}/page`)
    const head = await call(`${base}/page`, { method: 'HEAD' })
    assert.is(head.cache, 'HIT')
    assert.is(head.body, '')
    assert.is(head.headers.get('content-length'), String(get.bytes.length))
    assert.is(head.headers.get('etag'), get.headers.get('etag'))

    const headFirst = await call(`${base}/other`, { method: 'HEAD' })
    assert.is(headFirst.cache, 'MISS')
    const getAfter = await call(`${base}/other`)
    assert.is(getAfter.cache, 'MISS', 'the HEAD stored no empty body for the GET')
    assert.is(getAfter.body, 'other body 2')
    const again = await call(`${base}/other`)
    assert.is(again.cache, 'HIT')
    assert.is(again.body, 'other body 2')
    assert.is(renders.get('/page'), 1)
  })
})

pageSuite('key :: query parameter order does not matter, values do; ignoreQuery leaves names out', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/q', cachePage(cache, { ignoreQuery: ['utm_source'] }), (req, res) => {
    res.send(`a=${String(req.query.a)} b=${String(req.query.b)} #${count(req)}`)
  })
  await withServer(app, async (base) => {
    assert.is((await call(`${base}/q?b=2&a=1`)).body, 'a=1 b=2 #1')
    const reordered = await call(`${base}/q?a=1&b=2`)
    assert.is(reordered.cache, 'HIT')
    assert.is(reordered.body, 'a=1 b=2 #1')
    assert.is((await call(`${base}/q?a=1&b=2&utm_source=mail`)).cache, 'HIT')
    const other = await call(`${base}/q?a=1&b=3`)
    assert.is(other.cache, 'MISS')
    assert.is(other.body, 'a=1 b=3 #2')
  })
})

pageSuite('vary :: one entry per Accept-Language, and the response says Vary', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/hello', cachePage(cache, { vary: ['accept-language'] }), (req, res) => {
    res.send(`${req.get('accept-language') === 'fr' ? 'bonjour' : 'hello'} #${count(req)}`)
  })
  await withServer(app, async (base) => {
    const en = await call(`${base}/hello`, { headers: { 'accept-language': 'en' } })
    const fr = await call(`${base}/hello`, { headers: { 'accept-language': 'fr' } })
    const enAgain = await call(`${base}/hello`, { headers: { 'accept-language': 'en' } })
    const frAgain = await call(`${base}/hello`, { headers: { 'accept-language': 'fr' } })
    assert.equal([en.cache, fr.cache, enAgain.cache, frAgain.cache], ['MISS', 'MISS', 'HIT', 'HIT'])
    assert.equal([en.body, fr.body, enAgain.body, frAgain.body], ['hello #1', 'bonjour #2', 'hello #1', 'bonjour #2'])
    assert.is(enAgain.headers.get('vary'), 'accept-language')
  })
})

pageSuite('vary :: on a cookie; a session cookie varied on explicitly is cached per session', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/lang', cachePage(cache, { vary: ['cookie:lang'], ignoreCookies: ['theme'] }), (req, res) => {
    res.send(`${/lang=fr/.test(req.get('cookie') ?? '') ? 'fr' : 'en'} #${count(req)}`)
  })
  app.get('/mine', cachePage(cache, { vary: ['cookie:sid'] }), (req, res) => {
    res.send(`for ${req.get('cookie')} #${count(req)}`)
  })
  await withServer(app, async (base) => {
    const fr = await call(`${base}/lang`, { headers: { cookie: 'lang=fr; theme=dark' } })
    const frAgain = await call(`${base}/lang`, { headers: { cookie: 'theme=light; lang=fr' } })
    const en = await call(`${base}/lang`, { headers: { cookie: 'lang=en' } })
    assert.equal([fr.cache, frAgain.cache, en.cache], ['MISS', 'HIT', 'MISS'])
    assert.equal([fr.body, frAgain.body, en.body], ['fr #1', 'fr #1', 'en #2'])
    assert.is(en.headers.get('vary'), 'cookie')

    const a = await call(`${base}/mine`, { headers: { cookie: 'sid=a' } })
    const b = await call(`${base}/mine`, { headers: { cookie: 'sid=b' } })
    const a2 = await call(`${base}/mine`, { headers: { cookie: 'sid=a' } })
    assert.equal([a.cache, b.cache, a2.cache], ['MISS', 'MISS', 'HIT'])
    assert.equal([a.body, b.body, a2.body], ['for sid=a #1', 'for sid=b #2', 'for sid=a #1'])
  })
})

pageSuite('host :: a host in allowedHosts is part of the key; a forged one bypasses and poisons nothing', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/canonical', cachePage(cache, { allowedHosts: ['good.test', 'fr.good.test'] }), (req, res) => {
    res.send(`<link rel="canonical" href="http://${req.hostname}/canonical"> #${count(req)}`)
  })
  await withServer(app, async (base) => {
    const url = `${base}/canonical`
    const good = await callWithHost(url, 'good.test')
    const forged = await callWithHost(url, 'evil.test')
    const forgedAgain = await callWithHost(url, 'evil.test')
    const goodAgain = await callWithHost(url, 'good.test')
    const fr = await callWithHost(url, 'fr.good.test:8080')
    assert.equal([good.cache, forged.cache, forgedAgain.cache, goodAgain.cache, fr.cache], ['MISS', 'BYPASS', 'BYPASS', 'HIT', 'MISS'])
    assert.is(goodAgain.body, '<link rel="canonical" href="http://good.test/canonical"> #1')
    assert.is(forged.body, '<link rel="canonical" href="http://evil.test/canonical"> #2')
    assert.is(fr.body, '<link rel="canonical" href="http://fr.good.test/canonical"> #4')
  })
})

pageSuite('host :: without allowedHosts the host is still part of the key: each host gets the page rendered for it', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/plain', cachePage(cache), (req, res) => {
    res.send(`plain for ${req.get('host')} #${count(req)}`)
  })
  await withServer(app, async (base) => {
    const a = await callWithHost(`${base}/plain`, 'a.test')
    const b = await callWithHost(`${base}/plain`, 'b.test')
    const aAgain = await callWithHost(`${base}/plain`, 'a.test')
    assert.equal([a.cache, b.cache, aAgain.cache], ['MISS', 'MISS', 'HIT'])
    assert.equal([b.body, aAgain.body], ['plain for b.test #2', 'plain for a.test #1'])
  })
})

pageSuite('not stored :: a response that sets a cookie', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/cookie', cachePage(cache), (req, res) => {
    res.cookie('visited', 'yes').send(`cookie #${count(req)}`)
  })
  app.get('/cookie-same', cachePage(cache), (_req, res) => {
    res.cookie('visited', 'yes').send('same')
  })
  await withServer(app, async (base) => {
    const first = await call(`${base}/cookie`)
    const second = await call(`${base}/cookie`)
    assert.equal([first.cache, second.cache], ['BYPASS', 'BYPASS'])
    assert.equal([first.body, second.body], ['cookie #1', 'cookie #2'])
    assert.is(second.headers.get('set-cookie'), 'visited=yes; Path=/')
    assert.ok(second.headers.get('etag')?.startsWith('W/'), "Express's own ETag, not the page cache's")
    const same = await call(`${base}/cookie-same`)
    const conditional = await call(`${base}/cookie-same`, { headers: { 'if-none-match': same.headers.get('etag') ?? '' } })
    assert.equal([conditional.status, conditional.cache], [304, 'BYPASS'])
  })
})

pageSuite('not stored :: Cache-Control private or no-store, and statuses not configured', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/private', cachePage(cache), (req, res) => {
    res.set('Cache-Control', 'private, max-age=60').send(`private #${count(req)}`)
  })
  app.get('/no-store', cachePage(cache), (req, res) => {
    res.set('Cache-Control', 'no-store').send(`no-store #${count(req)}`)
  })
  app.get('/missing', cachePage(cache), (req, res) => {
    res.status(404).send(`missing #${count(req)}`)
  })
  app.get('/gone', cachePage(cache, { statuses: [200, 410] }), (req, res) => {
    res.status(410).send(`gone #${count(req)}`)
  })
  await withServer(app, async (base) => {
    for (const path of ['/private', '/no-store', '/missing']) {
      const first = await call(`${base}${path}`)
      const second = await call(`${base}${path}`)
      assert.equal([first.cache, second.cache], ['BYPASS', 'BYPASS'], path)
      assert.is(second.body, `${path.slice(1)} #2`)
    }
    const missing = await call(`${base}/missing`)
    assert.is(missing.status, 404)
    const gone = await call(`${base}/gone`)
    const goneAgain = await call(`${base}/gone`)
    assert.equal([gone.cache, goneAgain.cache], ['MISS', 'HIT'])
    assert.equal([goneAgain.status, goneAgain.body], [410, 'gone #1'])
  })
})

pageSuite('bypass :: an Authorization header, a session cookie, a POST; none of them sees a stored page', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  const handler = (req: Request, res: Response): void => {
    res.send(`${req.get('authorization') ?? req.get('cookie') ?? 'anonymous'} #${count(req)}`)
  }
  app.get('/dash', cachePage(cache, { ignoreCookies: ['theme'] }), handler)
  app.post('/dash', cachePage(cache, { ignoreCookies: ['theme'] }), handler)
  await withServer(app, async (base) => {
    const url = `${base}/dash`
    assert.is((await call(url)).body, 'anonymous #1')
    assert.is((await call(url)).cache, 'HIT')
    const auth = await call(url, { headers: { authorization: 'Bearer alice' } })
    assert.equal([auth.cache, auth.body], ['BYPASS', 'Bearer alice #2'])
    const session = await call(url, { headers: { cookie: 'theme=dark; sid=alice' } })
    assert.equal([session.cache, session.body], ['BYPASS', 'theme=dark; sid=alice #3'])
    const harmless = await call(url, { headers: { cookie: 'theme=dark' } })
    assert.equal([harmless.cache, harmless.body], ['HIT', 'anonymous #1'])
    const post = await call(url, { method: 'POST' })
    assert.equal([post.cache, post.body], ['BYPASS', 'anonymous #4'])
    assert.is(post.headers.get('server-timing'), 'cache;desc=bypass')
  })
})

pageSuite('limit :: a body larger than maxBodyBytes streams through and is not stored', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/big', cachePage(cache, { maxBodyBytes: 10 }), async (req, res) => {
    const n = count(req)
    res.type('text')
    for (const part of ['aaaaaaaa', 'bbbbbbbb', 'cccccccc']) {
      res.write(part)
      await new Promise((resolve) => setImmediate(resolve))
    }
    res.end(`#${n}`)
  })
  app.get('/small', cachePage(cache, { maxBodyBytes: 10 }), (req, res) => {
    res.send(`small #${count(req)}`)
  })
  await withServer(app, async (base) => {
    const first = await call(`${base}/big`)
    const second = await call(`${base}/big`)
    assert.equal([first.cache, second.cache], ['BYPASS', 'BYPASS'])
    assert.equal([first.body, second.body], ['aaaaaaaabbbbbbbbcccccccc#1', 'aaaaaaaabbbbbbbbcccccccc#2'])
    assert.is((await call(`${base}/small`)).cache, 'MISS')
    assert.is((await call(`${base}/small`)).cache, 'HIT')
  })
})

pageSuite('conditional :: a matching If-None-Match gets a 304, on a hit and on a miss', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/etag', cachePage(cache), (req, res) => {
    count(req)
    res.type('html').send('<p>stable</p>')
  })
  await withServer(app, async (base) => {
    const etag = `"${hash('sha1', '<p>stable</p>', 'base64url')}"`
    const onMiss = await call(`${base}/etag`, { headers: { 'if-none-match': etag } })
    assert.equal([onMiss.status, onMiss.cache, onMiss.body], [304, 'MISS', ''])
    assert.is(onMiss.headers.get('etag'), etag)
    const onHit = await call(`${base}/etag`, { headers: { 'if-none-match': `"other", W/${etag}` } })
    assert.equal([onHit.status, onHit.cache, onHit.body], [304, 'HIT', ''])
    assert.is(onHit.headers.get('content-type'), null)
    const stale = await call(`${base}/etag`, { headers: { 'if-none-match': '"other"' } })
    assert.equal([stale.status, stale.cache, stale.body], [200, 'HIT', '<p>stable</p>'])
    const full = await call(`${base}/etag`)
    assert.equal([full.status, full.body], [200, '<p>stable</p>'])
  })
})

pageSuite('time :: Age counts seconds since stored on the cache clock; the TTL ends the entry', async () => {
  let now = 1_700_000_000_000
  const clock = (): number => now
  const cache = createCache({ clock, earlyRefresh: 0 })
  const { app, count } = appWith(cache)
  app.get('/timed', cachePage(cache, { ttl: 60 }), (req, res) => {
    res.send(`timed #${count(req)}`)
  })
  await withServer(app, async (base) => {
    assert.is((await call(`${base}/timed`)).headers.get('age'), '0')
    now += 42_500
    const aged = await call(`${base}/timed`)
    assert.equal([aged.cache, aged.headers.get('age'), aged.body], ['HIT', '42', 'timed #1'])
    now += 18_000
    const expired = await call(`${base}/timed`)
    assert.equal([expired.cache, expired.headers.get('age'), expired.body], ['MISS', '0', 'timed #2'])
  })
})

pageSuite('timing :: Server-Timing tells the lookup and the render apart', async () => {
  const cache = createCache()
  const { app } = appWith(cache)
  app.get('/timing', cachePage(cache), (_req, res) => {
    res.set('Server-Timing', 'db;dur=1').send('timed')
  })
  await withServer(app, async (base) => {
    const miss = await call(`${base}/timing`)
    const hit = await call(`${base}/timing`)
    assert.match(miss.headers.get('server-timing') ?? '', /^db;dur=1, cache;desc=miss;dur=\d+\.\d\d, render;dur=\d+\.\d\d, view._timing;desc=miss;dur=\d+\.\d\d$/)
    assert.match(hit.headers.get('server-timing') ?? '', /^cache;desc=hit;dur=\d+\.\d\d, view._timing;desc=hit;dur=\d+\.\d\d$/)
  })
})

pageSuite('deps :: a fragment rendered into the page records its deps; a bump invalidates the page', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  let edits = 0
  app.get('/article/1', cachePage(cache), async (req, res) => {
    const body = await cache.getOrSet('article-body:1', () => `body v${edits}`, { deps: ['article:1'] })
    res.send(`${body} page #${count(req)}`)
  })
  await withServer(app, async (base) => {
    assert.is((await call(`${base}/article/1`)).body, 'body v0 page #1')
    assert.is((await call(`${base}/article/1`)).cache, 'HIT')
    edits += 1
    await cache.versions.bump('article:1')
    const after = await call(`${base}/article/1`)
    assert.equal([after.cache, after.body], ['MISS', 'body v1 page #2'])
    assert.is((await call(`${base}/article/1`)).cache, 'HIT')
  })
})

pageSuite('deps :: the deps option adds tags of its own', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/categories', cachePage(cache, { deps: () => ['category'] }), (req, res) => {
    res.send(`categories #${count(req)}`)
  })
  await withServer(app, async (base) => {
    await call(`${base}/categories`)
    assert.is((await call(`${base}/categories`)).cache, 'HIT')
    await cache.versions.bump('category')
    assert.equal((await call(`${base}/categories`)).body, 'categories #2')
  })
})

pageSuite('forceRefresh :: a staff refresh re-renders the page and its fragments and stores them', async () => {
  const cache = createCache()
  const app = express()
  app.use(requestScope(cache, { forceRefresh: (req) => req.query.refresh === '1' && req.get('x-staff') === 'yes' }))
  let renders = 0
  let fragments = 0
  app.get('/front', cachePage(cache, { ignoreQuery: ['refresh'] }), async (_req, res) => {
    renders += 1
    const sidebar = await cache.getOrSet('sidebar', () => `sidebar ${++fragments}`)
    res.send(`front #${renders}, ${sidebar}`)
  })
  await withServer(app, async (base) => {
    assert.is((await call(`${base}/front`)).body, 'front #1, sidebar 1')
    const notStaff = await call(`${base}/front?refresh=1`)
    assert.equal([notStaff.cache, notStaff.body], ['HIT', 'front #1, sidebar 1'])
    const staff = await call(`${base}/front?refresh=1`, { headers: { 'x-staff': 'yes' } })
    assert.equal([staff.cache, staff.body], ['MISS', 'front #2, sidebar 2'])
    const everyone = await call(`${base}/front`)
    assert.equal([everyone.cache, everyone.body], ['HIT', 'front #2, sidebar 2'])
  })
})

pageSuite('single flight :: identical requests during a render wait for it and share it', async () => {
  const cache = createCache()
  const app = express()
  let arrived = 0
  app.use((_req, _res, next) => {
    arrived += 1
    next()
  })
  app.use(requestScope(cache))
  let renders = 0
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => (release = resolve))
  app.get('/slow', cachePage(cache), async (_req, res) => {
    renders += 1
    await gate
    res.send(`slow #${renders}`)
  })
  await withServer(app, async (base) => {
    const replies = Array.from({ length: 5 }, () => call(`${base}/slow`))
    await eventually(() => arrived === 5, 5000, 'five requests to arrive')
    await new Promise((resolve) => setImmediate(resolve))
    release()
    const done = await Promise.all(replies)
    assert.is(renders, 1)
    assert.equal(
      done.map((r) => r.body),
      Array(5).fill('slow #1'),
    )
    assert.equal(done.map((r) => r.cache).sort(), ['HIT', 'HIT', 'HIT', 'HIT', 'MISS'])
  })
})

pageSuite('single flight :: 200 concurrent identical requests run the handler once (memory only)', async () => {
  assertRenderedOnce(await crowd(createCache(), 200))
})

pageSuite('single flight :: requests that waited for a render that set a cookie are rendered each for itself', async () => {
  const { renders, replies } = await crowd(createCache(), 5, (res, render) => {
    res.cookie('visit', String(render)).send(`cookie #${render}`)
  })
  assert.is(renders, 5)
  assert.equal(
    replies.map((r) => `${r.cache} ${r.body} ${r.headers.get('set-cookie')}`).sort(),
    [1, 2, 3, 4, 5].map((render) => `BYPASS cookie #${render} visit=${render}; Path=/`),
  )
})

pageSuite('grace :: a cache with grace and a soft timeout still has the request that renders a page send its own render', async () => {
  let now = 1_700_000_000_000
  const cache = createCache({ clock: () => now, grace: 600, softTimeoutMs: 1, earlyRefresh: 0 })
  const { app, count } = appWith(cache)
  app.get('/slow-again', cachePage(cache, { ttl: 60 }), async (req, res) => {
    const n = count(req)
    // Slower than the soft timeout: a stale page must not be written out while this view is still writing.
    if (n > 1) await new Promise((resolve) => setTimeout(resolve, 20))
    res.send(`slow again #${n}`)
  })
  await withServer(app, async (base) => {
    assert.is((await call(`${base}/slow-again`)).body, 'slow again #1')
    now += 61_000
    const again = await call(`${base}/slow-again`)
    assert.equal([again.status, again.cache, again.body, again.headers.get('age')], [200, 'MISS', 'slow again #2', '0'])
    const hit = await call(`${base}/slow-again`)
    assert.equal([hit.cache, hit.body], ['HIT', 'slow again #2'])
  })
})

pageSuite('errors :: a handler error reaches the error handler, and nothing is stored', async () => {
  const cache = createCache()
  const { app, count } = appWith(cache)
  app.get('/broken', cachePage(cache), async (req) => {
    throw new Error(`template exploded #${count(req)}`)
  })
  app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => res.status(500).send(`error page: ${error.message}`))
  await withServer(app, async (base) => {
    const first = await call(`${base}/broken`)
    const second = await call(`${base}/broken`)
    assert.equal([first.status, first.cache, first.body], [500, 'BYPASS', 'error page: template exploded #1'])
    assert.equal([second.status, second.body], [500, 'error page: template exploded #2'])
  })
})

pageSuite('errors :: an invalid deps tag goes to the error handler before the view runs', async () => {
  const cache = createCache()
  const app = express()
  let ran = false
  app.get('/bad-deps', cachePage(cache, { deps: () => ['has space'] }), (_req, res) => {
    ran = true
    res.send('never')
  })
  app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => res.status(500).send(error.message))
  await withServer(app, async (base) => {
    const reply = await call(`${base}/bad-deps`)
    assert.is(reply.status, 500)
    assert.is(
      reply.body,
      'fragcache: getOrSet deps: a tag must be a non-empty string of at most 200 characters without whitespace; got "has space"',
    )
    assert.is(ran, false)
  })
})

pageSuite('hit :: without requestScope in front, the view still runs in a scope and hits replay every key apart', async () => {
  const cache = createCache()
  const app = express()
  const renders: string[] = []
  app.get('/bare', cachePage(cache, { vary: ['accept-language'] }), (req, res) => {
    renders.push(`${req.originalUrl} ${req.get('accept-language')} scoped=${tryGetRequestScope() !== undefined}`)
    res.type('text').send(`${req.originalUrl} in ${req.get('accept-language')}`)
  })
  await withServer(app, async (base) => {
    const ask = (query: string, lang: string) => call(`${base}/bare${query}`, { headers: { 'accept-language': lang } })
    const replies = []
    for (let round = 0; round < 3; round++) {
      for (const [query, lang] of [['', 'en'], ['', 'fr'], ['?a=1&b=2', 'en'], ['?b=2&a=1', 'en'], ['?a=2', 'en']] as const) {
        const reply = await ask(query, lang)
        replies.push(`${reply.cache} ${reply.body}`)
      }
    }
    assert.equal(replies, [
      'MISS /bare in en',
      'MISS /bare in fr',
      'MISS /bare?a=1&b=2 in en',
      'HIT /bare?a=1&b=2 in en',
      'MISS /bare?a=2 in en',
      ...Array.from({ length: 2 }, () => [
        'HIT /bare in en',
        'HIT /bare in fr',
        'HIT /bare?a=1&b=2 in en',
        'HIT /bare?a=1&b=2 in en',
        'HIT /bare?a=2 in en',
      ]).flat(),
    ])
    assert.equal(renders, [
      '/bare en scoped=true',
      '/bare fr scoped=true',
      '/bare?a=1&b=2 en scoped=true',
      '/bare?a=2 en scoped=true',
    ])
    const hit = await ask('', 'fr')
    assert.is(hit.headers.get('vary'), 'accept-language')
    assert.is(hit.headers.get('content-type'), 'text/plain; charset=utf-8')
    assert.is(hit.headers.get('content-length'), String(Buffer.byteLength('/bare in fr')))
  })
})

pageSuite('hit :: headers set before the page cache stay, the page\'s own win, Server-Timing is appended to', async () => {
  const cache = createCache()
  const app = express()
  app.use((_req, res, next) => {
    res.set({ 'X-Frame-Options': 'DENY', 'X-Shared': 'from the app', 'Server-Timing': 'edge;dur=1' })
    next()
  })
  app.get('/layered', cachePage(cache), (_req, res) => {
    res.set('X-Shared', 'from the page').append('Link', ['</a.css>; rel=preload', '</b.js>; rel=preload']).send('layered')
  })
  await withServer(app, async (base) => {
    await call(`${base}/layered`)
    const hit = await call(`${base}/layered`)
    assert.is(hit.cache, 'HIT')
    assert.is(hit.body, 'layered')
    assert.is(hit.headers.get('x-frame-options'), 'DENY')
    assert.is(hit.headers.get('x-shared'), 'from the page')
    assert.is(hit.headers.get('link'), '</a.css>; rel=preload, </b.js>; rel=preload')
    assert.match(hit.headers.get('server-timing') ?? '', /^edge;dur=1, cache;desc=hit;dur=\d+\.\d\d$/)
  })
})

pageSuite('hit :: a writeHead wrapped by a middleware in front (as compression does) still gets every header', async () => {
  const cache = createCache()
  const app = express()
  app.use((_req, res, next) => {
    const writeHead = res.writeHead
    // Like on-headers: looks at the headers set so far, and passes on only the status.
    res.writeHead = function wrapped(this: Response, status: number) {
      this.setHeader('X-Saw-Length', String(this.getHeader('content-length')))
      return writeHead.call(this, status)
    } as Response['writeHead']
    next()
  })
  app.get('/wrapped', cachePage(cache), (_req, res) => {
    res.set('X-Page', 'yes').send('wrapped body')
  })
  await withServer(app, async (base) => {
    const miss = await call(`${base}/wrapped`)
    const hit = await call(`${base}/wrapped`)
    for (const reply of [miss, hit]) {
      assert.is(reply.body, 'wrapped body')
      assert.is(reply.headers.get('x-page'), 'yes')
      assert.is(reply.headers.get('x-saw-length'), '12')
      assert.is(reply.headers.get('etag'), `"${hash('sha1', 'wrapped body', 'base64url')}"`)
    }
    assert.is(hit.cache, 'HIT')
  })
})

pageSuite('hit :: a logger in front reads the headers of a hit from the response once it is finished', async () => {
  const cache = createCache()
  const app = express()
  app.disable('x-powered-by') // no header set before the page cache
  const logged: string[] = []
  app.use((_req, res, next) => {
    res.on('finish', () => logged.push(`${res.statusCode} ${res.getHeader('x-cache')} ${res.getHeader('content-length')} ${res.getHeader('link')}`))
    next()
  })
  app.get('/logged', cachePage(cache), (_req, res) => {
    res.append('Link', ['</a.css>; rel=preload', '</b.js>; rel=preload']).send('logged')
  })
  await withServer(app, async (base) => {
    const miss = await call(`${base}/logged`)
    const hit = await call(`${base}/logged`)
    assert.is(hit.cache, 'HIT')
    assert.is(hit.body, 'logged')
    assert.is(hit.headers.get('link'), miss.headers.get('link'))
    await eventually(() => logged.length === 2, 1000, 'both requests logged')
    assert.equal(logged, [
      '200 MISS 6 </a.css>; rel=preload,</b.js>; rel=preload',
      '200 HIT 6 </a.css>; rel=preload,</b.js>; rel=preload',
    ])
  })
})

pageSuite('options :: validated up front with exact messages', () => {
  const cache = createCache()
  assert.is(
    thrownMessage(() => cachePage(undefined as unknown as TieredCache)),
    'fragcache: cachePage needs a cache made by createCache(); got undefined',
  )
  assert.is(
    thrownMessage(() => cachePage(cache, { tll: 5 } as never)),
    'fragcache: cachePage: unknown option "tll"; known options are ttl, vary, deps, statuses, allowedHosts, ignoreCookies, query, ignoreQuery, maxBodyBytes, skip',
  )
  assert.is(thrownMessage(() => cachePage(cache, { ttl: '60' as never })), 'fragcache: cachePage: ttl must be a number of seconds or null; got "60"')
  assert.is(
    thrownMessage(() => cachePage(cache, { vary: ['accept language'] })),
    'fragcache: cachePage: vary entries must be header names ("accept-language") or "cookie:NAME"; got "accept language"',
  )
  assert.is(
    thrownMessage(() => cacheSite(cache, { statuses: [304] })),
    'fragcache: cacheSite: statuses must be HTTP status codes from 200 to 599 other than 206 and 304; got 304',
  )
  assert.is(
    thrownMessage(() => cachePage(cache, { allowedHosts: ['good.test:8080'] })),
    'fragcache: cachePage: allowedHosts must be host names without a port; got "good.test:8080"',
  )
  assert.is(thrownMessage(() => cachePage(cache, { maxBodyBytes: 0 })), 'fragcache: cachePage: maxBodyBytes must be a positive integer; got 0')
  assert.is(thrownMessage(() => cachePage(cache, { deps: ['article'] as never })), 'fragcache: cachePage: deps must be a function; got an array')
  assert.is(
    thrownMessage(() => cachePage(cache, { sessionCookies: ['sid'] } as never)),
    'fragcache: cachePage: sessionCookies was replaced: a request with any cookie bypasses the page cache, unless every cookie it carries is named in ignoreCookies (left out of the key) or in vary as "cookie:NAME" (part of the key)',
  )
  assert.is(thrownMessage(() => cachePage(cache, { ignoreCookies: '_ga' as never })), 'fragcache: cachePage: ignoreCookies must be an array; got "_ga"')
  assert.is(thrownMessage(() => cachePage(cache, { ignoreCookies: ['_ga;'] })), 'fragcache: cachePage: ignoreCookies must be cookie names; got "_ga;"')
  assert.is(
    thrownMessage(() => cachePage(cache, { ignoreCookies: ['lang'], vary: ['cookie:lang'] })),
    'fragcache: cachePage: "lang" is in both ignoreCookies (left out of the key) and vary (part of it)',
  )
  assert.is(thrownMessage(() => cachePage(cache, { query: [''] })), 'fragcache: cachePage: query must be query parameter names; got ""')
  assert.is(
    thrownMessage(() => cachePage(cache, { query: ['page', 'ref'], ignoreQuery: ['ref'] })),
    'fragcache: cachePage: "ref" is in both ignoreQuery (left out of the key) and query (part of it)',
  )
})

pageSuite.run()

// ---------------------------------------------------------------------------------------------------------------
const siteSuite = suite('cacheSite')

siteSuite('site :: anonymous GETs of every route are cached; a nested cachePage caches once', async () => {
  const cache = createCache()
  const app = express()
  app.use(requestScope(cache))
  app.use(cacheSite(cache, { ttl: 60, skip: (req) => req.path.startsWith('/admin') }))
  let renders = 0
  app.get('/about', (_req, res) => {
    res.send(`about #${++renders}`)
  })
  app.get('/nested', cachePage(cache, { ttl: 10 }), (_req, res) => {
    res.send(`nested #${++renders}`)
  })
  app.get('/admin', (_req, res) => {
    res.send(`admin #${++renders}`)
  })
  await withServer(app, async (base) => {
    assert.equal([(await call(`${base}/about`)).cache, (await call(`${base}/about`)).cache], ['MISS', 'HIT'])
    const nested = [await call(`${base}/nested`), await call(`${base}/nested`)]
    assert.equal(
      nested.map((r) => [r.cache, r.body]),
      [
        ['MISS', 'nested #2'],
        ['HIT', 'nested #2'],
      ],
    )
    const admin = [await call(`${base}/admin`), await call(`${base}/admin`)]
    assert.equal(
      admin.map((r) => [r.cache, r.body]),
      [
        ['BYPASS', 'admin #3'],
        ['BYPASS', 'admin #4'],
      ],
    )
    const signedIn = await call(`${base}/about`, { headers: { cookie: 'connect.sid=s%3Aabc' } })
    assert.equal([signedIn.cache, signedIn.body], ['BYPASS', 'about #5'])
    const notFound = await call(`${base}/nowhere`)
    assert.equal([notFound.status, notFound.cache], [404, 'BYPASS'])
  })
})

siteSuite.run()

// ---------------------------------------------------------------------------------------------------------------
const invalidateSuite = suite('invalidatePath')

function pathApp(cache: TieredCache): { app: Express; renders: Map<string, number> } {
  const { app, renders, count } = appWith(cache)
  app.use(cacheSite(cache))
  app.get('/{*rest}', (req, res) => {
    res.send(`${req.path} #${count(req)}`)
  })
  return { app, renders }
}

invalidateSuite('prefix :: clears every page under it, by whole path segments only', async () => {
  const cache = createCache()
  const { app } = pathApp(cache)
  await withServer(app, async (base) => {
    const states = async (...paths: string[]): Promise<(string | null)[]> =>
      Promise.all(paths.map(async (path) => (await call(`${base}${path}`)).cache))
    const pages = ['/a/1', '/a/2', '/a/10', '/a', '/b/1']
    await states(...pages)
    assert.equal(await states(...pages), ['HIT', 'HIT', 'HIT', 'HIT', 'HIT'])
    await invalidatePath(cache, '/a/1')
    assert.equal(await states(...pages), ['MISS', 'HIT', 'HIT', 'HIT', 'HIT'])
    await invalidatePath(cache, '/a')
    assert.equal(await states(...pages), ['MISS', 'MISS', 'MISS', 'MISS', 'HIT'])
    await invalidatePath(cache, ['/A/', '/b/'])
    assert.equal(await states(...pages), ['MISS', 'MISS', 'MISS', 'MISS', 'MISS'])
    await invalidatePath(cache, '/')
    assert.equal(await states(...pages), ['MISS', 'MISS', 'MISS', 'MISS', 'MISS'])
    assert.equal(await states(...pages), ['HIT', 'HIT', 'HIT', 'HIT', 'HIT'])
  })
})

invalidateSuite('prefix :: percent-encoding and non-ASCII spellings are one path', async () => {
  const cache = createCache()
  const { app } = pathApp(cache)
  await withServer(app, async (base) => {
    await call(`${base}/caf%C3%A9/menu`)
    assert.is((await call(`${base}/caf%C3%A9/menu`)).cache, 'HIT')
    await invalidatePath(cache, '/café')
    assert.is((await call(`${base}/caf%C3%A9/menu`)).cache, 'MISS')
  })
})

invalidateSuite('prefix :: validated', async () => {
  const cache = createCache()
  for (const bad of ['a/1', '/a?page=2', 42]) {
    try {
      await invalidatePath(cache, bad as string)
      assert.unreachable('should have thrown')
    } catch (error) {
      assert.is(
        (error as Error).message,
        `fragcache: invalidatePath: a path prefix must be a string starting with "/", without "?" or "#"; got ${JSON.stringify(bad)}`,
      )
    }
  }
})

invalidateSuite.run()

// ---------------------------------------------------------------------------------------------------------------
for (const topology of TOPOLOGIES) {
  const redisSuite = suite(`cachePage with Redis :: ${topology}`)
  const redis = suiteRedis(redisSuite, {}, topology)

  redisSuite('cross-process :: invalidatePath from another cache instance clears the pages of this one', async () => {
    const web = await redis.cache('xp')
    const worker = await redis.cache('xp')
    const { app } = pathApp(web)
    await withServer(app, async (base) => {
      for (const path of ['/t/5/bracket', '/t/6/bracket']) await call(`${base}${path}`)
      assert.is((await call(`${base}/t/5/bracket`)).cache, 'HIT')
      await invalidatePath(worker, '/t/5/')
      await eventually(async () => (await call(`${base}/t/5/bracket`)).cache === 'MISS', 5000, 'the page to be invalidated')
      assert.is((await call(`${base}/t/6/bracket`)).cache, 'HIT')
      // the page stored by one process is served by the other (behind one address, as a load balancer sends it)
      const { app: otherApp } = pathApp(worker)
      await withServer(otherApp, async (otherBase) => {
        const shared = await callWithHost(`${otherBase}/t/6/bracket`, new URL(base).host)
        assert.equal([shared.cache, shared.body], ['HIT', '/t/6/bracket #1'])
      })
    })
  })

  redisSuite('single flight :: 200 concurrent identical requests run the handler once (with Redis)', async () => {
    assertRenderedOnce(await crowd(await redis.cache('crowd'), 200))
  })

  // A Cluster's outage is a failover: test/cluster/failover.test.ts.
  if (topology === 'single') redisSuite('outage :: pages still render when Redis stops', async () => {
    const cache = await redis.cache('outage')
    const { app } = pathApp(cache)
    await withServer(app, async (base) => {
      assert.is((await call(`${base}/down/1`)).cache, 'MISS')
      await redis.server.stop()
      const cached = await call(`${base}/down/1`)
      assert.equal([cached.status, cached.body], [200, '/down/1 #1'])
      const fresh = await call(`${base}/down/2`)
      assert.equal([fresh.status, fresh.body], [200, '/down/2 #1'])
      const again = await call(`${base}/down/2`)
      assert.is(again.status, 200)
    })
  })

  redisSuite.run()
}

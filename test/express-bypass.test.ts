// What keeps a request out of the shared page cache, through the app over HTTP: cookies, credentials, a forged
// host, a query Express does not read whole, and query parameters outside the allow-list.
import { hash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import express, { type Express, type Request, type Response } from 'express'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../src/index.ts'
import { type PageCacheOptions, cachePage, requestScope } from '../src/express/index.ts'
import { EXPRESS_QUERY_PIECES } from '../src/express/page-query.ts'
import { patientRedis } from './support/redis-server.ts'
import { suiteRedis } from './support/redis-suite.ts'
import { TOPOLOGIES } from './support/redis-topology.ts'
import { call, callWithHeaders, withServer } from './support/http.ts'

type CacheState = 'HIT' | 'MISS' | 'BYPASS'

/** Every header of a response but those of the connection (`Date`, `Connection`, `Keep-Alive`); durations masked. */
function headersOf(headers: Headers | IncomingHttpHeaders): Record<string, string> {
  const entries: [string, string][] = []
  if (headers instanceof Headers) headers.forEach((value, name) => entries.push([name, value]))
  else for (const [name, value] of Object.entries(headers)) entries.push([name, String(value)])
  const out: Record<string, string> = {}
  for (const [name, value] of entries.sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (name === 'date' || name === 'connection' || name === 'keep-alive') continue
    out[name] = name === 'server-timing' ? value.replace(/dur=\d+\.\d\d/g, 'dur=*') : value
  }
  return out
}

/** The headers of an HTML page whose body is `body`, as the page cache answers in `state` (before any render for BYPASS). */
function pageHeaders(state: CacheState, body: string, extra: Record<string, string> = {}): Record<string, string> {
  const common = { 'content-length': String(Buffer.byteLength(body)), 'content-type': 'text/html; charset=utf-8', 'x-cache': state, 'x-powered-by': 'Express' }
  if (state === 'BYPASS') return { ...common, 'server-timing': 'cache;desc=bypass', ...extra }
  // The page cache's own entries, then requestScope's: one per page lookup (`view._page` is the route /page).
  const timing = state === 'HIT' ? 'cache;desc=hit;dur=*, view._page;desc=hit;dur=*' : 'cache;desc=miss;dur=*, render;dur=*, view._page;desc=miss;dur=*'
  return { ...common, age: '0', etag: `"${hash('sha1', body, 'base64url')}"`, 'server-timing': timing, ...extra }
}

/** A miss's timing without requestScope in front: the page cache's entries only. */
const NO_SCOPE_MISS = { 'server-timing': 'cache;desc=miss;dur=*, render;dur=*' }

/** An app with one cached page at `/page` that shows `view(req)`, and the times it was rendered. */
function pageApp(cache: TieredCache, options: PageCacheOptions, view: (req: Request) => string, setup?: (app: Express) => void) {
  const app = express()
  // Express's own weak ETag would differ per body on a bypass; the page cache's is checked on stored pages.
  app.set('etag', false)
  setup?.(app)
  app.use(requestScope(cache))
  const renders = { count: 0 }
  app.get('/page', cachePage(cache, options), (req: Request, res: Response) => {
    renders.count += 1
    res.send(view(req))
  })
  return { app, renders }
}

/** The signed-in user of the demo pages: any cookie's value; a guest without one. */
const greeting = (req: Request): string => {
  const cookie = req.get('cookie')
  return cookie === undefined ? '<p>Hello, guest</p>' : `<p>Hello, ${cookie}</p>`
}

// ---------------------------------------------------------------------------------------------------------------
const cookies = suite('cachePage :: cookies')

for (const name of ['token', 'sid', 'connect.sid', 'remember_me', '__Host-auth']) {
  cookies(`login cookie :: "${name}" bypasses the cache: the user gets their page, guests the shared one`, async () => {
    const cache = createCache()
    const { app, renders } = pageApp(cache, {}, greeting)
    await withServer(app, async (base) => {
      const alice = await call(`${base}/page`, { headers: { cookie: `${name}=alice` } })
      const guest = await call(`${base}/page`)
      const bob = await call(`${base}/page`, { headers: { cookie: `${name}=bob` } })
      const guestAgain = await call(`${base}/page`)
      assert.equal([alice.status, alice.body, headersOf(alice.headers)], [200, `<p>Hello, ${name}=alice</p>`, pageHeaders('BYPASS', `<p>Hello, ${name}=alice</p>`)])
      assert.equal([guest.status, guest.body, headersOf(guest.headers)], [200, '<p>Hello, guest</p>', pageHeaders('MISS', '<p>Hello, guest</p>')])
      assert.equal([bob.status, bob.body, headersOf(bob.headers)], [200, `<p>Hello, ${name}=bob</p>`, pageHeaders('BYPASS', `<p>Hello, ${name}=bob</p>`)])
      assert.equal([guestAgain.body, headersOf(guestAgain.headers)], ['<p>Hello, guest</p>', pageHeaders('HIT', '<p>Hello, guest</p>')])
      assert.is(renders.count, 3, 'Alice and Bob were rendered for themselves, the guest page once')
    })
  })
}

cookies('login cookie :: a cookie without a name, and one among allowed ones, bypass too', async () => {
  const cache = createCache()
  const { app } = pageApp(cache, { ignoreCookies: ['_ga'] }, greeting)
  await withServer(app, async (base) => {
    await call(`${base}/page`)
    for (const cookie of ['alice', '_ga=GA1.2.3; token=alice', 'token=alice; _ga=GA1.2.3']) {
      const reply = await call(`${base}/page`, { headers: { cookie } })
      assert.equal([reply.body, headersOf(reply.headers)], [`<p>Hello, ${cookie}</p>`, pageHeaders('BYPASS', `<p>Hello, ${cookie}</p>`)], cookie)
    }
  })
})

cookies('ignoreCookies :: an analytics cookie gets the shared page and is not part of the key', async () => {
  const cache = createCache()
  const { app, renders } = pageApp(cache, { ignoreCookies: ['_ga', '_gid'] }, () => '<p>Hello, guest</p>')
  await withServer(app, async (base) => {
    const first = await call(`${base}/page`, { headers: { cookie: '_ga=GA1.2.111' } })
    const other = await call(`${base}/page`, { headers: { cookie: '_ga=GA1.2.222; _gid=GA1.2.9' } })
    const none = await call(`${base}/page`)
    assert.equal([first.body, headersOf(first.headers)], ['<p>Hello, guest</p>', pageHeaders('MISS', '<p>Hello, guest</p>')])
    assert.equal([other.body, headersOf(other.headers)], ['<p>Hello, guest</p>', pageHeaders('HIT', '<p>Hello, guest</p>')])
    assert.equal([none.body, headersOf(none.headers)], ['<p>Hello, guest</p>', pageHeaders('HIT', '<p>Hello, guest</p>')])
    assert.is(renders.count, 1)
  })
})

cookies('vary :: a cookie named in vary is allowed and keyed; Authorization only when vary names it', async () => {
  const cache = createCache()
  const app = express()
  app.set('etag', false)
  app.get('/lang', cachePage(cache, { vary: ['cookie:lang'] }), (req, res) => {
    res.send(`<p>${req.get('cookie') ?? 'lang=en'}</p>`)
  })
  app.get('/api', cachePage(cache, { vary: ['authorization'] }), (req, res) => {
    res.send(`<p>for ${req.get('authorization') ?? 'nobody'}</p>`)
  })
  await withServer(app, async (base) => {
    const fr = await call(`${base}/lang`, { headers: { cookie: 'lang=fr' } })
    const frAgain = await call(`${base}/lang`, { headers: { cookie: 'lang=fr' } })
    const en = await call(`${base}/lang`, { headers: { cookie: 'lang=en' } })
    assert.equal([fr.body, headersOf(fr.headers)], ['<p>lang=fr</p>', pageHeaders('MISS', '<p>lang=fr</p>', { vary: 'cookie', ...NO_SCOPE_MISS })])
    assert.equal([frAgain.body, frAgain.cache], ['<p>lang=fr</p>', 'HIT'])
    assert.equal([en.body, en.cache], ['<p>lang=en</p>', 'MISS'])
    const alice = await call(`${base}/api`, { headers: { authorization: 'Bearer alice' } })
    const aliceAgain = await call(`${base}/api`, { headers: { authorization: 'Bearer alice' } })
    const bob = await call(`${base}/api`, { headers: { authorization: 'Bearer bob' } })
    assert.equal(
      [alice, aliceAgain, bob].map((r) => `${r.cache} ${r.body}`),
      ['MISS <p>for Bearer alice</p>', 'HIT <p>for Bearer alice</p>', 'MISS <p>for Bearer bob</p>'],
    )
    assert.equal(headersOf(bob.headers), pageHeaders('MISS', '<p>for Bearer bob</p>', { vary: 'authorization', ...NO_SCOPE_MISS }))
  })
})

cookies.run()

// ---------------------------------------------------------------------------------------------------------------
const hosts = suite('cachePage :: host')

/** A page that prints the host the way pages do: the Host header for absolute URLs, the host name for a canonical link. */
const canonical = (req: Request): string => `<link rel="canonical" href="https://${req.hostname}/page"><a href="//${req.get('host')}/">home</a>`

const OPTION_SETS: [string, PageCacheOptions][] = [
  ['no options', {}],
  ['allowedHosts', { allowedHosts: ['good.test'] }],
  ['vary', { vary: ['accept-language'] }],
  ['query', { query: ['page'] }],
  ['ignoreCookies and ignoreQuery', { ignoreCookies: ['_ga'], ignoreQuery: ['utm_source'] }],
]

for (const [label, options] of OPTION_SETS) {
  for (const trustProxy of [false, true]) {
    hosts(`forged host :: never poisons a stored page (${label}${trustProxy ? ', trust proxy' : ''})`, async () => {
      const cache = createCache()
      const { app } = pageApp(cache, options, canonical, (a) => a.set('trust proxy', trustProxy))
      await withServer(app, async (base) => {
        const url = `${base}/page`
        // The attacker goes first, with every spelling of a host a page might print (X-Forwarded-Host counts only
        // behind a trusted proxy: otherwise Express ignores it, and the page rendered is the genuine one).
        const forged = [{ host: 'evil.test' }, { host: 'good.test:6666' }, { host: 'GOOD.test' }]
        if (trustProxy) forged.push({ host: 'good.test', 'x-forwarded-host': 'evil.test' } as { host: string })
        for (const headers of forged) await callWithHeaders(url, headers)
        const good = await callWithHeaders(url, { host: 'good.test' })
        const again = await callWithHeaders(url, { host: 'good.test' })
        const body = '<link rel="canonical" href="https://good.test/page"><a href="//good.test/">home</a>'
        const extra: Record<string, string> = options.vary === undefined ? {} : { vary: 'accept-language' }
        assert.equal([good.status, good.body, headersOf(good.headers)], [200, body, pageHeaders('MISS', body, extra)])
        assert.equal([again.body, headersOf(again.headers)], [body, pageHeaders('HIT', body, extra)])
        // The forged requests still get what they asked for, from their own entries or a bypass.
        const evil = await callWithHeaders(url, { host: 'evil.test' })
        assert.is(evil.body, '<link rel="canonical" href="https://evil.test/page"><a href="//evil.test/">home</a>')
        assert.is(evil.cache, options.allowedHosts === undefined ? 'HIT' : 'BYPASS')
        const forwarded = await callWithHeaders(url, { host: 'good.test', 'x-forwarded-host': 'evil.test' })
        assert.is(forwarded.body.includes('https://evil.test/page'), trustProxy, 'the page reads X-Forwarded-Host only behind a trusted proxy')
      })
    })
  }
}

hosts.run()

// ---------------------------------------------------------------------------------------------------------------
const queries = suite('cachePage :: query')

/** A page in the language `?lang=` asks for, as Express parsed the query. */
const inLanguage = (req: Request): string => (req.query.lang === 'fr' ? '<p>Bonjour</p>' : '<p>Hello</p>')

queries('limit :: Express reads 1,000 query pieces, as both its parsers do', () => {
  assert.is(EXPRESS_QUERY_PIECES, 1000)
})

queries('limit :: a query with more pieces than Express reads bypasses, whatever the order', async () => {
  const cache = createCache()
  const { app, renders } = pageApp(cache, {}, inLanguage)
  await withServer(app, async (base) => {
    const filler = Array.from({ length: 1000 }, (_, i) => `p${i}=1`)
    // Express stops at the 1,000th piece: here it never sees lang=fr, and the page is in English.
    const last = await call(`${base}/page?${[...filler, 'lang=fr'].join('&')}`)
    const first = await call(`${base}/page?${['lang=fr', ...filler].join('&')}`)
    assert.equal([last.body, headersOf(last.headers)], ['<p>Hello</p>', pageHeaders('BYPASS', '<p>Hello</p>')])
    assert.equal([first.body, headersOf(first.headers)], ['<p>Bonjour</p>', pageHeaders('BYPASS', '<p>Bonjour</p>')])
    // 1,000 pieces are read whole: cached, and the order of names does not matter.
    const whole = await call(`${base}/page?${['lang=fr', ...filler.slice(1)].join('&')}`)
    const reordered = await call(`${base}/page?${[...filler.slice(1), 'lang=fr'].join('&')}`)
    assert.equal([whole.body, whole.cache, reordered.body, reordered.cache], ['<p>Bonjour</p>', 'MISS', '<p>Bonjour</p>', 'HIT'])
    // Empty pieces count: Express's parsers count them too.
    const empties = await call(`${base}/page?${'&'.repeat(1000)}lang=fr`)
    assert.equal([empties.body, empties.cache], ['<p>Hello</p>', 'BYPASS'])
    assert.is(renders.count, 4)
  })
})

queries('key :: parameters are keyed as sent, in the order each name was given', async () => {
  const cache = createCache()
  const app = express()
  app.set('query parser', 'extended')
  app.get('/list', cachePage(cache), (req, res) => {
    res.json(req.query)
  })
  await withServer(app, async (base) => {
    // qs reads these apart (`a` merges in arrival order; `%FE` stays as sent), URLSearchParams would not.
    const pairs = [
      ['a=1&a[]=2', 'a[]=2&a=1', '{"a":["1","2"]}', '{"a":["2","1"]}'],
      ['q=%FE', 'q=%FF', '{"q":"%FE"}', '{"q":"%FF"}'],
    ]
    for (const [one, other, oneBody, otherBody] of pairs) {
      const first = await call(`${base}/list?${one}`)
      const second = await call(`${base}/list?${other}`)
      assert.equal([first.cache, first.body, second.cache, second.body], ['MISS', oneBody, 'MISS', otherBody])
    }
    const reordered = await call(`${base}/list?b=2&a=1&a[]=2`)
    assert.equal([reordered.cache, reordered.body], ['MISS', '{"b":"2","a":["1","2"]}'])
    assert.is((await call(`${base}/list?a=1&a[]=2&b=2`)).cache, 'HIT')
  })
})

queries('query :: only the listed parameters are keyed; any other bypasses; ignoreQuery is left out', async () => {
  const cache = createCache()
  const { app } = pageApp(cache, { query: ['lang'], ignoreQuery: ['utm_source'] }, inLanguage)
  await withServer(app, async (base) => {
    const fr = await call(`${base}/page?lang=fr`)
    const tracked = await call(`${base}/page?utm_source=mail&lang=fr`)
    const junk = await call(`${base}/page?lang=fr&x=1`)
    assert.equal([fr.body, headersOf(fr.headers)], ['<p>Bonjour</p>', pageHeaders('MISS', '<p>Bonjour</p>')])
    assert.equal([tracked.body, headersOf(tracked.headers)], ['<p>Bonjour</p>', pageHeaders('HIT', '<p>Bonjour</p>')])
    assert.equal([junk.body, headersOf(junk.headers)], ['<p>Bonjour</p>', pageHeaders('BYPASS', '<p>Bonjour</p>')])
  })
})

queries.run()

// ---------------------------------------------------------------------------------------------------------------
for (const topology of TOPOLOGIES) {
  const flood = suite(`cachePage :: a flood of junk query strings, with Redis :: ${topology}`)
  // Patient: 200 requests at once on a busy machine must not turn a slow write into a page missing from Redis.
  const redis = suiteRedis(flood, patientRedis, topology)

  /** The pages stored in Redis under `prefix`. */
  async function storedPages(prefix: string): Promise<number> {
    return (await redis.keys(`${prefix}:1:view:*`)).length
  }

  flood('query :: N distinct junk query strings store N pages without an allow-list, none with one', async () => {
    const junk = Array.from({ length: 200 }, (_, i) => `cb=${i}`)
    for (const [prefix, options, stored] of [
      ['open', {}, 200],
      ['listed', { query: ['lang'] }, 1],
    ] as const) {
      const cache = await redis.cache(prefix)
      const { app, renders } = pageApp(cache, options, inLanguage)
      await withServer(app, async (base) => {
        const replies = await Promise.all(junk.map((query) => call(`${base}/page?${query}`)))
        assert.equal(new Set(replies.map((r) => `${r.status} ${r.body}`)), new Set(['200 <p>Hello</p>']))
        assert.equal(new Set(replies.map((r) => r.cache)), new Set([stored === 1 ? 'BYPASS' : 'MISS']))
        assert.is(renders.count, 200)
        const plain = [await call(`${base}/page?lang=fr`), await call(`${base}/page?lang=fr`)]
        assert.equal(plain.map((r) => `${r.cache} ${r.body}`), ['MISS <p>Bonjour</p>', 'HIT <p>Bonjour</p>'])
      })
      assert.is(await storedPages(prefix), stored === 1 ? 1 : 201, `${prefix}: pages stored in Redis`)
    }
  })

  flood.run()
}

/**
 * The engine contract: what the cache tag does the same way in every template engine, written once and run by each
 * engine's test file through an {@link EngineAdapter}, with the same test names. Renders the fixtures of
 * `fixtures/<engine>/` and compares whole strings (most with `fixtures/expected/`, which both engines must match);
 * errors are compared by their whole message, built by the adapter from the fixture and the reason.
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type Article, expectedHtml as expected, loadSite } from '../../fixtures/site.ts'
import type { FragmentCache } from '../../src/fragments.ts'
import { type CacheOptions, type TieredCache, TemplateTagError, createCache, markPrivate, runInRequestScope } from '../../src/index.ts'
import { countingClient } from '../../bench/support/redis-counters.ts'
import { RedisServer, patientRedis } from '../support/redis-server.ts'
import type { TestRedis } from '../support/redis-topology.ts'

/** An engine set up with the cache tag, as a scenario uses it. */
export interface EngineUnderTest {
  /** The fragment core the tag delegates to (its hit and miss counts). */
  readonly fragments: FragmentCache
  /** Renders template `page` (a name without extension, relative to the views) with `data`. */
  render(page: string, data: object): Promise<string>
  /** The engine's `fragmentKey` for the tag named `name` in `page`. */
  fragmentKey(page: string, name: string, inputs: unknown[]): string
  /** The engine's `deleteFragment`. */
  deleteFragment(page: string, name: string, inputs: unknown[]): Promise<void>
}

/** What the contract needs to know about one engine. */
export interface EngineAdapter {
  /** Its name, in the suite names. */
  readonly engine: string
  /** Its folder of fixtures (absolute), and the extension of its template files. */
  readonly fixtures: string
  readonly extension: string
  /** The engine's own way to write a tag, as its messages quote it. */
  readonly example: string
  /** The engine on `cache`, rendering from `views` (its fixtures by default); `reload`: re-read templates each time. */
  create(cache: TieredCache, options?: { views?: string; reload?: boolean }): EngineUnderTest
  /** The template name the engine's errors give fixture `page`. */
  templateName(page: string): string
  /**
   * The whole message of a tag error at `line` of fixture `page`, for `reason`: found `when` the template is compiled
   * (a grammar error) or when the tag runs (a bad value).
   */
  tagMessage(page: string, line: number, reason: string, when: 'compile' | 'render'): string
}

type Make = (options?: CacheOptions) => Promise<TieredCache>

interface Harness {
  cache: TieredCache
  engine: EngineUnderTest
  clock: { now: number }
  /** Renders a fixture with a fresh copy of the site data, the probe, and `overrides`. */
  render(page: string, overrides?: object): Promise<string>
  /** Which fragment bodies ran since the last call, and how often (each body calls `probe(name)`). */
  ran(): Record<string, number>
}

const quiet = { warn: () => {}, error: () => {} }
const PAGE_BODIES = { sidebar: 1, article_list: 1, article_teaser: 50 }
const NESTED_BODIES = { outer: 1, inner_a: 1, inner_b: 1 }

/**
 * Counts body runs: each fragment body of the fixtures calls `probe(name)`; `ran()` tells which ran since it was last
 * called, and how often.
 */
export function bodyRuns(): { probe: (name: string) => string; ran: () => Record<string, number> } {
  let runs: Record<string, number> = {}
  return {
    probe: (name) => {
      runs[name] = (runs[name] ?? 0) + 1
      return ''
    },
    ran: () => {
      const seen = runs
      runs = {}
      return seen
    },
  }
}

/**
 * Registers and runs the contract's suites for `adapter`; `server` is a Redis of the test file's own, `cluster` (when
 * the run covers that topology) a Redis Cluster of its own: the fixtures and the cross-process test run on both.
 */
export function runEngineContract(adapter: EngineAdapter, server: RedisServer, cluster?: TestRedis): void {
  const opened: TieredCache[] = []
  let prefixes = 0
  /** A cache maker on `target` (a URL, or a function giving a new Cluster client per cache). */
  const redisCache = (target: string | (() => CacheOptions['redis']), prefix: string, extra: CacheOptions, ready = true): Make => async (options) => {
    const redis = typeof target === 'string' ? target : target()
    const cache = createCache({ prefix, redis, logger: quiet, earlyRefresh: 0, ...extra, ...options })
    opened.push(cache)
    if (ready) await cache.ready()
    return cache
  }
  const backends: [string, () => Make][] = [
    ['memory', () => async (options) => createCache({ logger: quiet, earlyRefresh: 0, ...options })],
    ['redis', () => redisCache(server.url, `${adapter.engine}-contract-${++prefixes}`, patientRedis)],
  ]
  if (cluster !== undefined) backends.push(['redis :: cluster', () => redisCache(() => cluster.cacheRedisOption(), `${adapter.engine}-contract-${++prefixes}`, patientRedis)])
  /** The shared Redis of each topology this run covers. */
  const shared: [string, string | (() => CacheOptions['redis'])][] = [['single', server.url]]
  if (cluster !== undefined) shared.push(['cluster', () => cluster.cacheRedisOption()])

  async function harness(make: Make, engineOptions?: { views?: string; reload?: boolean }, cacheOptions: CacheOptions = {}): Promise<Harness> {
    const clock = { now: 1_700_000_000_000 }
    const cache = await make({ clock: () => clock.now, ...cacheOptions })
    const engine = adapter.create(cache, engineOptions)
    const { probe, ran } = bodyRuns()
    return { cache, engine, clock, ran, render: (page, overrides = {}) => engine.render(page, { ...loadSite(), probe, ...overrides }) }
  }

  /** The TemplateTagError `render` fails with, checked whole; fails the test when it renders. */
  async function tagError(render: Promise<unknown>, page: string, line: number, reason: string, when: 'compile' | 'render'): Promise<TemplateTagError> {
    let error: unknown
    try {
      await render
    } catch (thrown) {
      error = thrown
    }
    assert.instance(error, TemplateTagError, 'the render fails with a TemplateTagError')
    const tagged = error as TemplateTagError
    assert.is(tagged.message, adapter.tagMessage(page, line, reason, when))
    assert.is(tagged.template, adapter.templateName(page))
    assert.is(tagged.line, line)
    assert.is(tagged.code, 'FRAGCACHE_TEMPLATE_TAG')
    assert.not.match(tagged.message, '__eta', 'no generated code in the message')
    return tagged
  }

  for (const [backend, maker] of backends) {
    const test = suite(`${adapter.engine} :: contract :: fixtures :: ${backend}`)

    test('page :: a miss renders every body, a hit renders none; both give the expected HTML', async () => {
      const h = await harness(maker())
      assert.is(await h.render('page'), expected('page'))
      assert.equal(h.ran(), PAGE_BODIES)
      assert.is(await h.render('page'), expected('page'))
      assert.equal(h.ran(), {}, 'no body ran on the hit')
      assert.equal(h.engine.fragments.counts().get('sidebar'), { hits: 1, misses: 1 })
      assert.equal(h.engine.fragments.counts().get('article_list'), { hits: 1, misses: 1 })
      assert.equal(h.engine.fragments.counts().get('article_teaser'), { hits: 0, misses: 50 }, 'inside a hit, nothing is even looked up')
    })

    test('page :: a changed input misses only the fragments that vary by it', async () => {
      const h = await harness(maker())
      await h.render('page')
      h.ran()
      assert.is(await h.render('page', { lang: 'fr' }), expected('page').replace('<html lang="en">', '<html lang="fr">'))
      assert.equal(h.ran(), { sidebar: 1, article_list: 1 }, 'the teasers vary by article id only: hits')
    })

    test('page :: a saved article shows once bumped: its teaser and the list around it re-render, not the other teasers', async () => {
      const h = await harness(maker())
      await h.render('page')
      h.ran()
      const articles = loadSite().articles.map((a) => (a.id === 3 ? { ...a, title: 'Pepper & Salt' } : a))
      assert.is(await h.render('page', { articles }), expected('page'), 'not bumped yet: every fragment is a hit')
      assert.equal(h.ran(), {})
      await h.cache.versions.bump('article:3')
      // The sidebar has no deps: it keeps its copy of the old title until it expires (that is what deps are for).
      const want = expected('page').replace('<h3>Salt &amp; Pepper: &lt;b&gt;bold&lt;/b&gt; caching</h3>', '<h3>Pepper &amp; Salt</h3>')
      assert.is.not(want, expected('page'))
      assert.is(await h.render('page', { articles }), want)
      assert.equal(h.ran(), { article_list: 1, article_teaser: 1 })
      assert.is(await h.render('page', { articles }), want)
      assert.equal(h.ran(), {})
    })

    test('per-user :: one fragment per user', async () => {
      const h = await harness(maker())
      const otherUser = loadSite().otherUser
      assert.is(await h.render('per-user'), expected('per-user'))
      assert.is(await h.render('per-user', { user: otherUser }), expected('per-user-linus'))
      assert.equal(h.ran(), { greeting: 2 })
      assert.is(await h.render('per-user'), expected('per-user'))
      assert.is(await h.render('per-user', { user: otherUser }), expected('per-user-linus'))
      assert.equal(h.ran(), {})
    })

    test('nested :: inner deps invalidate the outer fragment and only their own inner fragment; an unrelated bump nothing', async () => {
      const h = await harness(maker())
      assert.is(await h.render('nested'), expected('nested'))
      assert.equal(h.ran(), NESTED_BODIES)
      assert.is(await h.render('nested'), expected('nested'))
      assert.equal(h.ran(), {})
      const articles: Article[] = loadSite().articles
      articles[0]!.title = 'First & foremost'
      await h.cache.versions.bump('article:1')
      const want = expected('nested').replace('Caching notes, part 1', 'First &amp; foremost')
      assert.is(await h.render('nested', { articles }), want)
      assert.equal(h.ran(), { outer: 1, inner_a: 1 })
      await h.cache.versions.bump('article:9')
      assert.is(await h.render('nested', { articles }), want)
      assert.equal(h.ran(), {}, 'an unrelated tag invalidates nothing')
    })

    test('variation :: a shared fragment around a per-user one is kept per user: Bob never sees Alice, a guest neither', async () => {
      const h = await harness(maker())
      const visit = (user: 'alice' | 'bob' | null) =>
        runInRequestScope(() => h.render('variation', { user: user === null ? null : markPrivate('user', { id: user, name: user === 'alice' ? 'Alice' : 'Bob' }) }), {
          contexts: { user },
        })
      assert.is(await visit('alice'), '<aside>Hello Alice</aside>\n')
      assert.is(await visit('bob'), '<aside>Hello Bob</aside>\n')
      assert.is(await visit(null), '<aside>Hello guest</aside>\n')
      assert.equal(h.ran(), { sidebar: 3, greet: 3 })
      assert.is(await visit('alice'), '<aside>Hello Alice</aside>\n')
      assert.is(await visit('bob'), '<aside>Hello Bob</aside>\n')
      assert.equal(h.ran(), {}, 'a second visit of each is a hit of their own variation')
    })

    test('private reads :: with bypass, a shared fragment that reads the signed-in user is never stored', async () => {
      const h = await harness(maker(), undefined, { privateReads: 'bypass' })
      const visit = (name: string) => runInRequestScope(() => h.render('private-read', { user: markPrivate('user', { name }) }), { contexts: { user: name } })
      assert.is(await visit('Alice'), '<p>The menu</p>\nHello Alice\n')
      assert.is(await visit('Bob'), '<p>The menu</p>\nHello Bob\n')
      assert.equal(h.ran(), { menu: 2 })
    })

    test('empty :: an empty body is cached like any other', async () => {
      const h = await harness(maker())
      assert.is(await h.render('empty'), expected('empty'))
      assert.is(await h.render('empty'), expected('empty'))
      assert.equal(h.ran(), { empty: 1 })
      assert.equal(h.engine.fragments.counts().get('empty'), { hits: 1, misses: 1 })
    })

    test('escape :: stored HTML is emitted as it is: neither escaped twice nor unescaped, on a miss and on a hit', async () => {
      const h = await harness(maker())
      assert.is(await h.render('escape'), expected('escape'))
      assert.is(await h.render('escape'), expected('escape'))
      assert.equal(h.ran(), { escape: 1 })
    })

    test('TTL :: expiry follows the injected clock; null never expires', async () => {
      const h = await harness(maker())
      assert.is(await h.render('ttl'), expected('ttl'))
      assert.equal(h.ran(), { short: 1, forever: 1 })
      h.clock.now += 59_000
      assert.is(await h.render('ttl'), expected('ttl'))
      h.clock.now += 999
      assert.is(await h.render('ttl'), expected('ttl'))
      assert.equal(h.ran(), {}, 'within 60 s: hits')
      h.clock.now += 1
      assert.is(await h.render('ttl'), expected('ttl'))
      assert.equal(h.ran(), { short: 1 }, 'at 60 s the short one has expired')
      h.clock.now += 10 * 365 * 24 * 3600 * 1000
      assert.is(await h.render('ttl'), expected('ttl'))
      assert.equal(h.ran(), { short: 1 }, 'ten years on, the null TTL still hits')
    })

    test('grace= :: past its TTL, a fragment whose body fails is served stale within the grace; after it, the error', async () => {
      const h = await harness(maker())
      const failure = new Error('the upstream is down')
      let fetch = (): string => 'v1'
      const render = () => h.render('grace', { fetch: () => fetch() })
      assert.is(await render(), '<p>v1</p>\n')
      h.clock.now += 61_000
      fetch = () => {
        throw failure
      }
      assert.is(await render(), '<p>v1</p>\n', 'expired, within the grace: the body is tried again, fails, and the stale HTML is served')
      assert.equal(h.ran(), { graceful: 2 })
      h.clock.now += 30_000
      const reason = 'the body of fragment "graceful" failed: the upstream is down'
      const error = await tagError(render(), 'grace', 1, reason, 'render')
      assert.is(error.cause, failure)
      fetch = () => 'v2'
      assert.is(await render(), '<p>v2</p>\n')
    })

    test('template digest :: editing the fragment source changes its key; editing around it does not', async () => {
      const views = mkdtempSync(join(tmpdir(), `fragcache-${adapter.engine}-`))
      try {
        const h = await harness(maker(), { views, reload: true })
        const edit = (version: string) => copyFileSync(join(adapter.fixtures, 'edit', `${version}.${adapter.extension}`), join(views, `edit.${adapter.extension}`))
        edit('1-first')
        assert.is(await h.render('edit'), '<main><h1>A</h1><p>v1</p></main>\n')
        assert.is(await h.render('edit'), '<main><h1>A</h1><p>v1</p></main>\n')
        assert.equal(h.ran(), { edit: 1 })
        edit('2-text-around-edited')
        assert.is(await h.render('edit'), '<main><h1>B</h1><p>v1</p></main>\n')
        assert.equal(h.ran(), {}, 'only the text around the fragment changed: a hit')
        edit('3-fragment-edited')
        assert.is(await h.render('edit'), '<main><h1>B</h1><p>v2</p></main>\n')
        assert.equal(h.ran(), { edit: 1 }, 'the fragment source changed: a new key')
      } finally {
        rmSync(views, { recursive: true, force: true })
      }
    })

    test('dependency digests :: editing an included partial, a macro file or a layout re-renders the fragments that render it; an unrelated edit nothing', async () => {
      const views = mkdtempSync(join(tmpdir(), `fragcache-${adapter.engine}-deps-`))
      try {
        cpSync(join(adapter.fixtures, 'deps'), views, { recursive: true })
        const make = maker()
        const clock = { now: 1_700_000_000_000 }
        const cache = await make({ clock: () => clock.now })
        const { probe, ran } = bodyRuns()
        // A new engine each time, as after a deploy: on the same cache, with the templates as they are now on disk.
        const render = () => adapter.create(cache, { views }).render('page', { probe })
        const page = (versions: Record<string, number>) =>
          `<main>\n<p>teaser v${versions.teaser ?? 1}</p><div>Ada v${versions.card ?? 1}</div><section>framed v${versions.framed ?? 1}</section><p>plain</p></main>\n`
        const edit = (file: string, version: number) => {
          const path = join(views, `${file}.${adapter.extension}`)
          writeFileSync(path, readFileSync(path, 'utf8').replace(/ v\d/, ` v${version}`))
        }
        assert.is(await render(), page({}))
        assert.equal(ran(), { teaser: 1, card: 1, framed: 1, plain: 1 })
        assert.is(await render(), page({}))
        assert.equal(ran(), {}, 'nothing edited: every fragment hits')
        edit('teaser', 2)
        assert.is(await render(), page({ teaser: 2 }))
        assert.equal(ran(), { teaser: 1 }, 'the included partial changed')
        edit(adapter.engine === 'nunjucks' ? 'macros' : 'card', 2)
        assert.is(await render(), page({ teaser: 2, card: 2 }))
        assert.equal(ran(), { card: 1 }, 'the macro (Eta: the partial) it calls changed')
        edit('frame', 2)
        assert.is(await render(), page({ teaser: 2, card: 2, framed: 2 }))
        assert.equal(ran(), { framed: 1 }, 'the layout of the partial it includes changed')
        edit('unrelated', 2)
        assert.is(await render(), page({ teaser: 2, card: 2, framed: 2 }))
        assert.equal(ran(), {}, 'an unrelated template changed: every fragment hits')
      } finally {
        rmSync(views, { recursive: true, force: true })
      }
    })

    test('keys from code :: fragmentKey gives the key the tag stores under; deleteFragment re-renders that fragment only', async () => {
      const h = await harness(maker())
      const linus = loadSite().otherUser
      assert.is(await h.render('per-user'), expected('per-user'))
      assert.is(await h.render('per-user', { user: linus }), expected('per-user-linus'))
      h.ran()
      const key = h.engine.fragmentKey('per-user', 'greeting', [7])
      assert.match(key, /:frag:greeting#/)
      assert.is(await h.cache.getByKey(key), '<p>Welcome back, Ada (#7)</p>\n')
      assert.is.not(h.engine.fragmentKey('per-user', 'greeting', [linus.id]), key)
      await h.engine.deleteFragment('per-user', 'greeting', [7])
      assert.is(await h.cache.getByKey(key), undefined)
      assert.is(await h.render('per-user'), expected('per-user'))
      assert.is(await h.render('per-user', { user: linus }), expected('per-user-linus'))
      assert.equal(h.ran(), { greeting: 1 }, 'only the deleted fragment re-rendered')
      assert.throws(
        () => h.engine.fragmentKey('per-user', 'nope', []),
        (error: Error) => error.message === `fragcache: ${adapter.templateName('per-user')} has no cache tag named "nope"; its cache tags: "greeting" (line 2)`,
      )
    })

    test('force refresh :: every fragment re-renders once and the fresh HTML is stored', async () => {
      const h = await harness(maker())
      await h.render('page')
      h.ran()
      const articles: Article[] = loadSite().articles
      articles[0]!.title = 'Fresh'
      const fresh = await runInRequestScope(() => h.render('page', { articles }), { forceRefresh: true })
      assert.is(fresh, expected('page').replaceAll('>Caching notes, part 1<', '>Fresh<'))
      assert.equal(h.ran(), PAGE_BODIES)
      assert.is(await h.render('page', { articles }), fresh)
      assert.equal(h.ran(), {})
    })

    test('single-flight :: concurrent renders of a cold page run each body once', async () => {
      const h = await harness(maker())
      const pages = await Promise.all(Array.from({ length: 5 }, () => h.render('page')))
      for (const page of pages) assert.is(page, expected('page'))
      assert.equal(h.ran(), PAGE_BODIES)
    })

    test.run()
  }

  const errors = suite(`${adapter.engine} :: contract :: errors`)
  const memory = backends[0]![1]

  errors('errors :: a missing TTL or name is refused when the template is compiled', async () => {
    const h = await harness(memory())
    const reason = `the cache tag needs a TTL and a fragment name, as in ${adapter.example} (or ttl=300 "sidebar")`
    await tagError(h.render('errors/missing-name'), 'errors/missing-name', 2, reason, 'compile')
  })

  errors('errors :: an unknown keyword is refused when the template is compiled', async () => {
    const h = await harness(memory())
    const reason = 'the cache tag takes only deps=, ttl=, grace=, vary= and collection= as keywords; got expires='
    await tagError(h.render('errors/unknown-keyword'), 'errors/unknown-keyword', 1, reason, 'compile')
  })

  errors('errors :: a shared fragment that reads the signed-in user fails in development, naming the template, the line and what it read', async () => {
    const h = await harness(memory(), undefined, { privateReads: 'error' })
    const reason =
      'fragment "menu" read user.name, private to the "user" context, while it was rendered for every visitor; add vary="user" to its tag, or read the value outside the fragment'
    const render = runInRequestScope(() => h.render('private-read', { user: markPrivate('user', { name: 'Alice' }) }), { contexts: { user: 'alice' } })
    await tagError(render, 'private-read', 2, reason, 'render')
  })

  errors('errors :: a bad vary is refused when the tag runs', async () => {
    const h = await harness(memory())
    const reason = 'vary of fragment "x": a context name is 1 to 64 letters, digits, "_", "." or "-"; got "has space"'
    await tagError(h.render('errors/bad-vary'), 'errors/bad-vary', 1, reason, 'render')
  })

  errors('errors :: a keyword given twice is refused when the template is compiled', async () => {
    const h = await harness(memory())
    await tagError(h.render('errors/keyword-twice'), 'errors/keyword-twice', 1, 'deps= is given twice in the cache tag', 'compile')
  })

  errors('errors :: bad deps are refused when the tag runs', async () => {
    const h = await harness(memory())
    const reason = 'deps of fragment "x": a tag must be a non-empty string of at most 200 characters without whitespace; got "has space"'
    await tagError(h.render('errors/bad-deps'), 'errors/bad-deps', 1, reason, 'render')
  })

  errors('errors :: a TTL that is not a number is refused when the tag runs', async () => {
    const h = await harness(memory())
    const reason = 'the TTL of fragment "x" must be a number of seconds or null; got "soon"'
    await tagError(h.render('errors/ttl-value', { ttl: 'soon' }), 'errors/ttl-value', 2, reason, 'render')
    assert.is(await h.render('errors/ttl-value', { ttl: 60 }), '<ul>\n<li>x</li>\n</ul>\n')
  })

  errors('errors :: an error in the body names the fragment, the template and the line, with the error as cause; nothing is stored', async () => {
    const h = await harness(memory())
    const failure = new Error('the body failed on purpose')
    const boom = (): string => {
      throw failure
    }
    const reason = 'the body of fragment "boom" failed: the body failed on purpose'
    const error = await tagError(h.render('errors/body-error', { boom }), 'errors/body-error', 2, reason, 'render')
    assert.is(error.cause, failure)
    await tagError(h.render('errors/body-error', { boom }), 'errors/body-error', 2, reason, 'render')
    assert.is(await h.render('errors/body-error', { boom: () => 'now it works' }), '<p>\nnow it works</p>\n')
    assert.equal(h.ran(), { boom: 3 }, 'a failed body stores nothing: it runs again')
  })

  errors.run()

  const redis = suite(`${adapter.engine} :: contract :: Redis`)

  for (const [topology, target] of shared) redis(`Redis :: ${topology} :: a second process (its own L1) renders the page from Redis without running a body; a bump in one reaches the others`, async () => {
    const make = redisCache(target, `${adapter.engine}-shared-${++prefixes}`, patientRedis)
    const first = await harness(make)
    assert.is(await first.render('page'), expected('page'))
    assert.equal(first.ran(), PAGE_BODIES)
    const second = await harness(make)
    assert.is(await second.render('page'), expected('page'))
    assert.equal(second.ran(), {})
    await first.cache.versions.bump('article:3')
    const third = await harness(make)
    assert.is(await third.render('page'), expected('page'))
    assert.equal(third.ran(), { article_list: 1, article_teaser: 1 })
  })

  redis('Redis :: stopped mid-test: a warm process answers from L1, a cold one renders the bodies; nothing throws', async () => {
    const own = await RedisServer.start()
    try {
      const make = redisCache(own.url, `${adapter.engine}-outage-${++prefixes}`, { redisTimeoutMs: 50 }, false)
      const warm = await harness(make)
      await warm.cache.ready()
      assert.is(await warm.render('page'), expected('page'))
      assert.is(await warm.render('per-user'), expected('per-user'))
      warm.ran()
      await own.stop()
      assert.is(await warm.render('page'), expected('page'))
      assert.equal(warm.ran(), {}, 'L1 still answers')
      assert.is(await warm.render('per-user', { user: loadSite().otherUser }), expected('per-user-linus'))
      assert.equal(warm.ran(), { greeting: 1 })
      const cold = await harness(make)
      assert.is(await cold.render('page'), expected('page'))
      assert.equal(cold.ran(), PAGE_BODIES)
      assert.is(await cold.render('nested'), expected('nested'))
      assert.equal(cold.ran(), NESTED_BODIES)
    } finally {
      await own.stop()
    }
  })

  redis('collection= :: 50 cached items on a cold L1 and a warm Redis cost at most 2 round trips (one without it per item)', async () => {
    const prefix = `${adapter.engine}-collection-${++prefixes}`
    const warm = await harness(redisCache(server.url, prefix, patientRedis))
    const want = expected('collection')
    assert.is(await warm.render('collection'), want)
    assert.equal(warm.ran(), { collected: 50 })
    assert.is(await warm.render('collection-one-by-one'), want)
    await warm.cache.flush()
    for (const [page, most, least] of [['collection', 0, 2], ['collection-one-by-one', 50, Infinity]] as const) {
      const counting = countingClient(server.port)
      try {
        // A new process: its own L1, empty; Redis has every item.
        const cold = await harness(redisCache(server.url, prefix, { ...patientRedis, redis: counting.client }))
        counting.take()
        assert.is(await cold.render(page), want)
        assert.equal(cold.ran(), {}, 'every item is a hit')
        const { roundTrips } = counting.take()
        if (page === 'collection') assert.ok(roundTrips <= least, `${page}: ${roundTrips} round trips`)
        else assert.ok(roundTrips >= most, `${page}: ${roundTrips} round trips`)
      } finally {
        counting.client.disconnect()
      }
    }
  })

  redis.after(async () => {
    await Promise.all(opened.map((cache) => cache.close()))
  })

  redis.run()
}

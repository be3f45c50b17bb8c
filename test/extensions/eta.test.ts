import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Eta } from 'eta'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type EtaFragmentPlugin, fragmentCache } from '../../extensions/eta/index.ts'
import { FragmentCache } from '../../src/fragments.ts'
import { type CacheOptions, type TieredCache, TemplateTagError, createCache, runInRequestScope } from '../../src/index.ts'
import { RedisServer, patientRedis } from '../support/redis-server.ts'
import { expectedHtml, loadSite } from '../../fixtures/site.ts'

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url))
const VIEWS = join(FIXTURES, 'eta')
const site = loadSite()
const expected = expectedHtml
const quiet = { warn: () => {}, error: () => {} }
const server = await RedisServer.start()
const open: TieredCache[] = []
let prefixes = 0

/** An Eta on `fixtures/eta` with the plugin, a cache whose clock the test moves, and probes that count body runs. */
interface Harness {
  cache: TieredCache
  plugin: EtaFragmentPlugin
  eta: Eta
  clock: { now: number }
  /** Renders a fixture page with the site data (plus `extra`). */
  render(page: string, extra?: object): Promise<string>
  /** Renders a template string with the site data (plus `extra`). */
  renderString(template: string, extra?: object): Promise<string>
  /** Which fragment bodies ran since the last call, and how often. */
  ran(): Record<string, number>
}

type Make = (options?: CacheOptions) => Promise<TieredCache>

const makers: [string, Make][] = [
  ['memory', async (options) => createCache({ logger: quiet, earlyRefresh: 0, ...options })],
  [
    'redis',
    async (options) => {
      const cache = createCache({ prefix: `eta${++prefixes}`, redis: server.url, ...patientRedis, logger: quiet, earlyRefresh: 0, ...options })
      open.push(cache)
      await cache.ready()
      return cache
    },
  ],
]

async function harness(make: Make = makers[0]![1], options: CacheOptions = {}, views = VIEWS, etaCache = true): Promise<Harness> {
  const clock = { now: 1_700_000_000_000 }
  const cache = await make({ clock: () => clock.now, ...options })
  const plugin = fragmentCache(cache)
  const eta = new Eta({ views, cache: etaCache, plugins: [plugin] })
  let runs: Record<string, number> = {}
  const probe = (name: string): string => {
    runs[name] = (runs[name] ?? 0) + 1
    return ''
  }
  return {
    cache,
    plugin,
    eta,
    clock,
    render: (page, extra = {}) => eta.renderAsync(page, { ...site, probe, ...extra }),
    renderString: (template, extra = {}) => eta.renderStringAsync(template, { ...site, probe, ...extra }),
    ran: () => {
      const seen = runs
      runs = {}
      return seen
    },
  }
}

/** The error `run` throws or rejects with; fails the test when it succeeds. */
async function failure(run: () => unknown): Promise<Error> {
  try {
    await run()
  } catch (error) {
    assert.instance(error, Error)
    return error as Error
  }
  assert.unreachable('expected an error')
  throw new Error('unreachable')
}

async function tagError(run: () => unknown, message: string, template: string, line: number): Promise<TemplateTagError> {
  const error = await failure(run)
  assert.instance(error, TemplateTagError)
  assert.is(error.message, message)
  const tagged = error as TemplateTagError
  assert.is(tagged.template, template)
  assert.is(tagged.line, line)
  assert.is(tagged.code, 'FRAGCACHE_TEMPLATE_TAG')
  assert.not.match(error.message, '__eta', 'no generated code in the message')
  return tagged
}

const PAGE_BODIES = { sidebar: 1, article_list: 1, article_teaser: 50 }

// ---------------------------------------------------------------------------------------------------------------------
const exported = suite('fragmentCache')

exported('is a function returning an Eta plugin with the three hooks', () => {
  assert.type(fragmentCache, 'function')
  const plugin = fragmentCache(createCache({ logger: quiet }))
  assert.type(plugin.processTemplate, 'function')
  assert.type(plugin.processAST, 'function')
  assert.type(plugin.processFnString, 'function')
  assert.instance(plugin.fragments, FragmentCache)
})

exported('accepts a FragmentCache and shares it', () => {
  const fragments = new FragmentCache(createCache({ logger: quiet }))
  assert.is(fragmentCache(fragments).fragments, fragments)
})

exported('rejects anything but a cache', () => {
  assert.throws(
    () => fragmentCache({} as TieredCache),
    (error: Error) => error.message === 'fragcache: fragmentCache() needs the cache from createCache() or a FragmentCache',
  )
})

exported('templates without cache tags are left alone, sync render included', async () => {
  const { eta, plugin } = await harness()
  assert.is(eta.renderString('<p><%= it.n %></p>\n', { n: 1 }), '<p>1</p>\n')
  const fn = eta.compileToString('<p><%= it.n %></p>')
  assert.is(plugin.processFnString(fn), fn)
  assert.not.match(fn, '__fragcache')
})

exported.run()

// ---------------------------------------------------------------------------------------------------------------------
for (const [backend, make] of makers) {
  const test = suite(`Eta cache tag :: fixtures :: ${backend}`)

  test('page :: a miss renders every body; a hit renders none; both give the expected HTML', async () => {
    const h = await harness(make)
    assert.is(await h.render('page'), expected('page'))
    assert.equal(h.ran(), PAGE_BODIES)
    assert.is(await h.render('page'), expected('page'))
    assert.equal(h.ran(), {}, 'no body ran on the hit')
    assert.equal(h.plugin.fragments.counts().get('article_list'), { hits: 1, misses: 1 })
    assert.equal(h.plugin.fragments.counts().get('article_teaser'), { hits: 0, misses: 50 }, 'inside a hit, nothing is even looked up')
  })

  test('page :: a changed input misses only the fragments that vary by it', async () => {
    const h = await harness(make)
    await h.render('page')
    h.ran()
    assert.is(await h.render('page', { lang: 'fr' }), expected('page').replace('<html lang="en">', '<html lang="fr">'))
    assert.equal(h.ran(), { sidebar: 1, article_list: 1 }, 'the teasers vary by article id only: hits')
  })

  test('page :: a dep bump re-renders that teaser and the list around it, not the other teasers', async () => {
    const h = await harness(make)
    await h.render('page')
    h.ran()
    await h.cache.versions.bump('article:3')
    assert.is(await h.render('page'), expected('page'))
    assert.equal(h.ran(), { article_list: 1, article_teaser: 1 })
    assert.is(await h.render('page'), expected('page'))
    assert.equal(h.ran(), {})
  })

  test('page :: after a save and a bump the new title shows in the teaser (the sidebar has no deps: it keeps its copy)', async () => {
    const h = await harness(make)
    await h.render('page')
    const articles = site.articles.map((a) => (a.id === 3 ? { ...a, title: 'Pepper & Salt' } : a))
    assert.is(await h.render('page', { articles }), expected('page'), 'not bumped yet: every fragment is a hit')
    await h.cache.versions.bump('article:3')
    const want = expected('page').replace(
      '<h3>Salt &amp; Pepper: &lt;b&gt;bold&lt;/b&gt; caching</h3>',
      '<h3>Pepper &amp; Salt</h3>',
    )
    assert.is.not(want, expected('page'))
    assert.is(await h.render('page', { articles }), want)
  })

  test('per-user :: one fragment per user', async () => {
    const h = await harness(make)
    assert.is(await h.render('per-user'), expected('per-user'))
    assert.is(await h.render('per-user', { user: site.otherUser }), expected('per-user-linus'))
    assert.equal(h.ran(), { greeting: 2 })
    assert.is(await h.render('per-user'), expected('per-user'))
    assert.is(await h.render('per-user', { user: site.otherUser }), expected('per-user-linus'))
    assert.equal(h.ran(), {})
  })

  test('nested :: the outer fragment records the inner deps', async () => {
    const h = await harness(make)
    assert.is(await h.render('nested'), expected('nested'))
    assert.equal(h.ran(), { outer: 1, inner_a: 1, inner_b: 1 })
    assert.is(await h.render('nested'), expected('nested'))
    assert.equal(h.ran(), {})
    await h.cache.versions.bump('article:1')
    assert.is(await h.render('nested'), expected('nested'))
    assert.equal(h.ran(), { outer: 1, inner_a: 1 })
    await h.cache.versions.bump('article:9')
    assert.is(await h.render('nested'), expected('nested'))
    assert.equal(h.ran(), {}, 'an unrelated tag invalidates nothing')
  })

  test('empty :: an empty body is cached like any other', async () => {
    const h = await harness(make)
    assert.is(await h.render('empty'), expected('empty'))
    assert.is(await h.render('empty'), expected('empty'))
    assert.equal(h.ran(), { empty: 1 })
    assert.equal(h.plugin.fragments.counts().get('empty'), { hits: 1, misses: 1 })
  })

  test('escape :: stored HTML is emitted as it is: neither escaped twice nor unescaped', async () => {
    const h = await harness(make)
    assert.is(await h.render('escape'), expected('escape'))
    assert.is(await h.render('escape'), expected('escape'))
    assert.equal(h.ran(), { escape: 1 })
  })

  test('force refresh re-renders every fragment once and stores the fresh HTML', async () => {
    const h = await harness(make)
    await h.render('page')
    h.ran()
    assert.is(await runInRequestScope(() => h.render('page'), { forceRefresh: true }), expected('page'))
    assert.equal(h.ran(), PAGE_BODIES)
    assert.is(await h.render('page'), expected('page'))
    assert.equal(h.ran(), {})
  })

  test.run()
}

// ---------------------------------------------------------------------------------------------------------------------
const tag = suite('Eta cache tag :: syntax and rendering')

tag('spaces, commas and keyword inputs give the same key', async () => {
  const h = await harness()
  const body = '<% it.probe("s") %><b><%= it.user.name %></b>'
  const forms = [
    `<% cache 300 "s" it.lang it.user.id %>${body}<% endcache %>`,
    `<% cache 300, "s", it.lang, it.user.id %>${body}<% endcache %>`,
    `<% cache "s" ttl=300 it.lang, it.user.id %>${body}<% endcache %>`,
    `<%_ cache ttl = 60 "s" it.lang it.user.id deps=[] _%>${body}<%_ endcache _%>`,
  ]
  for (const form of forms) assert.is(await h.renderString(form), '<b>Ada</b>')
  assert.equal(h.ran(), { s: 1 })
})

tag('ambiguity :: "a" [x] and x `y` are an error; a comma makes two inputs, parentheses one', async () => {
  const h = await harness()
  const cases: [string, string][] = [
    ['"ab" [1]', '`"ab" [1]` reads as one input (a member access); write a comma between two inputs, or parentheses around one: ("ab" [1])'],
    ['it.user.id `v2`', '`it.user.id `v2`` reads as one input (a tagged template); write a comma between two inputs, or parentheses around one: (it.user.id `v2`)'],
    ['it.user .name [0]', '`it.user .name [0]` reads as one input (a member access); write a comma between two inputs, or parentheses around one: (it.user .name [0])'],
  ]
  for (const [inputs, reason] of cases) {
    await tagError(
      () => h.renderString(`<% cache 300 "amb" ${inputs} %>x<% endcache %>`),
      `fragcache: <% cache 300 "amb" ${inputs} %>: ${reason} (template string, line 1)`,
      'template string',
      1,
    )
  }
  const body = '<% it.probe("amb") %><%= it.n %>'
  const render = (inputs: string, n: number) => h.renderString(`<% cache 300 "amb" ${inputs} %>${body}<% endcache %>`, { n })
  assert.is(await render('"ab", [1]', 1), '1', 'two inputs')
  assert.is(await render('("ab" [1])', 2), '2', 'one input: "b"')
  assert.is(await render('"ab"[1]', 3), '2', 'no space: the same one input')
  assert.is(await render('"b"', 4), '2', 'the same key again')
  assert.is(await render('"ab" ([1])', 5), '1', 'a ( after a space starts an input: the same as "ab", [1]')
  assert.is(await render('it.lang, `v2`', 6), '6')
  assert.is(await render('5 -1', 7), '7', 'an operator joins as in JavaScript: 4')
  assert.is(await render('4', 8), '7', 'the same key as 5 -1')
  assert.is(await render('5, -1', 9), '9', 'two inputs')
  assert.equal(h.ran(), { amb: 5 })
})

tag('a ( after a space starts a new input; a call is written without the space', async () => {
  const h = await harness()
  const body = '<% it.probe("call") %><%= it.n %>'
  const render = (inputs: string, n: number) => h.renderString(`<% cache 300 "call" ${inputs} %>${body}<% endcache %>`, { n, upper: (s: string) => s.toUpperCase() })
  assert.is(await render('(it.lang) (it.user.id)', 1), '1')
  assert.is(await render('it.lang, it.user.id', 2), '1', 'the same two inputs')
  assert.is(await render('it.upper(it.lang)', 3), '3', 'one call: "EN"')
  assert.is(await render('"EN"', 4), '3', 'the same key')
  assert.equal(h.ran(), { call: 2 })
})

tag('TTL :: expires by the injected clock; null never expires', async () => {
  const h = await harness()
  const template = '<% cache 60 "ttl" %><% it.probe("ttl") %>a<% endcache %><% cache null "forever" %><% it.probe("forever") %>b<% endcache %>'
  assert.is(await h.renderString(template), 'ab')
  h.clock.now += 59_999
  assert.is(await h.renderString(template), 'ab')
  assert.equal(h.ran(), { ttl: 1, forever: 1 })
  h.clock.now += 1
  assert.is(await h.renderString(template), 'ab')
  assert.equal(h.ran(), { ttl: 1 })
  h.clock.now += 10 * 365 * 24 * 3600 * 1000
  assert.is(await h.renderString(template), 'ab')
  assert.equal(h.ran(), { ttl: 1 })
})

tag('deps= takes an expression; bumping the tag re-renders', async () => {
  const h = await harness()
  const template = '<% cache ttl=300 "user_card" it.user.id deps=["user:" + it.user.id, "site"] %><% it.probe("card") %><%= it.user.name %><% endcache %>'
  assert.is(await h.renderString(template), 'Ada')
  assert.is(await h.renderString(template, { user: { id: 7, name: 'Ada L.' } }), 'Ada')
  await h.cache.versions.bump('site')
  assert.is(await h.renderString(template, { user: { id: 7, name: 'Ada L.' } }), 'Ada L.')
  assert.equal(h.ran(), { card: 2 })
})

tag('template digest :: editing the fragment source changes its key; editing around it does not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fragcache-eta-'))
  try {
    const h = await harness(undefined, {}, dir, false)
    const write = (before: string, body: string) =>
      writeFileSync(join(dir, 'edit.eta'), `${before}<% cache 300 "edit" %><% it.probe("edit") %>${body}<% endcache %>\n`)
    write('<h1>A</h1>', '<p>v1</p>')
    assert.is(await h.render('edit'), '<h1>A</h1><p>v1</p>')
    write('<h1>B</h1>', '<p>v1</p>')
    assert.is(await h.render('edit'), '<h1>B</h1><p>v1</p>')
    assert.equal(h.ran(), { edit: 1 }, 'only the text around the fragment changed: a hit')
    write('<h1>B</h1>', '<p>v2</p>')
    assert.is(await h.render('edit'), '<h1>B</h1><p>v2</p>')
    assert.equal(h.ran(), { edit: 1 }, 'the fragment source changed: a new key')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

tag('includeAsync inside a body; an included template with cache tags; a layout around them', async () => {
  const h = await harness()
  const template =
    '<% layout("layout", { title: "T" }) %><% cache 300 "head" it.user.id %><% it.probe("head") %><%~ await includeAsync("header") %><% endcache %>' +
    '<%~ await includeAsync("per-user") %>'
  const want = (name: string) =>
    `<!doctype html>\n<html lang="en">\n<head><title>T</title></head>\n<body>\n<header>Hello, ${name} (#7)</header>\n${expected('per-user')}</body>\n</html>\n`
  assert.is(await h.renderString(template), want('Ada'))
  assert.is(await h.renderString(template, { user: { id: 7, name: 'Renamed' } }), want('Ada'), 'same id: both fragments are hits')
  assert.equal(h.ran(), { head: 1, greeting: 1 })
})

tag('single-flight :: concurrent misses of one key run the body once', async () => {
  const h = await harness()
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const template = '<% cache 300 "slow" %><% it.probe("slow") %><% await it.gate %>slow<% endcache %>'
  const renders = [1, 2, 3].map(() => h.renderString(template, { gate }))
  await new Promise((resolve) => setImmediate(resolve))
  release()
  assert.equal(await Promise.all(renders), ['slow', 'slow', 'slow'])
  assert.equal(h.ran(), { slow: 1 })
})

tag('the output around a fragment stays in order when the body starts before the tag returns (force refresh)', async () => {
  const h = await harness()
  const template = '<p>before</p><% cache 300 "sync" %>a<% await null %>b<% endcache %><p>after</p>'
  assert.is(await h.renderString(template), '<p>before</p>ab<p>after</p>')
  assert.is(await runInRequestScope(() => h.renderString(template), { forceRefresh: true }), '<p>before</p>ab<p>after</p>')
  assert.is(await h.renderString(template), '<p>before</p>ab<p>after</p>')
})

tag('a falsy output ("0", "") is a hit', async () => {
  const h = await harness()
  const template = '[<% cache 300 "zero" %><% it.probe("zero") %><%= it.n %><% endcache %>]'
  assert.is(await h.renderString(template, { n: 0 }), '[0]')
  assert.is(await h.renderString(template, { n: 1 }), '[0]')
  assert.equal(h.ran(), { zero: 1 })
})

tag('an error in the body names the fragment, the template and the line, and nothing is stored', async () => {
  const h = await harness()
  const template = 'a\n<% cache 300 "broken" %><% it.probe("broken") %><%= it.missing.name %><% endcache %>'
  const error = await tagError(
    () => h.renderString(template),
    'fragcache: the body of fragment "broken" failed: Cannot read properties of undefined (reading \'name\') (template string, line 2)',
    'template string',
    2,
  )
  assert.instance(error.cause, TypeError)
  assert.is(await h.renderString(template, { missing: { name: 'now there' } }), 'a\nnow there')
  assert.equal(h.ran(), { broken: 2 })
})

tag.run()

// ---------------------------------------------------------------------------------------------------------------------
const errors = suite('Eta cache tag :: errors')

errors('sync render() of a template with a cache tag', async () => {
  const h = await harness()
  await tagError(
    () => h.eta.render('page', site),
    'fragcache: <% cache 300 "sidebar" it.lang %> needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %> (page.eta, line 4)',
    'page.eta',
    4,
  )
  await tagError(
    () => h.eta.renderString('x\n<% cache 1 "s" %>y<% endcache %>', {}),
    'fragcache: <% cache 1 "s" %> needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %> (template string, line 2)',
    'template string',
    2,
  )
})

errors('include() (sync) of a template with a cache tag, from an async render', async () => {
  const h = await harness()
  await tagError(
    () => h.renderString('<%~ include("per-user") %>'),
    'fragcache: <% cache 300 "greeting" it.user.id %> needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %> (per-user.eta, line 2)',
    'per-user.eta',
    2,
  )
})

errors('a cache tag inside a non-async callback', async () => {
  const h = await harness()
  await tagError(
    () => h.renderString('<ul>\n<% it.articles.slice(0, 2).forEach((a) => { %>\n<% cache 60 "li" a.id %><li><%= a.id %></li><% endcache %>\n<% }) %>\n</ul>'),
    'fragcache: <% cache 60 "li" a.id %> is inside a function that is not async (a forEach or map callback?), so it cannot wait for the cache: use a for…of loop, or an async function whose result is awaited (template string, line 3)',
    'template string',
    3,
  )
  assert.is(
    await h.renderString('<ul>\n<% for (const a of it.articles.slice(0, 2)) { %>\n<% cache 60 "li" a.id %><li><%= a.id %></li><% endcache %>\n<% } %>\n</ul>'),
    '<ul>\n<li>1</li><li>2</li></ul>',
  )
})

errors('unclosed cache tag; stray endcache', async () => {
  const h = await harness()
  await tagError(
    () => h.renderString('<main>\n<% cache 300 "a" %>\n<% cache 300 "b" %>x<% endcache %>\n</main>'),
    'fragcache: <% cache 300 "a" %> is never closed: add <% endcache %> after its body (template string, line 2)',
    'template string',
    2,
  )
  await tagError(
    () => h.renderString('<main>\n<% cache 300 "a" %>x<% endcache %>\n\n<%_ endcache _%>\n</main>'),
    'fragcache: <% endcache %> has no open <% cache … %> before it (template string, line 4)',
    'template string',
    4,
  )
})

errors('bad TTL: a literal at compile time, a value at render time', async () => {
  const h = await harness()
  await tagError(
    () => h.renderString('\n<% cache "300" "a" %>x<% endcache %>'),
    'fragcache: <% cache "300" "a" %>: the TTL must be a number of seconds or null; got "300" (template string, line 2)',
    'template string',
    2,
  )
  await tagError(
    () => h.renderString('<% cache it.ttl "a" %>x<% endcache %>', { ttl: '300' }),
    'fragcache: the TTL of fragment "a" must be a number of seconds or null; got "300" (template string, line 1)',
    'template string',
    1,
  )
})

errors('missing name, bad deps, unreadable or awaited inputs, a bare name', async () => {
  const h = await harness()
  await tagError(
    () => h.renderString('<% cache 300 %>x<% endcache %>'),
    'fragcache: <% cache 300 %>: the cache tag needs a TTL and a fragment name, as in <% cache 300 "sidebar" it.lang %> (or ttl=300 "sidebar") (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('<% cache 300 "" %>x<% endcache %>'),
    'fragcache: the cache tag needs a fragment name; got "" (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('<% cache 300 "d" deps=["two words"] %>x<% endcache %>'),
    'fragcache: deps of fragment "d": a tag must be a non-empty string of at most 200 characters without whitespace; got "two words" (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('<% cache 300 "p" it.a + %>x<% endcache %>'),
    'fragcache: <% cache 300 "p" it.a + %>: cannot read the input at `it.a +`: Unexpected token (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('<% cache 300 "p" await it.a %>x<% endcache %>'),
    'fragcache: <% cache 300 "p" await it.a %>: await cannot be used in the inputs of a cache tag; compute the value in a <% %> tag before it (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('<% cache 300 sidebar it.lang %>x<% endcache %>'),
    'fragcache: cannot evaluate <% cache 300 sidebar it.lang %>: sidebar is not defined; the name and inputs are JavaScript expressions, so quote a literal name ("sidebar") (template string, line 1)',
    'template string',
    1,
  )
})

errors('a let declared inside a fragment and used after endcache', async () => {
  const h = await harness()
  const error = await tagError(
    () => h.renderString('<% cache 300 "total" %>\n<% let total = it.articles.length %><%= total %>\n<% endcache %>\n<p><%= total %></p>'),
    'fragcache: total is not defined outside the fragment that declares it: <% cache 300 "total" %> turns its body into a function of its own, so a variable declared inside it is not visible after endcache (and is not set at all on a cache hit); declare it before the cache tag instead (template string, line 1)',
    'template string',
    1,
  )
  assert.instance(error.cause, ReferenceError)
  assert.is(await h.renderString('<% let total = it.articles.length %><% cache 300 "total2" %><%= total %><% endcache %>\n<p><%= total %></p>'), '50<p>50</p>')
})

errors('a body that would make a hit silently wrong: an assignment to an outer variable, a layout() call', async () => {
  const h = await harness()
  const template = '<% let count = 0 %>\n<% cache 300 "list" %>\n<% for (const a of it.articles) { count++ %><%= a.id %>,<% } %>\n<% endcache %>\n<p><%= count %> articles</p>'
  await tagError(
    () => h.renderString(template),
    'fragcache: <% cache 300 "list" %> assigns to count, and count is declared outside the fragment: on a cache hit the body does not run and count would keep its old value; compute it before the cache tag (template string, line 2)',
    'template string',
    2,
  )
  await tagError(
    () => h.renderString('<% cache 300 "x" %><%= (it.n += 1) %><% endcache %>'),
    'fragcache: <% cache 300 "x" %> assigns to it.n, and it is declared outside the fragment: on a cache hit the body does not run and it.n would keep its old value; compute it before the cache tag (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('\n\n<% cache 300 "x" %><% layout("layout") %>x<% endcache %>'),
    'fragcache: <% cache 300 "x" %> calls layout(): on a cache hit the body does not run and the layout would be skipped; call it outside the cache tag (template string, line 3)',
    'template string',
    3,
  )
  const local = '<% cache 300 "local" %><% let n = 0 %><% for (let i = 0; i < 3; i++) { n += i } %><%= n %><% const row = {}; row.x = 1; [1].forEach((x) => { x++ }) %><% endcache %>'
  assert.is(await h.renderString(local), '3', 'assignments to its own variables are fine')
})

errors('an unrelated ReferenceError passes unchanged', async () => {
  const h = await harness()
  const error = await failure(() => h.renderString('<% cache 300 "r" %><% let x = 1 %><% endcache %><%= nope %>'))
  assert.instance(error, ReferenceError)
  assert.is(error.message, 'nope is not defined')
})

errors.run()

// ---------------------------------------------------------------------------------------------------------------------
const redis = suite('Eta cache tag :: Redis')

redis('a second process (its own L1) gets the fragments from Redis without running a body', async () => {
  const prefix = `eta${++prefixes}`
  const make: Make = async (options) => {
    const cache = createCache({ prefix, redis: server.url, ...patientRedis, logger: quiet, earlyRefresh: 0, ...options })
    open.push(cache)
    await cache.ready()
    return cache
  }
  const first = await harness(make)
  assert.is(await first.render('page'), expected('page'))
  assert.equal(first.ran(), PAGE_BODIES)
  const second = await harness(make)
  assert.is(await second.render('page'), expected('page'))
  assert.equal(second.ran(), {})
})

redis('Redis stopped mid-test: a warm process serves from L1, a cold one renders the bodies', async () => {
  const own = await RedisServer.start()
  try {
    const prefix = `eta${++prefixes}`
    const make: Make = async (options) => {
      const cache = createCache({ prefix, redis: own.url, logger: quiet, earlyRefresh: 0, redisTimeoutMs: 50, ...options })
      open.push(cache)
      return cache
    }
    const warm = await harness(make)
    await warm.cache.ready()
    assert.is(await warm.render('page'), expected('page'))
    warm.ran()
    await own.stop()
    assert.is(await warm.render('page'), expected('page'))
    assert.equal(warm.ran(), {}, 'L1 still answers')
    const cold = await harness(make)
    assert.is(await cold.render('page'), expected('page'))
    assert.equal(cold.ran(), PAGE_BODIES)
    assert.is(await cold.render('nested'), expected('nested'))
    assert.equal(cold.ran(), { outer: 1, inner_a: 1, inner_b: 1 })
  } finally {
    await own.stop()
  }
})

redis.after(async () => {
  await Promise.all(open.map((cache) => cache.close()))
  await server.stop()
})

redis.run()

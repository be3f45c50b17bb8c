import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Eta, EtaParseError, EtaRuntimeError } from 'eta'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type EtaFragmentPlugin, deleteFragment, fragmentCache, fragmentDependencies, fragmentKey } from '../../extensions/eta/index.ts'
import { FragmentCache } from '../../src/fragments.ts'
import { type TieredCache, TemplateTagError, UnsupportedEngineError, createCache, runInRequestScope } from '../../src/index.ts'
import { RedisServer } from '../support/redis-server.ts'
import { TOPOLOGIES, startRedis } from '../support/redis-topology.ts'
import { expectedHtml, loadSite } from '../../fixtures/site.ts'
import { type EngineAdapter, bodyRuns, runEngineContract } from './contract.ts'

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url))
const VIEWS = join(FIXTURES, 'eta')
const site = loadSite()
const expected = expectedHtml
const quiet = { warn: () => {}, error: () => {} }
const server = await RedisServer.start()
// The contract also runs on a Cluster of the file's own, when the run covers that topology.
const cluster = TOPOLOGIES.includes('cluster') ? await startRedis('cluster') : undefined

/** The tag as Eta's messages quote it: the code between the delimiters of the cache tag on `line`, trimmed. */
function tagText(file: string, line: number): string {
  const text = readFileSync(file, 'utf8').split('\n')[line - 1] ?? ''
  const tag = /<%[-_]?\s*(cache\b.*?)\s*[-_]?%>/.exec(text)
  assert.ok(tag, `a cache tag on line ${line} of ${file}`)
  return `<% ${tag[1] as string} %>`
}

const adapter: EngineAdapter = {
  engine: 'eta',
  fixtures: VIEWS,
  extension: 'eta',
  example: '<% cache 300 "sidebar" it.lang %>',
  create(cache, { views = VIEWS, reload = false } = {}) {
    const plugin = fragmentCache(cache)
    const eta = new Eta({ views, cache: !reload, plugins: [plugin] })
    return {
      fragments: plugin.fragments,
      render: (page, data) => eta.renderAsync(page, data),
      fragmentKey: (page, name, inputs) => fragmentKey(eta, { template: page, name }, inputs),
      deleteFragment: (page, name, inputs) => deleteFragment(eta, { template: page, name }, inputs),
    }
  },
  templateName: (page) => `${page}.eta`,
  tagMessage(page, line, reason, when) {
    if (when === 'render') return `fragcache: ${reason} (${page}.eta, line ${line})`
    const file = join(VIEWS, `${page}.eta`)
    return `fragcache: ${tagText(file, line)}: ${reason} (${page}.eta, line ${line})${excerptAt(readFileSync(file, 'utf8'), line)}`
  },
}

runEngineContract(adapter, server, cluster)

/** An Eta on `fixtures/eta` with the plugin, and probes that count body runs. */
interface Harness {
  cache: TieredCache
  plugin: EtaFragmentPlugin
  eta: Eta
  /** Renders a template string with the site data (plus `extra`). */
  renderString(template: string, extra?: object): Promise<string>
  /** Which fragment bodies ran since the last call, and how often. */
  ran(): Record<string, number>
}

function harness(): Harness {
  const cache = createCache({ logger: quiet, earlyRefresh: 0 })
  const plugin = fragmentCache(cache)
  const eta = new Eta({ views: VIEWS, cache: true, plugins: [plugin] })
  const { probe, ran } = bodyRuns()
  return { cache, plugin, eta, ran, renderString: (template, extra = {}) => eta.renderStringAsync(template, { ...site, probe, ...extra }) }
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

/**
 * The TemplateTagError `run` fails with, checked whole: `message`, then, for an error found when the template is
 * compiled, the excerpt of `source` at the tag on `line` (the line, and a caret under the tag's code).
 */
async function tagError(run: () => unknown, message: string, template: string, line: number, source?: string): Promise<TemplateTagError> {
  const error = await failure(run)
  assert.instance(error, TemplateTagError)
  assert.is(error.message, source === undefined ? message : `${message}${excerptAt(source, line)}`)
  const tagged = error as TemplateTagError
  assert.is(tagged.template, template)
  assert.is(tagged.line, line)
  assert.is(tagged.code, 'FRAGCACHE_TEMPLATE_TAG')
  assert.not.match(error.message, '__eta', 'no generated code in the message')
  return tagged
}

/** The excerpt that ends an error found at compile time at the first tag on `line` of `source`: under its code. */
function excerptAt(source: string, line: number): string {
  const text = source.split('\n')[line - 1] ?? ''
  const tag = /<%[-_]?\s*/.exec(text)
  assert.ok(tag, `a tag on line ${line}`)
  return `\n\n  ${text}\n  ${' '.repeat(tag.index + tag[0].length)}^`
}

const view = (name: string) => readFileSync(join(VIEWS, name), 'utf8')

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
  const { eta, plugin } = harness()
  assert.is(eta.renderString('<p><%= it.n %></p>\n', { n: 1 }), '<p>1</p>\n')
  const fn = eta.compileToString('<p><%= it.n %></p>')
  assert.is(plugin.processFnString(fn), fn)
  assert.not.match(fn, '__fragcache')
})

exported.run()

// ---------------------------------------------------------------------------------------------------------------------
const tag = suite('Eta cache tag :: syntax and rendering')

tag('spaces, commas and keyword inputs give the same key', async () => {
  const h = harness()
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
  const h = harness()
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
      `<% cache 300 "amb" ${inputs} %>x<% endcache %>`,
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
  const h = harness()
  const body = '<% it.probe("call") %><%= it.n %>'
  const render = (inputs: string, n: number) => h.renderString(`<% cache 300 "call" ${inputs} %>${body}<% endcache %>`, { n, upper: (s: string) => s.toUpperCase() })
  assert.is(await render('(it.lang) (it.user.id)', 1), '1')
  assert.is(await render('it.lang, it.user.id', 2), '1', 'the same two inputs')
  assert.is(await render('it.upper(it.lang)', 3), '3', 'one call: "EN"')
  assert.is(await render('"EN"', 4), '3', 'the same key')
  assert.equal(h.ran(), { call: 2 })
})

tag('deps= takes an expression; bumping the tag re-renders', async () => {
  const h = harness()
  const template = '<% cache ttl=300 "user_card" it.user.id deps=["user:" + it.user.id, "site"] %><% it.probe("card") %><%= it.user.name %><% endcache %>'
  assert.is(await h.renderString(template), 'Ada')
  assert.is(await h.renderString(template, { user: { id: 7, name: 'Ada L.' } }), 'Ada')
  await h.cache.versions.bump('site')
  assert.is(await h.renderString(template, { user: { id: 7, name: 'Ada L.' } }), 'Ada L.')
  assert.equal(h.ran(), { card: 2 })
})

tag('includeAsync inside a body; an included template with cache tags; a layout around them', async () => {
  const h = harness()
  const template =
    '<% layout("layout", { title: "T" }) %><% cache 300 "head" it.user.id %><% it.probe("head") %><%~ await includeAsync("header") %><% endcache %>' +
    '<%~ await includeAsync("per-user") %>'
  const want = (name: string) =>
    `<!doctype html>\n<html lang="en">\n<head><title>T</title></head>\n<body>\n<header>Hello, ${name} (#7)</header>\n${expected('per-user')}</body>\n</html>\n`
  assert.is(await h.renderString(template), want('Ada'))
  assert.is(await h.renderString(template, { user: { id: 7, name: 'Renamed' } }), want('Ada'), 'same id: both fragments are hits')
  assert.equal(h.ran(), { head: 1, greeting: 1 })
})

tag('single-flight :: a body that awaits runs once for concurrent misses of its key', async () => {
  const h = harness()
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
  const h = harness()
  const template = '<p>before</p><% cache 300 "sync" %>a<% await null %>b<% endcache %><p>after</p>'
  assert.is(await h.renderString(template), '<p>before</p>ab<p>after</p>')
  assert.is(await runInRequestScope(() => h.renderString(template), { forceRefresh: true }), '<p>before</p>ab<p>after</p>')
  assert.is(await h.renderString(template), '<p>before</p>ab<p>after</p>')
})

tag('a falsy output ("0", "") is a hit', async () => {
  const h = harness()
  const template = '[<% cache 300 "zero" %><% it.probe("zero") %><%= it.n %><% endcache %>]'
  assert.is(await h.renderString(template, { n: 0 }), '[0]')
  assert.is(await h.renderString(template, { n: 1 }), '[0]')
  assert.equal(h.ran(), { zero: 1 })
})

tag('fragmentDependencies :: every tag, what its digest covers, the names it cannot follow, and cycles', () => {
  const eta = new Eta({ views: join(VIEWS, 'deps'), plugins: [fragmentCache(createCache({ logger: quiet }))] })
  const listing = (page: string) => fragmentDependencies(eta, page).replace(/digest \S{16}/g, 'digest …')
  assert.is(
    listing('page'),
    `page.eta
  line 2  <% cache 300 "teaser" %>  digest …
    includeAsync("teaser")
  line 3  <% cache 300 "card" %>  digest …
    includeAsync("card")
  line 4  <% cache 300 "framed" %>  digest …
    includeAsync("framed")
      layout("frame")
  line 5  <% cache 300 "plain" %>  digest …
`,
  )
  assert.is(
    listing('dynamic'),
    `dynamic.eta
  line 1  <% cache 300 "loop" %>  digest …
    includeAsync(…)  (dynamic name: not followed)
    includeAsync("cycle-a")
      includeAsync("cycle-b")
        includeAsync("cycle-a")  (cycle)
`,
  )
})

tag.run()

// ---------------------------------------------------------------------------------------------------------------------
const errors = suite('Eta cache tag :: errors')

errors('sync render() of a template with a cache tag', async () => {
  const h = harness()
  await tagError(
    () => h.eta.render('page', site),
    'fragcache: <% cache 300 "sidebar" it.lang %> needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %> (page.eta, line 4)',
    'page.eta',
    4,
    view('page.eta'),
  )
  await tagError(
    () => h.eta.renderString('x\n<% cache 1 "s" %>y<% endcache %>', {}),
    'fragcache: <% cache 1 "s" %> needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %> (template string, line 2)',
    'template string',
    2,
    'x\n<% cache 1 "s" %>y<% endcache %>',
  )
})

errors('an Eta that compiles templates in a shape the plugin does not know: UnsupportedEngineError, nothing rendered', async () => {
  const cache = createCache({ logger: quiet })
  // Stands in for a future Eta: a plugin before ours changes how the compiled function calls its layout.
  const future = { processFnString: (fn: string) => fn.replaceAll('__eta.res = await includeAsync (', '__eta.res = await (includeAsync)(') }
  const eta = new Eta({ views: VIEWS, plugins: [future, fragmentCache(cache)] })
  const error = await failure(() => eta.renderStringAsync('<% cache 60 "s" %>body<% endcache %>', {}))
  assert.instance(error, UnsupportedEngineError)
  assert.is((error as UnsupportedEngineError).code, 'FRAGCACHE_UNSUPPORTED_ENGINE')
  assert.is(error.message, 'fragcache: this version of Eta compiles templates in a way the fragcache plugin does not know (it supports Eta 4)')
  assert.is(cache.stats().l1.entries, 0)
  await cache.close()
})

errors('include() (sync) of a template with a cache tag, from an async render', async () => {
  const h = harness()
  await tagError(
    () => h.renderString('<%~ include("per-user") %>'),
    'fragcache: <% cache 300 "greeting" it.user.id %> needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %> (per-user.eta, line 2)',
    'per-user.eta',
    2,
    view('per-user.eta'),
  )
})

errors('a cache tag inside a non-async callback', async () => {
  const h = harness()
  await tagError(
    () => h.renderString('<ul>\n<% it.articles.slice(0, 2).forEach((a) => { %>\n<% cache 60 "li" a.id %><li><%= a.id %></li><% endcache %>\n<% }) %>\n</ul>'),
    'fragcache: <% cache 60 "li" a.id %> is inside a function that is not async (a forEach or map callback?), so it cannot wait for the cache: use a for…of loop, or an async function whose result is awaited (template string, line 3)',
    'template string',
    3,
    '<ul>\n<% it.articles.slice(0, 2).forEach((a) => { %>\n<% cache 60 "li" a.id %><li><%= a.id %></li><% endcache %>\n<% }) %>\n</ul>',
  )
  assert.is(
    await h.renderString('<ul>\n<% for (const a of it.articles.slice(0, 2)) { %>\n<% cache 60 "li" a.id %><li><%= a.id %></li><% endcache %>\n<% } %>\n</ul>'),
    '<ul>\n<li>1</li><li>2</li></ul>',
  )
})

errors('unclosed cache tag; stray endcache', async () => {
  const h = harness()
  await tagError(
    () => h.renderString('<main>\n<% cache 300 "a" %>\n<% cache 300 "b" %>x<% endcache %>\n</main>'),
    'fragcache: <% cache 300 "a" %> is never closed: add <% endcache %> after its body (template string, line 2)',
    'template string',
    2,
    '<main>\n<% cache 300 "a" %>\n<% cache 300 "b" %>x<% endcache %>\n</main>',
  )
  await tagError(
    () => h.renderString('<main>\n<% cache 300 "a" %>x<% endcache %>\n\n<%_ endcache _%>\n</main>'),
    'fragcache: <% endcache %> has no open <% cache … %> before it (template string, line 4)',
    'template string',
    4,
    '<main>\n<% cache 300 "a" %>x<% endcache %>\n\n<%_ endcache _%>\n</main>',
  )
})

errors('collection= outside a for…of loop', async () => {
  const h = harness()
  await tagError(
    () => h.eta.renderAsync('errors/collection-outside-loop', site),
    'fragcache: <% cache 60 "x" collection=it.articles %>: collection= needs the cache tag inside the for…of loop over that collection (errors/collection-outside-loop.eta, line 2)',
    'errors/collection-outside-loop.eta',
    2,
    view('errors/collection-outside-loop.eta'),
  )
})

errors('bad TTL: a literal that cannot be one is refused at compile time', async () => {
  const h = harness()
  await tagError(
    () => h.renderString('\n<% cache "300" "a" %>x<% endcache %>'),
    'fragcache: <% cache "300" "a" %>: the TTL must be a number of seconds or null; got "300" (template string, line 2)',
    'template string',
    2,
    '\n<% cache "300" "a" %>x<% endcache %>',
  )
})

errors('an empty name, unreadable or awaited inputs, a bare name', async () => {
  const h = harness()
  await tagError(
    () => h.renderString('<% cache 300 "" %>x<% endcache %>'),
    'fragcache: the cache tag needs a fragment name; got "" (template string, line 1)',
    'template string',
    1,
  )
  await tagError(
    () => h.renderString('<% cache 300 "p" it.a + %>x<% endcache %>'),
    'fragcache: <% cache 300 "p" it.a + %>: cannot read the input at `it.a +`: Unexpected token (template string, line 1)',
    'template string',
    1,
    '<% cache 300 "p" it.a + %>x<% endcache %>',
  )
  await tagError(
    () => h.renderString('<% cache 300 "p" await it.a %>x<% endcache %>'),
    'fragcache: <% cache 300 "p" await it.a %>: await cannot be used in the inputs of a cache tag; compute the value in a <% %> tag before it (template string, line 1)',
    'template string',
    1,
    '<% cache 300 "p" await it.a %>x<% endcache %>',
  )
  await tagError(
    () => h.renderString('<% cache 300 sidebar it.lang %>x<% endcache %>'),
    'fragcache: cannot evaluate <% cache 300 sidebar it.lang %>: sidebar is not defined; the name and inputs are JavaScript expressions, so quote a literal name ("sidebar") (template string, line 1)',
    'template string',
    1,
  )
})

errors('a let declared inside a fragment and used after endcache', async () => {
  const h = harness()
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
  const h = harness()
  const template = '<% let count = 0 %>\n<% cache 300 "list" %>\n<% for (const a of it.articles) { count++ %><%= a.id %>,<% } %>\n<% endcache %>\n<p><%= count %> articles</p>'
  await tagError(
    () => h.renderString(template),
    'fragcache: <% cache 300 "list" %> assigns to count, and count is declared outside the fragment: on a cache hit the body does not run and count would keep its old value; compute it before the cache tag (template string, line 2)',
    'template string',
    2,
    template,
  )
  await tagError(
    () => h.renderString('<% cache 300 "x" %><%= (it.n += 1) %><% endcache %>'),
    'fragcache: <% cache 300 "x" %> assigns to it.n, and it is declared outside the fragment: on a cache hit the body does not run and it.n would keep its old value; compute it before the cache tag (template string, line 1)',
    'template string',
    1,
    '<% cache 300 "x" %><%= (it.n += 1) %><% endcache %>',
  )
  await tagError(
    () => h.renderString('\n\n<% cache 300 "x" %><% layout("layout") %>x<% endcache %>'),
    'fragcache: <% cache 300 "x" %> calls layout(): on a cache hit the body does not run and the layout would be skipped; call it outside the cache tag (template string, line 3)',
    'template string',
    3,
    '\n\n<% cache 300 "x" %><% layout("layout") %>x<% endcache %>',
  )
  const local = '<% cache 300 "local" %><% let n = 0 %><% for (let i = 0; i < 3; i++) { n += i } %><%= n %><% const row = {}; row.x = 1; [1].forEach((x) => { x++ }) %><% endcache %>'
  assert.is(await h.renderString(local), '3', 'assignments to its own variables are fine')
})

errors('an error outside the fragments is located as Eta\'s debug mode does it: template, line, the source around, the error as cause', async () => {
  const h = harness()
  const error = await failure(() => h.renderString('<% cache 300 "r" %><% let x = 1 %><% endcache %>\n<p>\n<%= nope %>\n</p>'))
  assert.instance(error, EtaRuntimeError)
  assert.is(error.name, 'ReferenceError')
  assert.is(error.message, 'template string:3\n    1| <% cache 300 "r" %><% let x = 1 %><% endcache %>\n    2| <p>\n >> 3| <%= nope %>\n    4| </p>\n\nnope is not defined')
  assert.instance(error.cause, ReferenceError)
  // An error in a template without cache tags (header.eta) is located where the page includes it.
  const included = await failure(() => h.eta.renderAsync('page', { ...site, probe: () => '', user: null }))
  assert.instance(included, EtaRuntimeError)
  assert.instance(included.cause, TypeError)
  assert.is(
    included.message,
    `page.eta:2\n    1| <% layout('layout', { title: 'Articles' }) %>\n >> 2| <%~ await includeAsync('header') %>\n    3| <main>\n    4| <% cache 300 "sidebar" it.lang %>\n\n${(included.cause as Error).message}`,
  )
  // … and one in its layout, where the page calls layout().
  const noLang = {
    toString: () => {
      throw new TypeError('no lang')
    },
  }
  const layout = await failure(() => h.renderString('<p>\n<% layout("layout") %>\n<% cache 1 "x" %>x<% endcache %>', { lang: noLang }))
  assert.instance(layout, EtaRuntimeError)
  assert.is(layout.message, 'template string:2\n    1| <p>\n >> 2| <% layout("layout") %>\n    3| <% cache 1 "x" %>x<% endcache %>\n\nno lang')
})

errors('a syntax error in a template with a cache tag names the template, line and column; never the compiled code', async () => {
  const h = harness()
  const error = await failure(() => h.renderString('<% cache 300 "s" %>x<% endcache %>\n<p>\n<% if (it.a)) { %>y<% } %>\n</p>'))
  assert.instance(error, EtaParseError)
  assert.is(error.message, "Bad template syntax: Unexpected token ')' (template string, line 3)\n\n  <% if (it.a)) { %>y<% } %>\n              ^")
  const open = await failure(() => h.renderString('<% cache 300 "s" %><% if (it.a) { %>x<% endcache %>'))
  assert.is(
    open.message,
    "Bad template syntax: Unexpected token 'finally' (a block opened inside a fragment must be closed before its endcache) (template string, line 1)\n\n" +
      '  <% cache 300 "s" %><% if (it.a) { %>x<% endcache %>\n                                          ^',
  )
  const unclosed = await failure(() => h.renderString('<% cache 300 "s" %>x<% endcache %>\n<%= "abc %>'))
  assert.instance(unclosed, EtaParseError)
  assert.is(unclosed.message, 'Bad template syntax: unclosed string (template string, line 2)\n\n  <%= "abc %>\n      ^')
  for (const e of [error, open, unclosed]) assert.not.match(e.message, /__fragcache|__eta|const /)
})

errors('an assignment in the inputs is refused with the line; no global is written', async () => {
  const h = harness()
  for (const [inputs, written] of [['(using = "unknown")', 'using = "unknown"'], ['deps=[leaked = 1]', 'leaked = 1'], ['it.n++', 'it.n++']]) {
    const source = `<p>\n<% cache 60 "backend" ${inputs} %>x<% endcache %>`
    await tagError(
      () => h.renderString(source),
      `fragcache: <% cache 60 "backend" ${inputs} %>: \`${written}\` assigns, and the inputs of a cache tag are only read: compare with ===, or compute the value in a <% %> tag before it (template string, line 2)`,
      'template string',
      2,
      source,
    )
  }
  assert.is((globalThis as Record<string, unknown>).using, undefined)
  assert.is((globalThis as Record<string, unknown>).leaked, undefined)
})

errors.after(async () => {
  await server.stop()
  await cluster?.stop()
})

errors.run()

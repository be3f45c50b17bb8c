import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import nunjucks from 'nunjucks'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { FragmentCacheExtension, deleteFragment, fragmentDependencies, fragmentKey } from '../../extensions/nunjucks/index.ts'
import { FragmentCache } from '../../src/fragments.ts'
import { type CacheOptions, type TieredCache, TemplateTagError, createCache } from '../../src/index.ts'
import { RedisServer } from '../support/redis-server.ts'
import { TOPOLOGIES, startRedis } from '../support/redis-topology.ts'
import { type SiteData as Site, expectedHtml, loadSite } from '../../fixtures/site.ts'
import { type EngineAdapter, runEngineContract } from './contract.ts'

// ─── helpers ──────────────────────────────────────────────────────────────────────────────────────────────

const FIXTURES = resolve('fixtures/nunjucks')
const SITE = loadSite()
const quiet = { warn: () => {}, error: () => {} }
const server = await RedisServer.start()
// The contract also runs on a Cluster of the file's own, when the run covers that topology.
const cluster = TOPOLOGIES.includes('cluster') ? await startRedis('cluster') : undefined

const expected = expectedHtml

function fixturePath(name: string): string {
  return resolve(FIXTURES, name)
}

/** Counts `probe("name")` calls: a body that did not run did not call its probe. */
class Probes {
  readonly calls = new Map<string, number>()
  readonly fn = (name: string): string => {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1)
    return ''
  }
  count(name: string): number {
    return this.calls.get(name) ?? 0
  }
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.calls].sort(([a], [b]) => a.localeCompare(b)))
  }
}

interface Harness {
  cache: TieredCache
  extension: FragmentCacheExtension
  env: nunjucks.Environment
  probes: Probes
  /** A fresh copy of the fixture data, with the probe. */
  data(overrides?: Partial<Site>): Record<string, unknown>
  render(name: string, context?: Record<string, unknown>): Promise<string>
  renderString(source: string, context?: Record<string, unknown>): Promise<string>
}

function harness(options: CacheOptions = {}, loader?: nunjucks.ILoader): Harness {
  const cache = createCache({ logger: quiet, earlyRefresh: 0, ...options })
  const extension = new FragmentCacheExtension(cache)
  const env = new nunjucks.Environment(loader ?? new nunjucks.FileSystemLoader(FIXTURES), { autoescape: true })
  env.addExtension('FragmentCache', extension)
  const probes = new Probes()
  const h: Harness = {
    cache,
    extension,
    env,
    probes,
    data: (overrides = {}) => ({ ...structuredClone(SITE), ...overrides, probe: probes.fn }),
    render: (name, context = h.data()) =>
      new Promise((ok, fail) => env.render(name, context, (err, html) => (err ? fail(err) : ok(html as string)))),
    renderString: (source, context = h.data()) =>
      new Promise((ok, fail) => env.renderString(source, context, (err, html) => (err ? fail(err) : ok(html as string)))),
  }
  return h
}

/** The error a render fails with; fails the test when it renders. */
async function renderFailure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    assert.instance(error, Error)
    return error as Error
  }
  assert.unreachable('the render should have failed')
  throw new Error('unreachable')
}

/** The error a sync render throws; fails the test when it renders. */
function syncRenderFailure(render: () => unknown): Error {
  try {
    render()
  } catch (error) {
    assert.instance(error, Error)
    return error as Error
  }
  assert.unreachable('the render should have failed')
  throw new Error('unreachable')
}

/** The message of an error the cache tag raised: a TemplateTagError, whatever Nunjucks did with it on the way. */
function tagMessage(error: Error): string {
  assert.instance(error, TemplateTagError, `a TemplateTagError: ${error.message}`)
  return error.message
}

const renderError = async (promise: Promise<unknown>): Promise<string> => tagMessage(await renderFailure(promise))
const syncRenderError = (render: () => unknown): string => tagMessage(syncRenderFailure(render))

/** The excerpt that ends a tag error at the tag on `line` of `file`: the line, and a caret under its `cache`. */
function excerpt(file: string, line: number): string {
  const text = readFileSync(file, 'utf8').split('\n')[line - 1] ?? ''
  return `\n\n  ${text}\n  ${' '.repeat(cacheColumn(file, line) - 1)}^`
}

/** The 1-based column Nunjucks gives a tag error: that of the word `cache` in the tag on `line`. */
function cacheColumn(file: string, line: number): number {
  const text = readFileSync(file, 'utf8').split('\n')[line - 1] ?? ''
  const tag = /\{%-?\s*cache\b/.exec(text)
  assert.ok(tag, `a cache tag on line ${line} of ${file}`)
  return tag.index + tag[0].length - 'cache'.length + 1
}

const adapter: EngineAdapter = {
  engine: 'nunjucks',
  fixtures: FIXTURES,
  extension: 'njk',
  example: '{% cache 300 "sidebar" lang %}',
  create(cache, { views = FIXTURES, reload = false } = {}) {
    const extension = new FragmentCacheExtension(cache)
    const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(views, { noCache: reload }), { autoescape: true })
    env.addExtension('FragmentCache', extension)
    return {
      fragments: extension.fragments,
      render: (page, data) => new Promise((ok, fail) => env.render(`${page}.njk`, data, (err, html) => (err ? fail(err) : ok(html as string)))),
      fragmentKey: (page, name, inputs) => fragmentKey(env, { template: `${page}.njk`, name }, inputs),
      deleteFragment: (page, name, inputs) => deleteFragment(env, { template: `${page}.njk`, name }, inputs),
    }
  },
  templateName: (page) => fixturePath(`${page}.njk`),
  tagMessage(page, line, reason) {
    const file = fixturePath(`${page}.njk`)
    return `(${file}) [Line ${line}, Column ${cacheColumn(file, line)}]\n  fragcache: ${reason} (${file}, line ${line})${excerpt(file, line)}`
  },
}

runEngineContract(adapter, server, cluster)

// ─── rendering and hits ───────────────────────────────────────────────────────────────────────────────────

const render = suite('nunjucks :: render')

render('exports FragmentCacheExtension', () => {
  assert.type(FragmentCacheExtension, 'function')
  const h = harness()
  assert.equal(h.extension.tags, ['cache'])
  assert.instance(h.extension.fragments, FragmentCache)
  const shared = new FragmentCache(h.cache)
  assert.is(new FragmentCacheExtension(shared).fragments, shared)
})

render('escape :: with autoescape off, the stored HTML is emitted as it is too', async () => {
  const h = harness()
  const raw = new nunjucks.Environment(new nunjucks.FileSystemLoader(FIXTURES), { autoescape: false })
  raw.addExtension('FragmentCache', h.extension)
  const source = '{% cache 300 "raw" %}{{ t }}{% endcache %}|{% cache 300 "raw" %}{{ t }}{% endcache %}'
  const renderRaw = promisify(raw.renderString.bind(raw)) as (src: string, context: object) => Promise<string>
  const html = await renderRaw(source, { t: '<b>&</b>' })
  assert.is(html, '<b>&</b>|<b>&</b>')
})

render('callbacks, promisify, renderString, and sync render() from memory', async () => {
  const h = harness()
  const viaCallback = await new Promise<string>((ok, fail) =>
    h.env.render('per-user.njk', h.data(), (err, html) => (err ? fail(err) : ok(html as string))),
  )
  assert.is(viaCallback, expected('per-user'))
  const renderAsync = promisify(h.env.render.bind(h.env)) as (name: string, context: object) => Promise<string>
  assert.is(await renderAsync('per-user.njk', h.data()), expected('per-user'))
  // sync render(): every fragment is in L1 now, so it answers synchronously
  assert.is(h.env.render('per-user.njk', h.data()), expected('per-user'))
  const source = readFileSync(fixturePath('per-user.njk'), 'utf8')
  // same source, so same digest and key: renderString hits what the file rendered
  assert.is(await h.renderString(source), expected('per-user'))
  assert.is(h.env.renderString(source, h.data()), expected('per-user'))
  assert.is(h.probes.count('greeting'), 1)
})

render('syntax :: bare, string and expression names; inputs by spaces or commas; deps= and ttl= keywords', async () => {
  const h = harness()
  const context = { lang: 'en', id: 4, sidebar: 'not this', probe: h.probes.fn }
  const html = await h.renderString(
    [
      '{% cache 300 sidebar lang id %}A{{ probe("a") }}{% endcache %}',
      '{% cache 300 "sidebar" lang, id %}B{{ probe("b") }}{% endcache %}',
      '{% cache 300 "side" ~ "bar" lang,id %}C{{ probe("c") }}{% endcache %}',
      '{% cache null "footer" %}D{{ probe("d") }}{% endcache %}',
      '{% cache "footer2" ttl=null deps=["site"] %}E{{ probe("e") }}{% endcache %}',
    ].join('|'),
    context,
  )
  assert.is(html, 'A|B|C|D|E')
  assert.equal(Object.keys(Object.fromEntries(h.extension.fragments.counts())).sort(), ['footer', 'footer2', 'sidebar'])
  assert.equal(h.extension.fragments.counts().get('sidebar'), { hits: 0, misses: 3 }) // three bodies: three digests
  await h.cache.versions.bump('site')
  assert.is(await h.renderString('{% cache "footer2" ttl=null deps=["site"] %}E{{ probe("e") }}{% endcache %}', context), 'E')
  assert.is(h.probes.count('e'), 2)
})

render('async filters, if and for inside and around fragments', async () => {
  const h = harness()
  h.env.addFilter('slowUpper', (value: string, done: (err: null, out: string) => void) => setImmediate(() => done(null, value.toUpperCase())), true)
  const source = [
    '{% for a in articles.slice(0, 2) %}{% if a.id > 1 %}',
    '{% cache 300 "loud" a.id %}{{ probe("loud") }}[{{ a.title | slowUpper }}]{% endcache %}',
    '{% else %}({{ a.title | slowUpper }}){% endif %}{% endfor %}',
  ].join('')
  assert.is(await h.renderString(source), '(CACHING NOTES, PART 1)[TEMPLATES NOTES, PART 2]')
  assert.is(await h.renderString(source), '(CACHING NOTES, PART 1)[TEMPLATES NOTES, PART 2]')
  assert.is(h.probes.count('loud'), 1)
})

render('fragmentDependencies :: every tag, what its digest covers, the names it cannot follow, and cycles', () => {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(resolve(FIXTURES, 'deps')))
  env.addExtension('FragmentCache', new FragmentCacheExtension(createCache({ logger: quiet })))
  const listing = (page: string) => fragmentDependencies(env, page).replace(/digest \S{16}/g, 'digest …')
  const dir = resolve(FIXTURES, 'deps')
  assert.is(
    listing('page.njk'),
    `${dir}/page.njk
  line 3  {% cache 300 "teaser" %}  digest …
    {% include "teaser.njk" %}
  line 4  {% cache 300 "card" %}  digest …
    {% import "macros.njk" as m -%}
  line 5  {% cache 300 "framed" %}  digest …
    {% include "framed.njk" %}
      {% extends "frame.njk" %}
  line 6  {% cache 300 "plain" %}  digest …
`,
  )
  assert.is(
    listing('dynamic.njk'),
    `${dir}/dynamic.njk
  line 1  {% cache 300 "loop" %}  digest …
    {% include partial %}  (dynamic name: not followed)
    {% include "cycle-a.njk" %}
      {% include "cycle-b.njk" %}
        {% include "cycle-a.njk" %}  (cycle)
`,
  )
})

render('dependency digests :: a macro defined in the same template, and super() in a block, count', async () => {
  const h = harness()
  const source = (macro: string) =>
    `{% macro card(n) %}<b>{{ n }}${macro}</b>{% endmacro %}{% cache 300 "local" %}{{ probe("local") }}{{ card(1) }}{% endcache %}`
  assert.is(await h.renderString(source('')), '<b>1</b>')
  assert.is(await h.renderString(`<p>around</p>${source('')}`), '<p>around</p><b>1</b>')
  assert.is(h.probes.count('local'), 1, 'the text around changed: a hit')
  assert.is(await h.renderString(source('!')), '<b>1!</b>')
  assert.is(h.probes.count('local'), 2, 'the macro it calls changed: a new key')
})

render.run()

// ─── Nunjucks' async limits ───────────────────────────────────────────────────────────────────────────────

const limits = suite('nunjucks :: async limits')

const DROPPED = (page: string) =>
  `(${fixturePath(page)})\n (${fixturePath('limits/teaser.njk')}) [Line 1, Column 4]\n  ` +
  `fragcache: fragment "teaser" was not in memory, and Nunjucks finished rendering "${fixturePath(page)}" without waiting for it, ` +
  'so its output would have been lost. This happens when the cache tag is reached through an {% include %} or a {% block %} ' +
  'placed inside a plain {% if %} or {% for %}: use {% ifAsync %} / {% asyncEach %} there, or put a cache tag around the include ' +
  `(${fixturePath('limits/teaser.njk')}, line 1)${excerpt(fixturePath('limits/teaser.njk'), 1)}`

limits('macro :: a miss fails the render naming the template, line and construct', async () => {
  const h = harness()
  const page = fixturePath('limits/in-macro.njk')
  const message =
    `(${page}) [Line 2, Column 4]\n  fragcache: fragment "card" is inside a {% macro %}, where Nunjucks cannot wait for it, ` +
    `and it is not in memory; put the cache tag around the macro call instead (${page}, line 2)${excerpt(page, 2)}`
  assert.is(await renderError(h.render('limits/in-macro.njk')), message)
  assert.is(syncRenderError(() => h.env.render('limits/in-macro.njk', h.data())), message)
})

limits('macro :: answers from L1 when the fragment is there', async () => {
  const h = harness()
  // the same body source, name and inputs outside a macro fill L1 under the same key
  await h.renderString('{% cache 300 "card" title %}<div>{{ probe("card") }}{{ title }}</div>{% endcache %}', {
    title: 'Ada & Linus',
    probe: h.probes.fn,
  })
  assert.is(await h.render('limits/in-macro.njk'), '<section><div>Ada &amp; Linus</div></section>\n')
  assert.is(h.env.render('limits/in-macro.njk', h.data()), '<section><div>Ada &amp; Linus</div></section>\n')
  assert.is(h.probes.count('card'), 1)
})

limits('set block :: a miss fails; an L1 hit works', async () => {
  const h = harness()
  const page = fixturePath('limits/in-set.njk')
  assert.is(
    await renderError(h.render('limits/in-set.njk')),
    `(${page}) [Line 2, Column 17]\n  fragcache: fragment "box" is inside a {% set %}…{% endset %} block, where Nunjucks cannot wait for it, ` +
      `and it is not in memory; put the cache tag around the place the variable is output instead (${page}, line 2)${excerpt(page, 2)}`,
  )
  await h.renderString('{% cache 300 "box" %}<div>{{ probe("box") }}boxed</div>{% endcache %}')
  assert.is(await h.render('limits/in-set.njk'), '<section><div>boxed</div></section>\n')
})

limits('filter block :: refused at compile time (Nunjucks cannot compile it)', async () => {
  const h = harness()
  const page = fixturePath('limits/in-filter.njk')
  assert.is(
    await renderError(h.render('limits/in-filter.njk')),
    `(${page}) [Line 1, Column 25]\n  fragcache: the {% cache %} tag cannot be used inside a {% filter %}…{% endfilter %} block: ` +
      `Nunjucks cannot compile an asynchronous tag there; put the cache tag around the block instead (${page}, line 1)${excerpt(page, 1)}`,
  )
})

limits('include in a plain for / if :: a miss fails the render, and nothing wrong is stored', async () => {
  const h = harness()
  assert.is(await renderError(h.render('limits/include-in-for.njk')), DROPPED('limits/include-in-for.njk'))
  assert.is(await renderError(h.render('limits/include-in-for.njk')), DROPPED('limits/include-in-for.njk'))
  assert.is(await renderError(h.render('limits/include-in-if.njk')), DROPPED('limits/include-in-if.njk'))
  const three =
    '<div>\n<p>Caching notes, part 1</p>\n<p>Templates notes, part 2</p>\n<p>Salt &amp; Pepper: &lt;b&gt;bold&lt;/b&gt; caching</p>\n</div>\n'
  // {% asyncEach %} waits: it renders (and fills L1) …
  assert.is(await h.render('limits/include-in-asynceach.njk'), three)
  // … and then the plain loop and if answer from L1, each teaser with its own article
  assert.is(await h.render('limits/include-in-for.njk'), three)
  assert.is(await h.render('limits/include-in-if.njk'), '<div>\n<p>Caching notes, part 1</p>\n</div>\n')
  assert.is(h.probes.count('teaser'), 3)
})

limits('include at the top level :: waits and works', async () => {
  const h = harness()
  assert.is(await h.render('limits/include-top.njk'), '<div>\n<p>Caching notes, part 1</p>\n</div>\n')
  assert.is(await h.render('limits/include-top.njk'), '<div>\n<p>Caching notes, part 1</p>\n</div>\n')
  assert.is(h.probes.count('teaser'), 1)
})

limits('sync render() :: a miss fails naming the fragment; a warm page renders', async () => {
  const h = harness()
  const page = fixturePath('per-user.njk')
  assert.is(
    syncRenderError(() => h.env.render('per-user.njk', h.data())),
    `(${page}) [Line 2, Column 4]\n  fragcache: fragment "greeting" is not in memory, and render() without a callback cannot wait for it; ` +
      `render with a callback (or a promise) (${page}, line 2)${excerpt(page, 2)}`,
  )
  await h.render('per-user.njk')
  assert.is(h.env.render('per-user.njk', h.data()), expected('per-user'))
})

limits.run()

// ─── errors ───────────────────────────────────────────────────────────────────────────────────────────────

const errors = suite('nunjucks :: errors')

async function errorOf(name: string): Promise<string> {
  return renderError(harness().render(`errors/${name}.njk`))
}

const at = (name: string, line: number, column: number) => `(${fixturePath(`errors/${name}.njk`)}) [Line ${line}, Column ${column}]\n  `
/** The end of a tag error's message: the template and line, then the excerpt with a caret under the tag's `cache`. */
const where = (name: string, line: number) => {
  const file = fixturePath(`errors/${name}.njk`)
  return `(${file}, line ${line})${excerpt(file, line)}`
}

errors('collection= outside a loop', async () => {
  assert.is(
    await errorOf('collection-outside-loop'),
    `${at('collection-outside-loop', 2, 4)}fragcache: collection= needs the cache tag inside the {% for %} loop over that collection ${where('collection-outside-loop', 2)}`,
  )
})

errors('bad TTL (render time)', async () => {
  assert.is(
    await errorOf('bad-ttl'),
    `${at('bad-ttl', 1, 7)}fragcache: the TTL of fragment "x" must be a number of seconds or null; got "soon" ${where('bad-ttl', 1)}`,
  )
})

errors('missing endcache, at the end of the template and before an enclosing end tag', async () => {
  assert.is(
    await errorOf('missing-endcache'),
    `${at('missing-endcache', 2, 4)}fragcache: the {% cache %} tag has no {% endcache %} before the end of the template ${where('missing-endcache', 2)}`,
  )
  assert.is(
    await errorOf('missing-endcache-in-block'),
    `${at('missing-endcache-in-block', 2, 4)}fragcache: the {% cache %} tag has no {% endcache %}: found {% endblock %} first ${where('missing-endcache-in-block', 2)}`,
  )
})

errors('an input after a keyword (Nunjucks only: Eta takes inputs anywhere)', async () => {
  assert.is(
    await errorOf('input-after-keyword'),
    `${at('input-after-keyword', 1, 4)}fragcache: the inputs of the cache tag must come before deps=, ttl=, grace=, vary= and collection= ${where('input-after-keyword', 1)}`,
  )
})

errors('an error after an asynchronously answered fragment ends the render (a Nunjucks error: not the tag\'s)', async () => {
  const h = harness()
  assert.is(
    (await renderFailure(h.render('errors/after-fragment.njk'))).message,
    `${at('after-fragment', 1, 4)}Error: Unable to call \`boom\`, which is undefined or falsey (after fragment "fine", ${fixturePath('errors/after-fragment.njk')}, line 1)`,
  )
  // answered synchronously from L1, Nunjucks reports the error at its own line
  assert.is(
    (await renderFailure(h.render('errors/after-fragment.njk'))).message,
    `${at('after-fragment', 1, 7)}Error: Unable to call \`boom\`, which is undefined or falsey`,
  )
})

errors('a tag in an included template is reported under the page and the template it is in', async () => {
  const h = harness()
  const message = await renderError(h.renderString('<p>{% include "errors/bad-ttl.njk" %}</p>', h.data()))
  assert.is(
    message,
    `(unknown path)\n ${at('bad-ttl', 1, 7)}fragcache: the TTL of fragment "x" must be a number of seconds or null; got "soon" ${where('bad-ttl', 1)}`,
  )
})

errors('errors Nunjucks raises without a line, in a template with a cache tag, get one, a column and an excerpt', async () => {
  const h = harness()
  const cases: [string, string][] = [
    [
      '<p>\n{% cache 60 "x" %}{{ "abc }}{% endcache %}\n</p>',
      '(unknown path) [Line 2, Column 19]\n  expected variable end: the template ends before this {{ is closed\n\n  {% cache 60 "x" %}{{ "abc }}{% endcache %}\n                    ^',
    ],
    ['<p>#}\n{% cache 60 "x" %}x{% endcache %}', '(unknown path) [Line 1, Column 4]\n  unexpected end of comment\n\n  <p>#}\n     ^'],
    [
      '{% cache 60 "x" %}x{% endcache %}\n{% if a %}\n<p>',
      '(unknown path) [Line 2, Column 1]\n  parseIf: expected elif, else, or endif, got end of file: the template ends before this {% if %} is closed by {% endif %}\n\n  {% if a %}\n  ^',
    ],
    [
      '{% cache 60 "x" %}{{ ab"c }}{% endcache %}',
      '(unknown path) [Line 1, Column 22]\n  "ab\\"c" is not a name Nunjucks can compile (it compiles to invalid JavaScript)\n\n  {% cache 60 "x" %}{{ ab"c }}{% endcache %}\n                       ^',
    ],
    [
      '{% cache 60 "x" %}x{% endcache %}\n<p>{% include "nope.njk" %}</p>',
      '(unknown path) [Line 2, Column 4]\n  template not found: nope.njk\n\n  <p>{% include "nope.njk" %}</p>\n     ^',
    ],
  ]
  for (const [source, message] of cases) assert.is((await renderFailure(h.renderString(source))).message, message)
})

errors.after(async () => {
  await server.stop()
  await cluster?.stop()
})

errors.run()


/**
 * `npm run bench:fragments`, part 1: the Nunjucks {% cache %} tag.
 *
 * 1. A realistic page (layout, header include, a 50-article loop; about 18 KB) rendered without fragments and
 *    with its expensive parts in fragments, every fragment an L1 hit: renders/s and the ratio (target ≥ 10×).
 * 2. The cost of one L1 fragment hit: a template of 100 cache tags against the same template with each
 *    fragment's HTML as literal text (target ≤ 2 µs per tag).
 *
 * 3. A list of 50 cached teasers on a cold L1 with a warm Redis, one by one and with `collection=`
 *    (bench/fragments-collection.ts): Redis round trips and time.
 *
 * Medians over several rounds, in one run; memory only (no Redis) but for part 3.
 */
import nunjucks from 'nunjucks'
import { FragmentCacheExtension } from '../extensions/nunjucks/index.ts'
import { loadSite } from '../fixtures/site.ts'
import { createCache } from '../src/index.ts'
import { coldListTable } from './fragments-collection.ts'

const ROUNDS = 7
const PAGE_RENDERS = 200
const HIT_RENDERS = 2000
const TAGS = 100

const site = loadSite()
// Two short paragraphs of markdown-ish text per article, so the page is about 18 KB.
const articles = site.articles.map((a) => ({ ...a, body: `${a.body}\n\nIt says *why* and **how**, with _care_ & <code>.` }))

/**
 * The expensive part, and honest about it: per article a markdown-ish formatter (escape, paragraphs, emphasis,
 * strong, underline), a reading-time estimate and a slug; what a real teaser partial does.
 */
function markdownish(source: string): nunjucks.runtime.SafeString {
  const escaped = source.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  const html = escaped
    .split(/\n{2,}/)
    .map((p) => `<p>${p.replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>').replace(/\*(.+?)\*/g, '<em>$1</em>').replace(/_(.+?)_/g, '<u>$1</u>')}</p>`)
    .join('')
  return new nunjucks.runtime.SafeString(html)
}
function readingTime(source: string): string {
  const words = source.split(/\s+/).filter(Boolean).length
  return `${Math.max(1, Math.round(words / 200))} min (${words} words)`
}
function slug(title: string): string {
  return title.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
}

const TEASER = `<article id="{{ article.id | slug }}-{{ article.id }}"><h3><a href="/a/{{ article.title | slug }}">{{ article.title }}</a></h3><p class="meta">by {{ article.author }} in {{ article.category }}, {{ article.body | readingTime }}</p>{{ article.body | markdownish }}</article>
`
const SIDEBAR = `<aside><h2>Popular</h2><ul>{% for article in articles.slice(0, 5) %}<li><a href="/a/{{ article.title | slug }}">{{ article.title }}</a> {{ article.body | readingTime }}</li>{% endfor %}</ul></aside>
`

const TEMPLATES: Record<string, string> = {
  'layout.njk': `<!doctype html>
<html lang="{{ lang }}"><head><title>{% block title %}{% endblock %}</title></head>
<body>
{% include "header.njk" %}
{% block content %}{% endblock %}
<footer>fragcache bench</footer>
</body></html>
`,
  'header.njk': `<header>Hello, {{ user.name }}</header>`,
  'uncached.njk': `{% extends "layout.njk" %}{% block title %}Articles{% endblock %}{% block content %}<main>
${SIDEBAR}<section>
{% for article in articles %}${TEASER}{% endfor %}</section></main>{% endblock %}`,
  'cached.njk': `{% extends "layout.njk" %}{% block title %}Articles{% endblock %}{% block content %}<main>
{% cache 300 sidebar lang %}${SIDEBAR}{% endcache %}{% cache 300 article_list lang %}<section>
{% for article in articles %}{% cache 3600 article_teaser article.id deps=["article:" ~ article.id] %}${TEASER}{% endcache %}{% endfor %}</section>{% endcache %}</main>{% endblock %}`,
  'tags.njk': Array.from({ length: TAGS }, (_, i) => `{% cache 300 "f${i}" %}<p class="f">Fragment ${i} &amp; friends</p>{% endcache %}\n`).join(''),
  'literal.njk': Array.from({ length: TAGS }, (_, i) => `<p class="f">Fragment ${i} &amp; friends</p>\n`).join(''),
}

class MemoryLoader extends nunjucks.Loader implements nunjucks.ILoader {
  getSource(name: string): nunjucks.LoaderSource {
    const src = TEMPLATES[name]
    if (src === undefined) throw new Error(`no template ${name}`)
    return { src, path: name, noCache: false }
  }
}

const cache = createCache({ earlyRefresh: 0, logger: { warn: () => {}, error: () => {} } })
const env = new nunjucks.Environment(new MemoryLoader(), { autoescape: true })
env.addExtension('FragmentCache', new FragmentCacheExtension(cache))
env.addFilter('markdownish', markdownish)
env.addFilter('readingTime', readingTime)
env.addFilter('slug', (v: unknown) => slug(String(v)))
const context = { lang: site.lang, user: site.user, articles }

/**
 * The floor Nunjucks itself sets: a `{% cache %}` tag whose extension only renders its body and calls back
 * synchronously (no cache at all). What fragcache adds to a hit is the difference to this.
 */
const bare = new nunjucks.Environment(new MemoryLoader(), { autoescape: true })
bare.addExtension('FragmentCache', {
  tags: ['cache'],
  parse(parser: any, nodes: any, lexer: any) {
    const tag = parser.nextToken()
    while (parser.peekToken().type !== lexer.TOKEN_BLOCK_END) parser.nextToken()
    parser.advanceAfterBlockEnd(tag.value)
    const body = parser.parseUntilBlocks('endcache')
    parser.advanceAfterBlockEnd()
    return new nodes.CallExtensionAsync(this, 'run', new nodes.NodeList(tag.lineno, tag.colno, []), [body])
  },
  run(_context: unknown, body: () => string, callback: (err: null, html: unknown) => void) {
    callback(null, new nunjucks.runtime.SafeString(body()))
  },
} as nunjucks.Extension)

function render(name: string, on = env): Promise<string> {
  return new Promise((ok, fail) => on.render(name, context, (err, html) => (err ? fail(err) : ok(html as string))))
}

/** Renders `name` `count` times one after another; returns the elapsed milliseconds. */
async function time(name: string, count: number, on = env): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < count; i++) await render(name, on)
  return performance.now() - started
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

// Warm up: compile every template, fill L1, let the JIT settle; and check both pages say the same thing.
const uncachedHtml = await render('uncached.njk')
const cachedHtml = await render('cached.njk')
if (uncachedHtml !== cachedHtml) throw new Error('the cached page differs from the uncached one')
const literalHtml = await render('literal.njk')
if ((await render('tags.njk')) !== literalHtml || (await render('tags.njk', bare)) !== literalHtml) throw new Error('tags.njk and literal.njk differ')
for (const name of ['uncached.njk', 'cached.njk', 'tags.njk', 'literal.njk']) await time(name, 50)
await time('tags.njk', 50, bare)

const pageUncached: number[] = []
const pageCached: number[] = []
const tags: number[] = []
const literal: number[] = []
const bareTags: number[] = []
for (let round = 0; round < ROUNDS; round++) {
  pageUncached.push(await time('uncached.njk', PAGE_RENDERS))
  pageCached.push(await time('cached.njk', PAGE_RENDERS))
  tags.push(await time('tags.njk', HIT_RENDERS))
  literal.push(await time('literal.njk', HIT_RENDERS))
  bareTags.push(await time('tags.njk', HIT_RENDERS, bare))
}

const perSecond = (ms: number, count: number) => (count / ms) * 1000
const uncachedRate = perSecond(median(pageUncached), PAGE_RENDERS)
const cachedRate = perSecond(median(pageCached), PAGE_RENDERS)
const tagsUs = (median(tags) * 1000) / HIT_RENDERS
const literalUs = (median(literal) * 1000) / HIT_RENDERS
const bareUs = (median(bareTags) * 1000) / HIT_RENDERS
const perHitUs = (tagsUs - literalUs) / TAGS
const perBareUs = (bareUs - literalUs) / TAGS

console.log(`fragcache :: Nunjucks {% cache %} — node ${process.version}, nunjucks 3.2.4, memory only (L1), medians of ${ROUNDS} rounds`)
console.log(
  `page: ${(Buffer.byteLength(uncachedHtml) / 1024).toFixed(1)} KB, layout + header include + ${articles.length}-article loop; ` +
    'the expensive part per article: a markdown-ish formatter, reading time and slugs (filters)',
)
console.table([
  { case: 'page, uncached', 'renders/s': Math.round(uncachedRate), 'ms/render': (1000 / uncachedRate).toFixed(3) },
  { case: 'page, fragments (all L1 hits)', 'renders/s': Math.round(cachedRate), 'ms/render': (1000 / cachedRate).toFixed(3) },
])
console.log(`speed-up with fragments: ${(cachedRate / uncachedRate).toFixed(1)}× (target ≥ 10×)`)
console.table([
  { case: `${TAGS} cache tags (L1 hits)`, 'µs/render': tagsUs.toFixed(1) },
  { case: `${TAGS} literal copies of the HTML`, 'µs/render': literalUs.toFixed(1) },
  { case: `${TAGS} no-op async tags (Nunjucks' own floor)`, 'µs/render': bareUs.toFixed(1) },
])
console.log(`one L1 fragment hit costs ${perHitUs.toFixed(2)} µs more than literal text (target ≤ 2 µs)`)
console.log(
  `  of which Nunjucks' async-extension machinery alone: ${perBareUs.toFixed(2)} µs; fragcache (key, lookup, tracking): ${(perHitUs - perBareUs).toFixed(2)} µs`,
)
await cache.close()
console.log(`\n${await coldListTable('nunjucks')}`)

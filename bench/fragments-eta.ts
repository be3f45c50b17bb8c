/**
 * `npm run bench:fragments`, part 2 — the Eta `<% cache %>` tag, in memory (L1), one process:
 *
 * (a) The page of part 1 (bench/fragments-nunjucks.ts), its markup ported to Eta: a layout with an included
 *     header, a sidebar of 5 articles and a loop of 50 article teasers, about 62 KB. Rendered with `renderAsync`
 *     uncached, with the sidebar and the outer list as fragments (the teasers nested inside: 2 lookups a page
 *     when all hit), and with only the 50 teasers as fragments. Every fragment is an L1 hit while timed.
 *     Two teaser bodies: "formatted" does part 1's per-article work (a Markdown-ish formatter, a reading time,
 *     slugs); "plain" prints the same values computed beforehand, so it renders the same bytes with only
 *     interpolations, which Eta does very fast: that is where a fragment costs more than it saves.
 * (b) The cost of one L1 fragment hit: a template of 100 cache tags, all hits, vs the same HTML as literal text;
 *     the difference divided by 100 (part 1 measures the same two templates).
 *
 * (c) A list of 50 cached teasers on a cold L1 with a warm Redis, one by one and with `collection=`
 *     (bench/fragments-collection.ts): Redis round trips and time.
 *
 * Medians over interleaved rounds after a warm-up round. Environment: BENCH_ROUNDS (default 9).
 */
import { readFileSync } from 'node:fs'
import { Eta } from 'eta'
import { fragmentCache } from '../extensions/eta/index.ts'
import { loadSite } from '../fixtures/site.ts'
import { createCache } from '../src/index.ts'
import { type Case, opsPerSecond, runInterleaved } from './support/measure.ts'
import { formatCount, formatNs, formatRatio, markdownTable, verdict } from './support/report.ts'
import { coldListTable } from './fragments-collection.ts'

const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 9)
const TAGS = 100
const HIT_TAGS = `${TAGS} cache tags, all L1 hits`
const HIT_LITERAL = `${TAGS} literal copies of the HTML`

const site = loadSite()
// As part 1: longer bodies, about 600 characters of markdown-ish text per article.
const articles = site.articles.map((a) => ({
  ...a,
  body: Array.from({ length: 5 }, (_, i) => `${a.body} Paragraph ${i + 1} says *why* and **how**, with _care_ & <code>.`).join('\n\n'),
}))

// ─── The per-article work of part 1 (its filters), as template helpers ──────────────────────────────────────

function markdownish(source: string): string {
  const escaped = source.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  return escaped
    .split(/\n{2,}/)
    .map((p) => `<p>${p.replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>').replace(/\*(.+?)\*/g, '<em>$1</em>').replace(/_(.+?)_/g, '<u>$1</u>')}</p>`)
    .join('')
}
function readingTime(source: string): string {
  const words = source.split(/\s+/).filter(Boolean).length
  return `${Math.max(1, Math.round(words / 200))} min (${words} words)`
}
function slug(title: string): string {
  return title.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
}

// ─── The page ────────────────────────────────────────────────────────────────────────────────────────────────

const LAYOUT = `<!doctype html>
<html lang="<%= it.lang %>"><head><title><%= it.title %></title></head>
<body>
<%~ await includeAsync('@header') %>
<%~ it.body %>
<footer>fragcache bench</footer>
</body></html>
`
const HEADER = '<header>Hello, <%= it.user.name %></header>'
const BODIES = {
  formatted: {
    teaser: `<article id="<%= it.slug(String(article.id)) %>-<%= article.id %>"><h3><a href="/a/<%= it.slug(article.title) %>"><%= article.title %></a></h3><p class="meta">by <%= article.author %> in <%= article.category %>, <%= it.readingTime(article.body) %></p><%~ it.markdownish(article.body) %></article>
`,
    sidebar: `<aside><h2>Popular</h2><ul><% for (const article of it.articles.slice(0, 5)) { %><li><a href="/a/<%= it.slug(article.title) %>"><%= article.title %></a> <%= it.readingTime(article.body) %></li><% } %></ul></aside>
`,
  },
  plain: {
    teaser: `<article id="<%= article.id %>-<%= article.id %>"><h3><a href="/a/<%= article.slug %>"><%= article.title %></a></h3><p class="meta">by <%= article.author %> in <%= article.category %>, <%= article.reading %></p><%~ article.html %></article>
`,
    sidebar: `<aside><h2>Popular</h2><ul><% for (const article of it.articles.slice(0, 5)) { %><li><a href="/a/<%= article.slug %>"><%= article.title %></a> <%= article.reading %></li><% } %></ul></aside>
`,
  },
}
type Body = keyof typeof BODIES
/** Which parts are fragments: none, the sidebar and the outer list (teasers nested inside), or only the 50 teasers. */
type Caching = 'none' | 'outer' | 'teasers'

function page(body: Body, caching: Caching): string {
  const { teaser, sidebar } = BODIES[body]
  const wrap = (html: string, tag: string, on: boolean) => (on ? `<% cache ${tag} %>${html}<% endcache %>` : html)
  const outer = caching === 'outer'
  const teasers = wrap(teaser, `3600 "article_teaser_${body}" article.id deps=["article:" + article.id]`, caching !== 'none')
  const list = `<section>\n<% for (const article of it.articles) { %>${teasers}<% } %></section>`
  return `<% layout('@layout', { title: 'Articles' }) %><main>\n${wrap(sidebar, `300 "sidebar_${body}" it.lang`, outer)}${wrap(list, `300 "article_list_${body}" it.lang`, outer)}</main>`
}

const helpers = { markdownish, readingTime, slug }
const data = { lang: site.lang, user: site.user, articles, ...helpers }
// The "plain" page gets every value computed beforehand, so it renders the same bytes with interpolations only.
const plainData = {
  lang: site.lang,
  user: site.user,
  articles: articles.map((a) => ({ ...a, slug: slug(a.title), reading: readingTime(a.body), html: markdownish(a.body) })),
}

function setup(body: Body, caching: Caching): () => Promise<string> {
  const cache = createCache({ logger: { warn: () => {}, error: () => {} }, earlyRefresh: 0 })
  // autoTrim off: newlines after tags are kept, as Nunjucks keeps them, so both parts render the same bytes.
  const eta = new Eta({ cache: true, autoTrim: false, plugins: [fragmentCache(cache)] })
  eta.loadTemplate('@layout', LAYOUT, { async: true })
  eta.loadTemplate('@header', HEADER, { async: true })
  eta.loadTemplate('@page', page(body, caching), { async: true })
  const input = body === 'formatted' ? data : plainData
  return () => eta.renderAsync('@page', input)
}

// ─── (b) one hit vs literal text ─────────────────────────────────────────────────────────────────────────────

function hitTemplates(): { tags: () => Promise<string>; literal: () => Promise<string> } {
  const cache = createCache({ logger: { warn: () => {}, error: () => {} }, earlyRefresh: 0 })
  const eta = new Eta({ cache: true, autoTrim: false, plugins: [fragmentCache(cache)] })
  const html = (i: number) => `<p class="f">Fragment ${i} &amp; friends</p>\n`
  eta.loadTemplate('@tags', Array.from({ length: TAGS }, (_, i) => `<% cache 300 "f${i}" %>${html(i)}<% endcache %>`).join(''), { async: true })
  eta.loadTemplate('@literal', Array.from({ length: TAGS }, (_, i) => html(i)).join(''), { async: true })
  return { tags: () => eta.renderAsync('@tags', {}), literal: () => eta.renderAsync('@literal', {}) }
}

// ─── Run ─────────────────────────────────────────────────────────────────────────────────────────────────────

console.log(`# bench:fragments (Eta ${etaVersion()}) — node ${process.version}, ${ROUNDS} rounds, medians\n`)

const variants: { body: Body; caching: Caching; label: string }[] = []
for (const body of ['formatted', 'plain'] as const) {
  variants.push({ body, caching: 'none', label: `${body} :: uncached` })
  variants.push({ body, caching: 'outer', label: `${body} :: sidebar + outer list hits (2 lookups)` })
  variants.push({ body, caching: 'teasers', label: `${body} :: 50 teaser hits (50 lookups)` })
}
const renderers = new Map<string, () => Promise<string>>()
let reference: Record<Body, string> | undefined
for (const v of variants) {
  const render = setup(v.body, v.caching)
  const first = await render() // fills the fragments: every timed render is all hits
  const again = await render()
  if (first !== again) throw new Error(`${v.label}: a hit rendered different HTML`)
  reference ??= { formatted: '', plain: '' }
  if (reference[v.body] === '') reference[v.body] = first
  else if (reference[v.body] !== first) throw new Error(`${v.label}: rendered different HTML than the uncached page`)
  renderers.set(v.label, render)
}
if (reference?.formatted !== reference?.plain) throw new Error('the formatted and plain pages differ')
const hits = hitTemplates()
await hits.tags()
if ((await hits.tags()) !== (await hits.literal())) throw new Error('the fragment template and the literal one differ')

const cases: Case[] = [
  ...variants.map((v) => ({
    label: v.label,
    mode: { kind: 'sequential' } as const,
    opsPerRound: v.caching === 'outer' ? 2000 : 300,
    op: renderers.get(v.label) as () => Promise<string>,
  })),
  { label: HIT_TAGS, mode: { kind: 'sequential' }, opsPerRound: 2000, op: hits.tags },
  { label: HIT_LITERAL, mode: { kind: 'sequential' }, opsPerRound: 2000, op: hits.literal },
]
const results = await runInterleaved(cases, ROUNDS)
const ns = new Map(results.map((r) => [r.label, r.nsPerOp]))
const at = (label: string) => ns.get(label) as number

console.log(
  `Page: ${((reference?.formatted.length ?? 0) / 1024).toFixed(1)} KB of HTML (layout, header include, sidebar, 50-article loop), the markup of part 1 ported to Eta.\n`,
)
const rows: string[][] = []
for (const body of ['formatted', 'plain'] as const) {
  const uncached = at(`${body} :: uncached`)
  for (const caching of ['none', 'outer', 'teasers'] as const) {
    const label = variants.find((v) => v.body === body && v.caching === caching)?.label as string
    const time = at(label)
    rows.push([label, formatNs(time), formatCount(opsPerSecond(time)), caching === 'none' ? '1.00×' : formatRatio(uncached / time)])
  }
}
console.log(markdownTable(['page :: fragments', 'per render', 'renders/s', 'vs uncached'], rows))

const hitCost = (at(HIT_TAGS) - at(HIT_LITERAL)) / TAGS
console.log(`\n${markdownTable(['template', 'per render', 'renders/s'], [HIT_TAGS, HIT_LITERAL].map((label) => [label, formatNs(at(label)), formatCount(opsPerSecond(at(label)))]))}`)
console.log(`\nOne L1 fragment hit costs ${formatNs(hitCost)} more than the same HTML as literal text.`)
const outerRatio = at('formatted :: uncached') / at('formatted :: sidebar + outer list hits (2 lookups)')
console.log(verdict(outerRatio >= 10, 'formatted page with fragment hits ≥ 10× uncached', formatRatio(outerRatio)))
console.log(verdict(hitCost <= 2000, 'one L1 fragment hit ≤ 2 µs more than literal text', formatNs(hitCost)))
const teaserRatio = (body: Body) => at(`${body} :: uncached`) / at(`${body} :: 50 teaser hits (50 lookups)`)
const perTeaser = (body: Body) => formatNs((at(`${body} :: uncached`) - at(`${body} :: sidebar + outer list hits (2 lookups)`)) / 55)
const speed = (ratio: number) => (ratio >= 1 ? `${formatRatio(ratio)} faster` : `${formatRatio(1 / ratio)} slower`)
console.log(
  `\nWhen it pays off: one hit costs about ${formatNs(hitCost)}. Rendering one formatted teaser costs about ${perTeaser('formatted')}, ` +
    `one plain teaser about ${perTeaser('plain')} (the page minus its cached version, over 55 items). ` +
    `Caching each teaser makes the formatted page ${speed(teaserRatio('formatted'))} and the plain page ${speed(teaserRatio('plain'))}; ` +
    'with Eta, wrap coarse regions (the whole list) and bodies that do real work (formatting, data access, includes), not single interpolations.',
)

console.log(`\n${await coldListTable('eta')}`)

function etaVersion(): string {
  return (JSON.parse(readFileSync(new URL('../node_modules/eta/package.json', import.meta.url), 'utf8')) as { version: string }).version
}

function positiveInt(value: string | undefined, fallback: number): number {
  const n = value === undefined ? fallback : Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`expected a positive integer; got ${value}`)
  return n
}

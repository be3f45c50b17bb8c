/**
 * The fuzzer as a test: a few hundred mutated copies of the fixtures per engine (a fixed seed), each rendered with the
 * cache tag. A template that still has a cache tag must render what the same template renders with each fragment
 * written as a plain block, or fail with an error that names the template and a line, quotes no compiled code, and
 * can be read without throwing.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Eta } from 'eta'
import nunjucks from 'nunjucks'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { fragmentCache } from '../../extensions/eta/index.ts'
import { FragmentCacheExtension } from '../../extensions/nunjucks/index.ts'
import { loadSite } from '../../fixtures/site.ts'
import { createCache } from '../../src/index.ts'

const TEMPLATES = Number(process.env.FRAGCACHE_FUZZ_TEMPLATES ?? 300)
const PAGES = ['page', 'nested', 'per-user', 'escape', 'ttl', 'empty', 'collection', 'deps/page']
const GENERATED = /__fragcache|__eta|\bframe\.|\bruntime\.|\bcontext\.|\bt_\d+\b|const __/

interface Engine {
  readonly name: 'nunjucks' | 'eta'
  readonly extension: string
  /** Pieces of syntax the mutations insert. */
  readonly pieces: readonly string[]
  /** A cache tag as the engine's extension reads one. */
  readonly tag: RegExp
  /** The template with each fragment written as a plain block (undefined when a tag is too broken to rewrite). */
  plain(source: string): string | undefined
  /** Renders file `name` of `views` with or without fragcache. */
  render(views: string, name: string, data: object, cached: boolean): Promise<string>
}

const engines: Engine[] = [
  {
    name: 'nunjucks',
    extension: 'njk',
    pieces: ['{%', '%}', '{{', '}}', '{#', '#}', '"', '(', ')', '[', ']', '=', ',', '~', '|', '.', '\n', ' ', 'cache', 'endcache', 'deps=', 'null', 'include "x.njk"'],
    tag: /\{%-?\s*cache\b/,
    plain: (source) => rewrite(source, /\{%(-?)\s*cache\b(?:[^%"]|"[^"%]*")*?(-?)%\}/g, /\{%(-?)\s*endcache\s*(-?)%\}/g, '{%$1 if true $2%}', '{%$1 endif $2%}'),
    render(views, name, data, cached) {
      const env = new nunjucks.Environment(new nunjucks.FileSystemLoader([views, join(FIXTURES, 'nunjucks')]), { autoescape: true })
      if (cached) env.addExtension('FragmentCache', new FragmentCacheExtension(createCache({ logger: quiet })))
      return new Promise((ok, fail) => env.render(name, data, (err, html) => (err ? fail(err) : ok(html as string))))
    },
  },
  {
    name: 'eta',
    extension: 'eta',
    pieces: ['<%', '%>', '<%=', '"', "'", '`', '(', ')', '[', ']', '{', '}', '=', ',', '+', ';', '.', '=>', '/*', '\n', ' ', 'cache', 'endcache', 'deps=', 'x = 1'],
    tag: /<%[-_]?\s*(?:cache\b|endcache\s*[-_]?%>)/,
    plain: (source) => rewrite(source, /<%([-_]?)\s*cache\b(?:[^%"'`]|"[^"%]*")*?([-_]?)%>/g, /<%([-_]?)\s*endcache\s*([-_]?)%>/g, '<%$1 { $2%>', '<%$1 } $2%>'),
    render(views, name, data, cached) {
      const eta = new Eta({ views, plugins: cached ? [fragmentCache(createCache({ logger: quiet }))] : [] })
      return eta.renderAsync(name, data)
    },
  },
]

const FIXTURES = new URL('../../fixtures/', import.meta.url).pathname
const quiet = { warn: () => {}, error: () => {} }

for (const engine of engines) {
  const test = suite(`${engine.name} :: fuzz`)

  test(`${TEMPLATES} mutated templates: rendered as without fragments, or an error naming the template and line`, async () => {
    const views = mkdtempSync(join(tmpdir(), `fragcache-fuzz-${engine.name}-`))
    try {
      if (engine.name === 'eta') cpSync(join(FIXTURES, 'eta'), views, { recursive: true })
      const random = mulberry32(Number(process.env.FRAGCACHE_FUZZ_SEED ?? 20_251_128))
      const sources = PAGES.map((page) => readFileSync(join(FIXTURES, engine.name, `${page}.${engine.extension}`), 'utf8'))
      let checked = 0
      let rendered = 0
      for (let i = 0; i < TEMPLATES; i++) {
        const original = sources[Math.floor(random() * sources.length)] as string
        const source = mutate(original, engine.pieces, random)
        if (!engine.tag.test(source)) continue
        checked += 1
        const name = `fuzz-${i}`
        writeFileSync(join(views, `${name}.${engine.extension}`), source)
        const file = `${name}.${engine.extension}`
        const data = { ...loadSite(), probe: () => '' }
        let error: unknown
        let html: string | undefined
        try {
          html = await engine.render(views, engine.name === 'eta' ? name : file, data, true)
        } catch (thrown) {
          error = thrown
        }
        const context = `template ${i}:\n${source}`
        if (error === undefined) {
          rendered += 1
          // A tag whose inputs were mutated may no longer vary by what its body shows (every item under one key):
          // that renders what such a key says, not what the template without fragments does.
          const plain = sameTags(engine, source, original) ? engine.plain(source) : undefined
          if (plain === undefined) continue
          writeFileSync(join(views, `plain-${file}`), plain)
          const expected = await engine.render(views, engine.name === 'eta' ? `plain-${name}` : `plain-${file}`, data, false).catch(() => undefined)
          if (expected !== undefined) assert.is(html, expected, `rendered as the same template without fragments: ${context}`)
          continue
        }
        assert.instance(error, Error, `an Error: ${context}`)
        let message = ''
        try {
          message = (error as Error).message
          String(error)
        } catch {
          assert.unreachable(`reading the error threw: ${context}`)
        }
        assert.ok(message.includes(name), `names the template: ${message}\n${context}`)
        assert.ok(/\[Line \d+|line \d+|\.eta:\d+\n/.test(message), `names a line: ${message}\n${context}`)
        assert.not.ok(GENERATED.test(message), `quotes no compiled code: ${message}\n${context}`)
      }
      assert.ok(checked > TEMPLATES / 2, `most mutated templates still have a cache tag (${checked})`)
      assert.ok(rendered > 0 && rendered < checked, `some render, some fail (${rendered} of ${checked})`)
    } finally {
      rmSync(views, { recursive: true, force: true })
    }
  })

  test.run()
}

/** One to three edits: a deletion, an insertion of a piece of syntax, or a copy of a few characters from elsewhere. */
function mutate(source: string, pieces: readonly string[], random: () => number): string {
  let text = source
  const edits = 1 + Math.floor(random() * 3)
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(random() * text.length)
    const kind = random()
    if (kind < 0.35) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 4))
    else if (kind < 0.8) text = text.slice(0, at) + (pieces[Math.floor(random() * pieces.length)] as string) + text.slice(at)
    else {
      const from = Math.floor(random() * text.length)
      text = text.slice(0, at) + text.slice(from, from + 5) + text.slice(at)
    }
  }
  return text
}

/** Whether the cache tags of `source` are written as in `original`. */
function sameTags(engine: Engine, source: string, original: string): boolean {
  const tags = (text: string) => text.split('\n').filter((line) => engine.tag.test(line)).map((line) => line.replace(/^.*?((?:\{%|<%)[-_]?\s*cache\b.*)$/, '$1'))
  return JSON.stringify(tags(source)) === JSON.stringify(tags(original))
}

/** `source` with each open and close tag replaced, or undefined when a tag-like text is left that the patterns missed. */
function rewrite(source: string, open: RegExp, close: RegExp, openWith: string, closeWith: string): string | undefined {
  const rewritten = source.replace(open, openWith).replace(close, closeWith)
  return /\bcache\b/.test(rewritten) ? undefined : rewritten
}

/** A small seeded random number generator (mulberry32), so the mutations are the same on every run. */
function mulberry32(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

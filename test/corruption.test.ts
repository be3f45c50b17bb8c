import { randomBytes } from 'node:crypto'
import { get as httpGet } from 'node:http'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../src/index.ts'
import { decodeEntry } from '../src/tiers/redis-format.ts'
import { createSite } from '../example-site/site.ts'
import { withServer } from './support/http.ts'
import { RedisServer, patientRedis } from './support/redis-server.ts'

const server = await RedisServer.start()
const PREFIX = 'corrupt'
const open: TieredCache[] = []
const quiet = { warn: () => {}, error: () => {} }

/** Pages of both engines: fragments (sidebar, article body, widget) and per-view cached pages (category, forecast). */
const PATHS = ['/nunjucks/', '/eta/', '/nunjucks/article/1', '/eta/article/1', '/nunjucks/category/caching', '/eta/category/caching', '/nunjucks/forecast/page', '/eta/forecast/page']

/** A process of the demo on the shared Redis, with an empty L1: every fragment and page comes from Redis or is rendered. */
async function freshSite() {
  const cache = createCache({ prefix: PREFIX, redis: server.url, ...patientRedis, logger: quiet })
  open.push(cache)
  await cache.ready()
  const site = await createSite({ cache, dbFile: ':memory:', upstreamDelayMs: 5 })
  return { cache, site }
}

/**
 * What of a page changes with each render, cached or not: the render stamps (times), the process id and the footer's
 * count of the render's fragment lookups (a render after corruption finds fewer of them cached).
 */
function normalised(html: string): string {
  return html
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, 'TIMESTAMP')
    .replace(/\d\d:\d\d:\d\d/g, 'HH:MM:SS')
    .replace(/pid \d+/g, 'pid N')
    .replace(/<span class="cache-summary">[^<]*<\/span>/g, '<span class="cache-summary">SUMMARY</span>')
}

interface Page {
  status: number
  cache: string | null
  body: string
}

/** A GET with one Host for every process (pages are keyed by host; each test server has a port of its own). */
function get(base: string, path: string): Promise<Page> {
  return new Promise((resolve, reject) => {
    const request = httpGet(base + path, { headers: { host: 'demo.test' } }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const cache = response.headers['x-cache']
        resolve({ status: response.statusCode ?? 0, cache: typeof cache === 'string' ? cache : null, body: normalised(Buffer.concat(chunks).toString('utf8')) })
      })
      response.on('error', reject)
    })
    request.on('error', reject)
  })
}

async function getAll(base: string): Promise<Map<string, Page>> {
  const out = new Map<string, Page>()
  for (const path of PATHS) out.set(path, await get(base, path))
  return out
}

type Mode = 'truncated' | 'random bytes' | 'JSON object' | 'JSON number' | 'JSON array' | 'page with a bad header'

/** The corrupted form of a stored value, or undefined to leave it. */
function corrupted(mode: Mode, key: string, raw: Buffer): Buffer | string | undefined {
  const envelope = (json: string) => `fc2|0|0|1|j|${Buffer.byteLength(json)}||\n${json}`
  switch (mode) {
    case 'truncated':
      return raw.subarray(0, Math.max(1, raw.length - 7))
    case 'random bytes':
      return randomBytes(raw.length)
    case 'JSON object':
      return envelope('{"html":"<b>x</b>"}')
    case 'JSON number':
      return envelope('424242')
    case 'JSON array':
      return envelope('["<b>unescaped</b>"]')
    case 'page with a bad header': {
      if (!key.includes(':view:')) return undefined
      const entry = decodeEntry(raw)
      if (typeof entry === 'string') return undefined
      return envelope(JSON.stringify({ ...(entry.value as object), headers: { 'bad header': 'x', 'x-ok': 'line\nbreak' } }))
    }
  }
}

/** Every data key of the prefix (not versions, not locks). */
async function dataKeys(): Promise<string[]> {
  const raw = server.client()
  try {
    return (await raw.keys(`${PREFIX}:*`)).filter((key) => !key.includes(':ver:') && !key.includes(':lock:'))
  } finally {
    raw.disconnect()
  }
}

const corruption = suite('corrupt data is a miss, never output, and heals')
let good: Map<string, Page>

corruption.before(async () => {
  const { site } = await freshSite()
  await withServer(site.app, async (base) => {
    await getAll(base)
    good = await getAll(base) // warm: the fragments and pages are stored
  })
  for (const [path, page] of good) assert.is(page.status, 200, path)
  await site.close()
})

corruption.after(async () => {
  for (const cache of open) await cache.close()
  await server.stop()
})

for (const mode of ['truncated', 'random bytes', 'JSON object', 'JSON number', 'JSON array', 'page with a bad header'] as const) {
  corruption(`${mode}: every page as it should be, no 500, and stored whole again`, async () => {
    const keys = await dataKeys()
    assert.ok(keys.length >= PATHS.length, `${keys.length} stored keys`)
    const raw = server.client()
    let changed = 0
    try {
      for (const key of keys) {
        const value = await raw.getBuffer(key)
        if (value === null) continue
        const bad = corrupted(mode, key, value)
        if (bad === undefined) continue
        await raw.set(key, bad)
        changed += 1
      }
    } finally {
      raw.disconnect()
    }
    assert.ok(changed > 0)
    const { cache, site } = await freshSite()
    await withServer(site.app, async (base) => {
      const pages = await getAll(base)
      for (const [path, page] of pages) {
        assert.is(page.status, 200, `${path} answered ${page.status}`)
        assert.is(page.body, good.get(path)?.body, `${path}: the whole page, as rendered from good data`)
        for (const garbage of ['[object Object]', '424242', '<b>unescaped</b>', '<b>x</b>', 'undefined']) assert.not.ok(page.body.includes(garbage), `${path} shows ${garbage}`)
        if (path.includes('/category/') || path.endsWith('/forecast/page')) assert.is(page.cache, 'MISS', `${path}: the corrupt page was rendered anew`)
      }
      await cache.flush()
      const again = await getAll(base)
      for (const path of PATHS.filter((p) => p.includes('/category/') || p.endsWith('/forecast/page'))) {
        assert.is(again.get(path)?.cache, 'HIT', `${path} was stored again`)
      }
    })
    assert.ok(cache.stats().l2.corrupt > 0, 'counted')
    const after = server.client()
    try {
      for (const key of await dataKeys()) {
        const entry = decodeEntry((await after.getBuffer(key)) ?? Buffer.alloc(0))
        assert.ok(typeof entry !== 'string', `${key} holds a whole entry again`)
        // A fragment that varies by the visitor (the sidebar) holds a redirect naming the contexts; the others HTML.
        if (key.includes(':frag:')) assert.ok(entry.kind === 'r' ? Array.isArray(entry.value) : typeof entry.value === 'string', `${key} holds HTML or a redirect`)
      }
    } finally {
      after.disconnect()
    }
    await site.close()
  })
}

corruption('plain values: a truncated or random value is a miss, never an exception or garbage', async () => {
  const cache = createCache({ prefix: 'plain', redis: server.url, ...patientRedis, logger: quiet, l1: { max: 1 } })
  open.push(cache)
  await cache.ready()
  await cache.set('text', 'hello world, a value long enough to cut')
  await cache.set('object', { a: [1, 2, 3], b: 'text' })
  const raw = server.client()
  try {
    const text = cache.keys.build('c', 'text')
    const object = cache.keys.build('c', 'object')
    const value = (await raw.getBuffer(object)) as Buffer
    await raw.set(text, ((await raw.getBuffer(text)) as Buffer).subarray(0, 30))
    await raw.set(object, randomBytes(value.length))
  } finally {
    raw.disconnect()
  }
  await cache.set('evict', 'L1 holds one entry: the two above come from Redis')
  assert.equal([await cache.get('text'), await cache.get('object')], [undefined, undefined])
  assert.is(await cache.getOrSet('text', () => 'recomputed'), 'recomputed')
  assert.is(cache.stats().l2.corrupt, 2)
})

corruption('version keys overwritten with garbage: the next bump succeeds, and pages are cached again', async () => {
  const raw = server.client()
  try {
    for (const key of await raw.keys(`${PREFIX}:*ver:*`)) await raw.set(key, 'garbage')
  } finally {
    raw.disconnect()
  }
  const { cache, site } = await freshSite()
  await site.articles.save({ ...(site.articles.find(1) as NonNullable<ReturnType<typeof site.articles.find>>), title: "A new title" })
  await withServer(site.app, async (base) => {
    const first = await get(base, '/nunjucks/category/caching')
    assert.is(first.status, 200)
    assert.ok(first.body.includes('A new title'))
    await cache.flush()
    const second = await get(base, '/nunjucks/category/caching')
    assert.is(second.cache, 'HIT')
  })
  assert.ok(cache.stats().l2.corrupt > 0)
  await site.close()
})

corruption.run()

/**
 * `npm run bench:fragments`, part 3 (both engines): a list of 50 cached teasers on a cold L1 with a warm Redis, as a new
 * process (a new cache: empty L1, no versions known) renders it. Each tag one by one, and with `collection=`, which
 * reads every item's fragment in one round trip before the first renders. Redis round trips are counted on the
 * client (commands pipelined together share one); time is the median render over several new caches.
 *
 * Run alone (`tsx bench/fragments-collection.ts`) it runs both engines; against older code, where `collection=` does
 * not exist yet, its rows say so.
 */
import nunjucks from 'nunjucks'
import { Eta } from 'eta'
import { fileURLToPath } from 'node:url'
import { loadSite } from '../fixtures/site.ts'
import { createCache } from '../src/index.ts'
import type { TieredCache } from '../src/index.ts'
import { RedisServer } from '../test/support/redis-server.ts'
import { median } from './support/measure.ts'
import { countingClient } from './support/redis-counters.ts'
import { markdownTable } from './support/report.ts'

type EngineName = 'nunjucks' | 'eta'
type Render = (cache: TieredCache, collection: boolean) => Promise<string>

const ROUNDS = 9
const quiet = { warn: () => {}, error: () => {} }
const patient = { redisTimeoutMs: 1000, earlyRefresh: 0, logger: quiet }
const articles = loadSite().articles

const SOURCES: Record<EngineName, (collection: boolean) => string> = {
  nunjucks: (collection) =>
    `<ul>{% for a in articles %}{% cache 3600 "bench_teaser" a.id deps=["article:" ~ a.id]${collection ? ' collection=articles' : ''} %}` +
    '<li><a href="/a/{{ a.id }}">{{ a.title }}</a> by {{ a.author }}</li>{% endcache %}{% endfor %}</ul>',
  eta: (collection) =>
    `<ul><% for (const a of it.articles) { %><% cache 3600 "bench_teaser" a.id deps=["article:" + a.id]${collection ? ' collection=it.articles' : ''} %>` +
    '<li><a href="/a/<%= a.id %>"><%= a.title %></a> by <%= a.author %></li><% endcache %><% } %></ul>',
}

/** Each engine with fragcache, as the code at hand lays it out (one folder per engine now, one file before). */
async function renderer(engine: EngineName): Promise<Render> {
  if (engine === 'nunjucks') {
    const { FragmentCacheExtension } = (await import('../extensions/nunjucks/index.ts').catch(() => import(`../extensions/${'nunjucks'}.ts`))) as {
      FragmentCacheExtension: new (cache: TieredCache) => nunjucks.Extension
    }
    return (cache, collection) => {
      const env = new nunjucks.Environment(null, { autoescape: true })
      env.addExtension('FragmentCache', new FragmentCacheExtension(cache))
      return new Promise((ok, fail) => env.renderString(SOURCES.nunjucks(collection), { articles }, (err, html) => (err ? fail(err) : ok(html as string))))
    }
  }
  const { fragmentCache } = (await import('../extensions/eta/index.ts').catch(() => import(`../extensions/${'eta'}.ts`))) as {
    fragmentCache: (cache: TieredCache) => never
  }
  return (cache, collection) => new Eta({ plugins: [fragmentCache(cache)] }).renderStringAsync(SOURCES.eta(collection), { articles })
}

/** One row: round trips and median milliseconds for a new process rendering the list from a warm Redis. */
async function measure(server: RedisServer, render: Render, collection: boolean, prefix: string): Promise<string[]> {
  const warm = createCache({ ...patient, prefix, redis: server.url })
  await warm.ready()
  const html = await render(warm, collection)
  await warm.close()
  const trips: number[] = []
  const commands: number[] = []
  const ms: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const counting = countingClient(server.port)
    const cold = createCache({ ...patient, prefix, redis: counting.client })
    try {
      await cold.ready()
      counting.take()
      const started = performance.now()
      const again = await render(cold, collection)
      ms.push(performance.now() - started)
      const counts = counting.take()
      trips.push(counts.roundTrips)
      commands.push(counts.commands)
      if (again !== html) throw new Error('a cold render differs from the warm one')
    } finally {
      await cold.close()
      counting.client.disconnect()
    }
  }
  return [String(median(trips)), String(median(commands)), median(ms).toFixed(2)]
}

/**
 * The rows of both cases for `engine`, against a Redis of its own.
 * @example
 * ```ts
 * console.log(await coldListTable('nunjucks'))
 * ```
 */
export async function coldListTable(engine: EngineName): Promise<string> {
  const server = await RedisServer.start()
  try {
    const render = await renderer(engine)
    const rows: string[][] = []
    for (const collection of [false, true]) {
      const label = collection ? `${articles.length} teasers, collection=` : `${articles.length} teasers, one by one`
      try {
        rows.push([label, ...(await measure(server, render, collection, `bench-${engine}-${collection ? 'c' : 'n'}`))])
      } catch (error) {
        rows.push([label, `not supported here (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`, '', ''])
      }
    }
    return `${engine}: a new process renders a list of ${articles.length} cached teasers, all in Redis (cold L1), median of ${ROUNDS}\n\n${markdownTable(
      ['case', 'Redis round trips', 'commands', 'ms per render'],
      rows,
    )}\n`
  } finally {
    await server.stop()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const engine of ['nunjucks', 'eta'] as const) console.log(await coldListTable(engine))
}

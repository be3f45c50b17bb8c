/**
 * `npm run bench:tiered` — fragcache's read path against the raw clients it is built on and against its Node
 * peers, in one run, on one private redis-server (never the shared 6379).
 *
 * What is measured (medians over interleaved rounds; each round runs every case once):
 * - raw `lru-cache` get and raw ioredis GET: the floors fragcache is built on;
 * - `getOrSet` hits for fragcache, bentocache (memory + redis drivers + redis bus) and cacheable (memory + @keyv/redis),
 *   answered by the memory layer (L1 hit) or by Redis with a fresh memory layer each time (L2 hit), sequentially and
 *   with 100 operations in flight;
 * - what fragcache's immutability choice costs (objects JSON-checked, copied and deep-frozen on set; hits share the
 *   frozen value) next to raw lru-cache and the usual alternatives (clone or parse on every read).
 *
 * "L2 hit with a fresh L1": a second instance of each library whose memory layer holds one entry, read over 1,000
 * keys in turn; every read misses memory, is answered by Redis and back-fills memory (evicting the previous key),
 * which is what an L2 hit costs in real use. The share of reads each layer answered is counted in a separate pass
 * and printed, so the claim is checked rather than assumed.
 *
 * Environment: BENCH_ROUNDS (default 7) counted rounds after one warm-up round.
 */
import { cpus, loadavg } from 'node:os'
import { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { createCache, source as librarySource } from './support/library.ts'
import type { TieredCache } from '../src/index.ts'
import { RedisServer } from '../test/support/redis-server.ts'
import { type Case, type Mode, type Operation, type Result, opsPerSecond, runInterleaved } from './support/measure.ts'
import { type PeerCache, createBentocache, createCacheable } from './support/peers.ts'
import { formatCount, formatNs, formatRatio, markdownTable, verdict } from './support/report.ts'
import { articleObject, fragmentHtml } from './support/values.ts'

const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 7)
const KEY_COUNT = 1_000
// Long enough that nothing expires during a run on a loaded machine (an expired entry would turn hits into computes).
const TTL_SECONDS = 3600
const IN_FLIGHT = 100
const HOST = '127.0.0.1'
/**
 * fragcache treats a Redis answer slower than `redisTimeoutMs` (default 50 ms) as a miss and, after 3 in a row,
 * stops asking Redis for a second. The peers have no such bound, so the timed instances get a generous one: a
 * stalled machine must not turn "L2 hit" rounds into compute-and-store rounds. Timeouts and computes during the
 * timed rounds are printed; BENCH_REDIS_TIMEOUT_MS=50 shows what the default does under this load.
 */
const REDIS_TIMEOUT_MS = positiveInt(process.env.BENCH_REDIS_TIMEOUT_MS, 1000)

const SYNC: Mode = { kind: 'sync' }
const SEQUENTIAL: Mode = { kind: 'sequential' }
const INFLIGHT: Mode = { kind: 'inflight', concurrency: IN_FLIGHT }

const html = fragmentHtml(1024)
const article = articleObject(1024)
const articleJson = JSON.stringify(article)
const keys = Array.from({ length: KEY_COUNT }, (_, i) => `item:${i}`)
const objectKeys = Array.from({ length: KEY_COUNT }, (_, i) => `article:${i}`)
const keyAt = (i: number) => keys[i % KEY_COUNT] as string
const objectKeyAt = (i: number) => objectKeys[i % KEY_COUNT] as string
const computeHtml = () => html
const computeArticle = () => article

const server = await RedisServer.start()
const cleanup: (() => Promise<void> | void)[] = [() => server.stop()]
try {
  await main()
} finally {
  for (const step of cleanup.reverse()) await step()
}

async function main(): Promise<void> {
  console.log(
    `# bench:tiered — node ${process.version}, ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ` +
      `redis-server on 127.0.0.1:${server.port}, ${ROUNDS} rounds (+1 warm-up)`,
  )
  console.log(`fragcache: ${librarySource}`)
  console.log(`values: a ${html.length}-byte HTML string; for the object cases a ${articleJson.length}-byte JSON object. TTL ${TTL_SECONDS} s everywhere.\n`)

  // The floors.
  const lru = new LRUCache<string, string>({ max: 10_000 })
  const lruObjects = new LRUCache<string, object>({ max: 10_000 })
  for (let i = 0; i < KEY_COUNT; i++) {
    lru.set(keyAt(i), html)
    lruObjects.set(objectKeyAt(i), article)
  }
  const rawRedis = new Redis(server.port, HOST, { enableAutoPipelining: false })
  const rawRedisPipelined = new Redis(server.port, HOST, { enableAutoPipelining: true })
  cleanup.push(() => void rawRedis.disconnect(), () => void rawRedisPipelined.disconnect())
  await rawRedis.mset(Object.fromEntries(keys.map((key) => [`raw:${key}`, html])))

  // fragcache: a warm instance, and one whose L1 holds a single entry (every read over 1,000 keys goes to Redis).
  const fragcache = fragcacheWith(10_000)
  const fragcacheL2 = fragcacheWith(1)
  const fragcacheMemoryOnly = createCache({ prefix: 'fcmem', ttl: TTL_SECONDS })
  await Promise.all([fragcache.ready(), fragcacheL2.ready()])

  // Peers: same shape (a warm instance, a one-entry-memory instance sharing its Redis entries).
  const peer = { host: HOST, port: server.port, ttlSeconds: TTL_SECONDS }
  const bento = track(createBentocache({ ...peer, memoryItems: 10_000, prefix: 'bento' }))
  // Own prefix: bentocache 1.6.1 crashes when a `serialize: false` memory layer is back-filled from Redis
  // ("Cannot read properties of undefined (reading 'deserialize')"), so this instance computes its own entries.
  const bentoRaw = track(createBentocache({ ...peer, memoryItems: 10_000, prefix: 'bentoraw', serializeMemory: false }))
  const bentoL2 = track(createBentocache({ ...peer, memoryItems: 1, prefix: 'bento' }))
  const cacheable = track(createCacheable({ ...peer, memoryItems: 10_000, prefix: 'cacheable' }))
  const cacheableL2 = track(createCacheable({ ...peer, memoryItems: 1, prefix: 'cacheable' }))

  for (let i = 0; i < KEY_COUNT; i++) {
    await fragcache.getOrSet(keyAt(i), computeHtml)
    await fragcache.getOrSet(objectKeyAt(i), computeArticle)
    await bento.getOrSet(keyAt(i), computeHtml)
    await bento.getOrSet(objectKeyAt(i), computeArticle)
    await bentoRaw.getOrSet(keyAt(i), computeHtml)
    await cacheable.getOrSet(keyAt(i), computeHtml)
    await cacheable.getOrSet(objectKeyAt(i), computeArticle)
  }

  const layerShares = await checkLayers(peer, fragcacheL2)

  const read = (label: string, op: Operation, opsSequential: number, opsInFlight: number): Case[] => [
    { label, mode: SEQUENTIAL, opsPerRound: opsSequential, op },
    { label, mode: INFLIGHT, opsPerRound: opsInFlight, op },
  ]
  const cases: Case[] = [
    { label: 'raw lru-cache get (sync)', mode: SYNC, opsPerRound: 400_000, op: (i) => lru.get(keyAt(i)) },
    ...read('raw lru-cache get in an async function (floor of any async API)', async (i) => lru.get(keyAt(i)), 400_000, 400_000),
    ...read('fragcache getOrSet — L1 hit', (i) => fragcache.getOrSet(keyAt(i), computeHtml), 100_000, 100_000),
    ...read('bentocache getOrSet — L1 hit', (i) => bento.getOrSet(keyAt(i), computeHtml), 20_000, 20_000),
    ...read('bentocache getOrSet — L1 hit, memory `serialize: false`', (i) => bentoRaw.getOrSet(keyAt(i), computeHtml), 20_000, 20_000),
    ...read('cacheable getOrSet — L1 hit', (i) => cacheable.getOrSet(keyAt(i), computeHtml), 20_000, 20_000),
    ...read('raw ioredis GET (auto-pipelining off)', (i) => rawRedis.get(`raw:${keyAt(i)}`), 3_000, 15_000),
    ...read('raw ioredis GET (auto-pipelining on)', (i) => rawRedisPipelined.get(`raw:${keyAt(i)}`), 3_000, 15_000),
    ...read('fragcache getOrSet — L2 hit (fresh L1)', (i) => fragcacheL2.getOrSet(keyAt(i), computeHtml), 3_000, 15_000),
    ...read('bentocache getOrSet — L2 hit (fresh L1)', (i) => bentoL2.getOrSet(keyAt(i), computeHtml), 3_000, 10_000),
    ...read('cacheable getOrSet — L2 hit (fresh L1)', (i) => cacheableL2.getOrSet(keyAt(i), computeHtml), 3_000, 10_000),
    // The immutability choice, sequential: CPU cost only.
    { label: 'raw lru-cache set of the object (stores the caller’s reference)', mode: SYNC, opsPerRound: 400_000, op: (i) => lruObjects.set(objectKeyAt(i), article) },
    { label: 'fragcache set of the object (check + copy + deep freeze; memory only)', mode: SEQUENTIAL, opsPerRound: 20_000, op: (i) => fragcacheMemoryOnly.set(objectKeyAt(i), article) },
    { label: 'fragcache set of the 1 KB string (memory only)', mode: SEQUENTIAL, opsPerRound: 100_000, op: (i) => fragcacheMemoryOnly.set(keyAt(i), html) },
    { label: 'raw lru-cache get of the object (shared, mutable)', mode: SYNC, opsPerRound: 400_000, op: (i) => lruObjects.get(objectKeyAt(i)) },
    { label: 'alternative: structuredClone on every read', mode: SYNC, opsPerRound: 40_000, op: () => structuredClone(article) },
    { label: 'alternative: JSON.parse on every read', mode: SYNC, opsPerRound: 40_000, op: () => JSON.parse(articleJson) },
    { label: 'fragcache getOrSet L1 hit on the object (frozen, shared)', mode: SEQUENTIAL, opsPerRound: 100_000, op: (i) => fragcache.getOrSet(objectKeyAt(i), computeArticle) },
    { label: 'bentocache getOrSet L1 hit on the object (parsed per read)', mode: SEQUENTIAL, opsPerRound: 10_000, op: (i) => bento.getOrSet(objectKeyAt(i), computeArticle) },
    { label: 'cacheable getOrSet L1 hit on the object (cloned per read)', mode: SEQUENTIAL, opsPerRound: 10_000, op: (i) => cacheable.getOrSet(objectKeyAt(i), computeArticle) },
  ]

  const health = () => {
    const [a, b] = [fragcache.stats(), fragcacheL2.stats()]
    return { computes: a.computes + b.computes, errors: a.l2.errors + b.l2.errors, outages: a.l2.outages + b.l2.outages }
  }
  const before = health()
  const results = await runInterleaved(cases, ROUNDS, (label) => process.stderr.write(`warm-up: ${label}\n`))
  const after = health()
  printReport(results, layerShares)
  console.log(
    `\nfragcache during the timed rounds: ${after.computes - before.computes} computes (0: every timed read was a hit), ` +
      `${after.errors - before.errors} Redis timeouts/errors, ${after.outages - before.outages} outages (redisTimeoutMs ${REDIS_TIMEOUT_MS}). ` +
      `Load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}.`,
  )
}

function fragcacheWith(l1Max: number): TieredCache {
  const cache = createCache({ prefix: 'fc', ttl: TTL_SECONDS, redis: `redis://${HOST}:${server.port}`, l1: { max: l1Max }, redisTimeoutMs: REDIS_TIMEOUT_MS })
  cleanup.push(() => cache.close())
  return cache
}

function track(cache: PeerCache): PeerCache {
  cleanup.push(() => cache.close())
  return cache
}

/** Which layer answered the "L2 hit" reads: counted on separate instances, so no listener runs while timing. */
async function checkLayers(
  peer: { host: string; port: number; ttlSeconds: number },
  fragcacheL2: TieredCache,
): Promise<{ label: string; redisShare: number }[]> {
  const shares: { label: string; redisShare: number }[] = []
  const passes = async (op: Operation) => {
    for (let i = 0; i < KEY_COUNT * 2; i++) await op(i)
    await Promise.all(Array.from({ length: IN_FLIGHT }, async (_, w) => {
      for (let j = 0; j < 20; j++) await op(w + j * IN_FLIGHT)
    }))
  }
  const before = fragcacheL2.stats()
  await passes((i) => fragcacheL2.getOrSet(keyAt(i), computeHtml))
  const after = fragcacheL2.stats()
  const redisHits = after.l2.hits - before.l2.hits
  const memoryHits = after.l1.hits - before.l1.hits
  const computes = after.computes - before.computes
  shares.push({ label: `fragcache (L1 max 1; ${computes} computes)`, redisShare: redisHits / (redisHits + memoryHits) })
  for (const [label, cache] of [
    ['bentocache (maxItems 1)', createBentocache({ ...peer, memoryItems: 1, prefix: 'bento', countLayers: true })],
    ['cacheable (lruSize 1)', createCacheable({ ...peer, memoryItems: 1, prefix: 'cacheable', countLayers: true })],
  ] as const) {
    await passes((i) => cache.getOrSet(keyAt(i), computeHtml))
    const counts = cache.takeLayerCounts()
    shares.push({ label, redisShare: counts.redis / (counts.redis + counts.memory) })
    await cache.close()
  }
  return shares
}

function printReport(results: readonly Result[], shares: readonly { label: string; redisShare: number }[]): void {
  const find = (label: string, kind: Mode['kind']) => results.find((r) => r.label === label && r.mode.kind === kind)
  const spread = (r: Result) => `±${(((r.maxNs - r.minNs) / 2 / r.nsPerOp) * 100).toFixed(0)}%`
  const cell = (r: Result | undefined) => (r ? `${formatCount(opsPerSecond(r.nsPerOp))} (${formatNs(r.nsPerOp)}) ${spread(r)}` : '–')

  const readLabels = [...new Set(results.filter((r) => !r.label.includes('object') && !r.label.includes('string (memory') && !r.label.startsWith('alternative')).map((r) => r.label))]
  console.log('## Reads — median ops/s (ns/op) ±half the min–max spread of the rounds\n')
  console.log(
    markdownTable(
      ['case', 'sequential', `${IN_FLIGHT} in flight`],
      readLabels.map((label) => [label, cell(find(label, 'sequential') ?? find(label, 'sync')), find(label, 'sync') ? '(sync: n/a)' : cell(find(label, 'inflight'))]),
    ),
  )

  const immutability = results.filter((r) => r.label.includes('object') || r.label.includes('string (memory') || r.label.startsWith('alternative'))
  console.log('\n## Cost of immutability — 1 KB object, sequential, median ns/op\n')
  console.log(markdownTable(['case', 'ns/op', 'ops/s'], immutability.map((r) => [r.label, formatNs(r.nsPerOp), formatCount(opsPerSecond(r.nsPerOp))])))

  const ratio = (a: string, b: string, kind: 'sequential' | 'inflight', by: 'nsPerOp' | 'cpuNsPerOp' = 'nsPerOp') => {
    const x = find(a, kind)
    const y = find(b, kind)
    return x && y ? y[by] / x[by] : Number.NaN
  }
  const fcL1 = 'fragcache getOrSet — L1 hit'
  const fcL2 = 'fragcache getOrSet — L2 hit (fresh L1)'
  const rows: [string, string, string][] = [
    ['fragcache L1 hit ÷ bentocache L1 hit', fcL1, 'bentocache getOrSet — L1 hit'],
    ['fragcache L1 hit ÷ bentocache L1 hit (`serialize: false`)', fcL1, 'bentocache getOrSet — L1 hit, memory `serialize: false`'],
    ['fragcache L1 hit ÷ cacheable L1 hit', fcL1, 'cacheable getOrSet — L1 hit'],
    ['fragcache L1 hit ÷ raw lru-cache get in an async function', fcL1, 'raw lru-cache get in an async function (floor of any async API)'],
    ['fragcache L2 hit ÷ raw ioredis GET (auto-pipelining on)', fcL2, 'raw ioredis GET (auto-pipelining on)'],
    ['fragcache L2 hit ÷ raw ioredis GET (auto-pipelining off)', fcL2, 'raw ioredis GET (auto-pipelining off)'],
    ['fragcache L2 hit ÷ bentocache L2 hit', fcL2, 'bentocache getOrSet — L2 hit (fresh L1)'],
    ['fragcache L2 hit ÷ cacheable L2 hit', fcL2, 'cacheable getOrSet — L2 hit (fresh L1)'],
  ]
  console.log(
    '\n## Ratios — throughput of the first over the second (higher is better for fragcache). "By CPU time": this process\'s CPU time per operation, ' +
      'which is what bounds throughput with 100 in flight and is less disturbed by other load on the machine\n',
  )
  console.log(
    markdownTable(
      ['ratio', 'sequential', `${IN_FLIGHT} in flight`, `${IN_FLIGHT} in flight, by CPU time`],
      rows.map(([name, a, b]) => [
        name,
        formatRatio(ratio(a, b, 'sequential')),
        formatRatio(ratio(a, b, 'inflight')),
        formatRatio(ratio(a, b, 'inflight', 'cpuNsPerOp')),
      ]),
    ),
  )

  console.log('\n## Check: share of the "L2 hit" reads answered by Redis (separate pass, 2,000 sequential + 2,000 in flight)\n')
  console.log(markdownTable(['instance', 'answered by Redis'], shares.map((s) => [s.label, `${(s.redisShare * 100).toFixed(1)}%`])))
  console.log('')

  console.log('## Targets\n')
  for (const kind of ['sequential', 'inflight'] as const) {
    const name = kind === 'sequential' ? 'sequential' : `${IN_FLIGHT} in flight`
    const l1 = ratio(fcL1, 'bentocache getOrSet — L1 hit', kind)
    console.log(verdict(l1 >= 5, `fragcache L1-hit getOrSet ≥ 5× bentocache's, ${name}`, formatRatio(l1)))
    const l2 = ratio(fcL2, 'raw ioredis GET (auto-pipelining on)', kind)
    const l2Off = ratio(fcL2, 'raw ioredis GET (auto-pipelining off)', kind)
    const l2Cpu = kind === 'inflight' ? `; by CPU time ${formatRatio(ratio(fcL2, 'raw ioredis GET (auto-pipelining on)', kind, 'cpuNsPerOp'))}` : ''
    console.log(
      verdict(
        l2 >= 0.9,
        `fragcache L2 hit ≥ 0.9× raw ioredis GET (auto-pipelining on, as fragcache's own client), ${name}`,
        `${formatRatio(l2)}; vs auto-pipelining off ${formatRatio(l2Off)}${l2Cpu}`,
      ),
    )
  }
}

function positiveInt(text: string | undefined, fallback: number): number {
  const value = Number(text)
  return Number.isInteger(value) && value > 0 ? value : fallback
}

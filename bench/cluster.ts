/**
 * `npm run bench:cluster` — what fragcache costs on a Redis Cluster beside a single Redis, in one run, on private
 * servers (never the shared 6379): a redis-server, and a Cluster of 3 masters on loopback ports.
 *
 * For each setup, `ROUNDS` rounds of:
 * - L1 hit: `cache.get` of a key in the in-process LRU (no Redis), timed over `L1_OPS` calls;
 * - L2 hit: `cache.get` from a cache whose L1 holds one entry, alternating two keys, so every call reads Redis;
 * - 5-tag version read: `versions.get` of 5 tags after `versions.drop` of them, so every call reads Redis (one READ
 *   script; on the Cluster the 5 version keys share a hash tag, so it stays one call);
 * - bump: `versions.bump` of one tag (one EVAL, then the publish, acknowledged by no other process).
 * Each op is awaited before the next (latency, not throughput). The table gives the median over rounds of each
 * round's median (L1: of the mean per call), and the p90 over every sample.
 *
 * Environment: BENCH_ROUNDS (default 5), BENCH_OPS (default 2000 Redis calls per round).
 */
import { cpus, loadavg } from 'node:os'
import { type TieredCache, createCache } from '../src/index.ts'
import { type TestRedis, startRedis } from '../test/support/redis-topology.ts'
import { median, percentile } from './support/measure.ts'
import { formatNs, markdownTable } from './support/report.ts'
import { fragmentHtml } from './support/values.ts'

const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 5)
const OPS = positiveInt(process.env.BENCH_OPS, 2000)
const L1_OPS = 200_000
const TAGS = ['article:1', 'article:2', 'category:3', 'author:4', 'site']
const html = fragmentHtml(1024)
const quiet = { warn: () => {}, error: () => {} }

interface Row {
  setup: string
  what: string
  medians: number[]
  samples: number[]
}

/** Awaits `op` `count` times in a row; the time of each call in ns. */
async function timeEach(count: number, op: (i: number) => Promise<unknown>): Promise<number[]> {
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint()
    await op(i)
    times.push(Number(process.hrtime.bigint() - started))
  }
  return times
}

async function measureSetup(name: string, redis: TestRedis): Promise<Row[]> {
  // On the Cluster fragcache opens its own client from the seed URLs, as a site configured with them would.
  const option = redis.topology === 'cluster' ? redis.urls : (redis.urls[0] as string)
  const writer = createCache({ prefix: 'cbench', redis: option, logger: quiet })
  const reader = createCache({ prefix: 'cbench', redis: option, logger: quiet, l1: { max: 1 } })
  const caches: TieredCache[] = [writer, reader]
  await Promise.all(caches.map((cache) => cache.ready()))
  const rows: Row[] = ['L1 hit', 'L2 hit', '5-tag version read', 'bump'].map((what) => ({ setup: name, what, medians: [], samples: [] }))
  const [l1, l2, read, bump] = rows as [Row, Row, Row, Row]
  try {
    await writer.set('a', html, 3600)
    await writer.set('b', html, 3600)
    await writer.versions.get(TAGS)
    for (let round = 0; round < ROUNDS; round++) {
      // L1: too fast to time one call at a time; the mean per call of a batch, batches as samples.
      const batches: number[] = []
      for (let batch = 0; batch < 20; batch++) {
        const started = process.hrtime.bigint()
        for (let i = 0; i < L1_OPS / 20; i++) await writer.get('a')
        batches.push(Number(process.hrtime.bigint() - started) / (L1_OPS / 20))
      }
      l1.medians.push(median(batches))
      l1.samples.push(...batches)
      const l2Times = await timeEach(OPS, (i) => reader.get(i % 2 === 0 ? 'a' : 'b'))
      l2.medians.push(median(l2Times))
      l2.samples.push(...l2Times)
      const readTimes = await timeEach(OPS, () => {
        reader.versions.drop(TAGS)
        return reader.versions.get(TAGS)
      })
      read.medians.push(median(readTimes))
      read.samples.push(...readTimes)
      const bumpTimes = await timeEach(Math.min(OPS, 500), () => writer.versions.bump('article:1'))
      bump.medians.push(median(bumpTimes))
      bump.samples.push(...bumpTimes)
    }
    const { l2: stats } = reader.stats()
    if (stats.errors > 0 || stats.replyErrors > 0) throw new Error(`${name}: ${stats.errors} Redis errors, ${stats.replyErrors} reply errors during the run`)
  } finally {
    for (const cache of caches) await cache.close()
  }
  return rows
}

const single = await startRedis('single')
const cluster = await startRedis('cluster')
try {
  console.log(`bench:cluster · ${ROUNDS} rounds · ${OPS} Redis calls per round · node ${process.version} · ${cpus().length} CPUs · load ${loadavg()[0]?.toFixed(2)}`)
  const rows = [...(await measureSetup('single Redis', single)), ...(await measureSetup('Cluster, 3 masters', cluster))]
  const whats = ['L1 hit', 'L2 hit', '5-tag version read', 'bump']
  const table = whats.map((what) => {
    const [s, c] = [rows.find((r) => r.what === what && r.setup === 'single Redis'), rows.find((r) => r.what === what && r.setup !== 'single Redis')] as [Row, Row]
    return [what, formatNs(median(s.medians)), formatNs(percentile(s.samples, 90)), formatNs(median(c.medians)), formatNs(percentile(c.samples, 90)), `${(median(c.medians) / median(s.medians)).toFixed(2)}×`]
  })
  console.log(markdownTable(['operation', 'single p50', 'single p90', 'Cluster p50', 'Cluster p90', 'Cluster / single'], table))
  console.log(`(median over ${ROUNDS} rounds of each round's median; p90 over every sample)`)
} finally {
  await single.stop()
  await cluster.stop()
}
process.exit(0)

function positiveInt(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${JSON.stringify(value)}`)
  return n
}

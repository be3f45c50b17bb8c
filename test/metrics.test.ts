// OpenTelemetry metrics through the SDK's in-memory collection: every instrument moves under a scripted workload on a
// real Redis.
import { type Meter, metrics as otel } from '@opentelemetry/api'
import { type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { FragmentCache, sourceDigest } from '../src/fragments.ts'
import { InvalidArgumentError, createCache, registerCacheMetrics, runInRequestScope } from '../src/index.ts'
import { eventually } from './support/redis-server.ts'
import { suiteRedis } from './support/redis-suite.ts'

/** A reader the test collects from when it wants. */
class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

/** Every data point, as `name{attributes}` → value (a histogram's: its count). */
async function collect(reader: TestReader): Promise<Map<string, number>> {
  const { resourceMetrics } = await reader.collect()
  const points = new Map<string, number>()
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints as DataPoint<number | Histogram>[]) {
        const attributes = Object.entries(point.attributes)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(',')
        points.set(`${metric.descriptor.name}{${attributes}}`, typeof point.value === 'number' ? point.value : point.value.count)
      }
    }
  }
  return points
}

const metrics = suite('registerCacheMetrics')
const redis = suiteRedis(metrics)

metrics('is exported; a bad meter is refused naming it', async () => {
  assert.type(registerCacheMetrics, 'function')
  try {
    await registerCacheMetrics(createCache(), { meter: {} as Meter })
    assert.unreachable('should have thrown')
  } catch (error) {
    assert.instance(error, InvalidArgumentError)
    assert.is((error as Error).message, 'fragcache: registerCacheMetrics: meter must be an OpenTelemetry Meter; got an object (Object)')
  }
})

metrics('every instrument moves under a workload: tiers, names, computes, stale, locks, Redis errors, bus, L1', async () => {
  const reader = new TestReader()
  const provider = new MeterProvider({ readers: [reader] })
  let now = Date.now()
  const options = { prefix: 'metrics', busHeartbeatMs: 50, redisTimeoutMs: 150, redisBreaker: { threshold: 1, cooldownMs: 60_000 }, logger: { warn: () => {}, error: () => {} } }
  const cache = createCache({ ...options, redis: redis.server.url, clock: () => now })
  const registered = await registerCacheMetrics(cache, { meter: provider.getMeter('test'), attributes: { cache: 'a' } })
  const before = await collect(reader)

  await cache.ready()
  const other = await redis.cache('metrics', { busHeartbeatMs: 50 })
  await cache.getOrSet('k', () => 'v', { ttl: 600 }) // l1 and l2 misses, a compute
  await cache.get('k') // an l1 hit
  await runInRequestScope(async () => {
    await cache.get('k') // a request-scope miss, an l1 hit
    await cache.get('k') // a request-scope hit
  })
  await other.set('remote', 1, 600)
  await cache.get('remote') // an l2 hit
  const fragments = new FragmentCache(cache)
  const teaser = fragments.prepare({ name: 'teaser', ttl: 600, inputs: [], digest: sourceDigest('t'), template: 't.njk', line: 1 })
  await fragments.render(teaser, async () => '<p>t</p>') // miss
  await fragments.render(teaser, async () => '<p>t</p>') // hit
  await cache.getOrSet('s', () => 'old', { ttl: 1, grace: 600 })
  now += 2000
  assert.is(await cache.getOrSet('s', () => Promise.reject(new Error('db down'))), 'old') // stale on error
  // A lock held by the other process: this one waits for it.
  let release: () => void = () => {}
  let started: () => void = () => {}
  const computing = new Promise<void>((resolve) => (started = resolve))
  const held = other.getOrSet('locked', async () => {
    started()
    await new Promise<void>((resolve) => (release = resolve))
    return 'theirs'
  }, { ttl: 600 })
  await computing
  const waiting = cache.getOrSet('locked', () => 'mine', { ttl: 600 })
  await eventually(() => cache.stats().lockWaits === 1, 5000, 'a lock wait')
  release()
  assert.equal([await held, await waiting], ['theirs', 'theirs'])
  await eventually(() => cache.stats().l2.peers >= 1, 5000, 'the other process heard')
  const healthy = await collect(reader)
  // Redis frozen: a timeout, an error, an outage (the breaker opens at once), Redis down.
  redis.server.pause()
  try {
    assert.is(await cache.get('frozen'), undefined)
    await eventually(() => cache.stats().l2.down, 5000, 'Redis down')
  } finally {
    redis.server.resume()
  }
  const after = await collect(reader)
  registered.stop()

  const s = cache.stats()
  const a = 'cache=a'
  const expected: Record<string, number> = {
    [`fragcache.hits{${a},tier=request}`]: s.request.hits,
    [`fragcache.misses{${a},tier=request}`]: s.request.misses,
    [`fragcache.hits{${a},tier=l1}`]: s.l1.hits,
    [`fragcache.misses{${a},tier=l1}`]: s.l1.misses,
    [`fragcache.hits{${a},tier=l2}`]: s.l2.hits,
    [`fragcache.misses{${a},tier=l2}`]: s.l2.misses,
    [`fragcache.lookups{${a},kind=frag,name=teaser,state=hit}`]: 1,
    [`fragcache.lookups{${a},kind=frag,name=teaser,state=miss}`]: 1,
    [`fragcache.computes{${a}}`]: s.computes,
    [`fragcache.compute.errors{${a}}`]: 1,
    [`fragcache.compute.duration{${a}}`]: s.computes,
    [`fragcache.stale_serves{${a}}`]: 1,
    [`fragcache.lock.waits{${a}}`]: 1,
    [`fragcache.redis.errors{${a}}`]: s.l2.errors,
    [`fragcache.redis.timeouts{${a}}`]: s.l2.timeouts,
    [`fragcache.redis.outages{${a}}`]: 1,
    [`fragcache.redis.down{${a}}`]: 1,
    [`fragcache.l1.entries{${a}}`]: s.l1.entries,
    [`fragcache.l1.bytes{${a}}`]: s.l1.bytes,
  }
  assert.equal(Object.fromEntries(Object.keys(expected).map((name) => [name, after.get(name)])), expected)
  // Each moved: from zero (or absent) before the workload.
  for (const name of Object.keys(expected)) assert.ok((before.get(name) ?? 0) !== after.get(name), `${name} moved`)
  assert.ok(s.l2.timeouts >= 1 && s.l2.errors >= 1, 'a timeout and an error')
  assert.ok(s.request.hits >= 1 && s.l1.hits >= 1 && s.l2.hits >= 1, 'a hit at every tier')
  // The bus: down before ready(), connected with a peer once the other process spoke.
  assert.equal(
    [before.get(`fragcache.bus.connected{${a}}`), healthy.get(`fragcache.bus.connected{${a}}`), before.get(`fragcache.bus.peers{${a}}`)],
    [0, 1, 0],
  )
  assert.ok((healthy.get(`fragcache.bus.peers{${a}}`) ?? 0) >= 1, 'a peer')
  await cache.close()
})

metrics('without a meter: the global MeterProvider of @opentelemetry/api, loaded when needed', async () => {
  const reader = new TestReader()
  otel.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
  try {
    const cache = createCache()
    await cache.set('one', 1)
    const registered = await registerCacheMetrics(cache)
    const points = await collect(reader)
    registered.stop()
    assert.equal([points.get('fragcache.l1.entries{}'), points.get('fragcache.hits{tier=l1}')], [1, 0])
  } finally {
    otel.disable()
  }
})

metrics.run()

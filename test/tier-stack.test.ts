import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../src/index.ts'
import { countingClient } from '../bench/support/redis-counters.ts'
import { RedisServer, patientRedis } from './support/redis-server.ts'

const server = await RedisServer.start()
const open: TieredCache[] = []
const quiet = { warn: () => {}, error: () => {} }

const stack = suite('tier stack :: L2 reads')
stack.after(async () => {
  for (const cache of open) await cache.close()
  await server.stop()
})

stack('concurrent reads of one key share one GET (a miss and a hit)', async () => {
  const counting = countingClient(server.port)
  const cache = createCache({ prefix: 'co', redis: counting.client, ...patientRedis, logger: quiet, l1: { max: 1 } })
  open.push(cache)
  await cache.ready()
  counting.take()
  assert.equal(await Promise.all(Array.from({ length: 5 }, () => cache.get('absent'))), Array(5).fill(undefined))
  assert.is(counting.take().byName.get('get') ?? 0, 1, 'five concurrent misses, one GET')
  await cache.set('present', 'here')
  await cache.set('evict', 'the only L1 slot') // L1 holds one entry: 'present' now comes from Redis
  counting.take()
  assert.equal(await Promise.all(Array.from({ length: 5 }, () => cache.get('present'))), Array(5).fill('here'))
  assert.is(counting.take().byName.get('get') ?? 0, 1, 'five concurrent L2 hits, one GET')
  assert.is(cache.stats().l2.hits, 5)
  counting.client.disconnect()
})

stack.run()

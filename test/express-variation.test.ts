import express from 'express'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache, markPrivate } from '../src/index.ts'
import { cachePage, requestScope } from '../src/express/index.ts'
import { call, withServer } from './support/http.ts'
import { patientRedis } from './support/redis-server.ts'
import { TOPOLOGIES, type TestRedis, startRedis } from './support/redis-topology.ts'

const redises: TestRedis[] = []
for (const topology of TOPOLOGIES) redises.push(await startRedis(topology))
const quiet = { warn: () => {}, error: () => {} }
const open: TieredCache[] = []

/**
 * A shared page (no `vary`) whose sidebar fragment holds a per-user greeting (`vary: ['user']`). Who the visitor is
 * comes from a header the request scope reads (a cookie would bypass the page cache altogether).
 */
function siteOn(cache: TieredCache) {
  const renders = { page: 0, greeting: 0 }
  const app = express()
  app.use(requestScope(cache, { contexts: { user: (req) => req.get('x-user') ?? null } }))
  app.use((req, res, next) => {
    const id = req.get('x-user')
    res.locals.user = id === undefined ? null : markPrivate('user', { id, name: id === 'alice' ? 'Alice' : 'Bob' })
    next()
  })
  app.get('/home', cachePage(cache, { ttl: 300 }), async (_req, res) => {
    renders.page += 1
    const user = res.locals.user as { name: string } | null
    const greeting = await cache.getOrSet('greeting', () => (renders.greeting++, `Hello ${user?.name ?? 'guest'}`), { vary: 'user' })
    res.type('html').send(`<main>Shared news</main><aside>${greeting}</aside>`)
  })
  return { app, renders }
}

const variation = suite('cachePage :: variation bubbles up to the page')
variation.after(async () => {
  for (const cache of open) await cache.close()
  for (const redis of redises) await redis.stop()
})

for (const [name, make] of [
  ['memory', () => createCache({ logger: quiet })],
  ...redises.map((redis) => [`redis :: ${redis.topology}`, () => createCache({ prefix: `pv${open.length}`, redis: redis.cacheRedisOption(), ...patientRedis, logger: quiet })] as const),
] as const) {
  variation(`${name} :: a page holding a per-user fragment is stored per user: Bob never gets Alice's page, a guest neither`, async () => {
    const cache = make()
    open.push(cache)
    await cache.ready()
    const { app, renders } = siteOn(cache)
    await withServer(app, async (base) => {
      const get = async (user?: string) => {
        const reply = await call(`${base}/home`, { headers: user === undefined ? {} : { 'x-user': user } })
        return `${reply.cache} ${reply.body}`
      }
      assert.is(await get('alice'), 'MISS <main>Shared news</main><aside>Hello Alice</aside>')
      assert.is(await get('bob'), 'MISS <main>Shared news</main><aside>Hello Bob</aside>')
      assert.is(await get(), 'MISS <main>Shared news</main><aside>Hello guest</aside>')
      assert.is(await get('alice'), 'HIT <main>Shared news</main><aside>Hello Alice</aside>')
      assert.is(await get('bob'), 'HIT <main>Shared news</main><aside>Hello Bob</aside>')
      assert.is(await get(), 'HIT <main>Shared news</main><aside>Hello guest</aside>')
      assert.equal(renders, { page: 3, greeting: 3 })
    })
  })
}

variation.run()

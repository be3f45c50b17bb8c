// What the declarations promise a caller, checked by the compiler only (never run).
import express from 'express'
import { type CacheOptions, createCache } from 'fragcache'
import { cachePage, requestScope } from 'fragcache/express'
import type { Cluster, Redis } from 'ioredis'

const cache = createCache()

export const visits: Promise<number> = cache.get('visits', 0)
// @ts-expect-error without a default, a miss is undefined
export const unsure: Promise<number> = cache.get('visits')
export const named: Promise<string | undefined> = cache.get<string>('name')

declare const client: Redis
declare const cluster: Cluster
export const withRedis: CacheOptions = { redis: client }
export const withCluster: CacheOptions = { redis: cluster }
// @ts-expect-error not a Redis client
export const notRedis: CacheOptions = { redis: { get: 1 } }

const app = express()
app.use(requestScope(cache, { forceRefresh: (req) => req.query['refresh'] === '1' }))
app.get('/', cachePage(cache, { ttl: 60, vary: ['accept-language'] }), (_req, res) => {
  res.send('ok')
})

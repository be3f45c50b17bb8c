/**
 * A short-lived job, as a CLI or a queue worker runs one: it opens a cache, invalidates (bump, delete, invalidatePath,
 * each as argv says), closes the cache and exits at once. Run by tests with `node --import tsx short-job.ts URL PREFIX`.
 */
import { createCache } from '../../src/index.ts'
import { invalidatePath } from '../../src/express/index.ts'

const [urls, prefix] = process.argv.slice(2)
const url = urls?.includes(',') ? urls.split(',') : urls
if (url === undefined || prefix === undefined) throw new Error('usage: short-job.ts REDIS_URL[,CLUSTER_SEED_URL…] PREFIX')
// No ready(): the job starts working at once, as a script does.
const cache = createCache({ redis: url, prefix, redisTimeoutMs: 1000, logger: { warn: () => {}, error: () => {} } })
await cache.ready()
await cache.versions.bump('article:1')
await cache.delete('greeting')
await invalidatePath(cache, '/articles/')
await cache.close()
process.exit(0)

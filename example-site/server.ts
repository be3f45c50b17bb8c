// `npm start`: the demo on one process — in-process cache and SQLite, no Redis unless REDIS_URL is set.
import { startOptionsFromEnv, startSite } from './start.ts'

try {
  const options = startOptionsFromEnv()
  const { url } = await startSite(options)
  const cacheKind = options.redisUrl ? `Redis at ${options.redisUrl}` : 'in-process memory (set REDIS_URL for Redis)'
  console.log(`fragcache demo on ${url}/  — cache: ${cacheKind}; upstream delay ${options.upstreamDelayMs} ms`)
  console.log(`  pages: ${url}/nunjucks/  ${url}/eta/  · stats: ${url}/_cache  · log in: ${url}/login/alice`)
} catch (error) {
  console.error(`fragcache demo: ${(error as Error).message}`)
  process.exit(1)
}

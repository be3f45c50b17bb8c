import { createCacheWithEnvOptions } from './cache-env-options.ts'
import { type Site, createSite } from './site.ts'

/** What `npm start` and each cluster worker read from the environment. */
export interface StartOptions {
  port: number
  host: string
  redisUrl: string | undefined
  dbFile: string | undefined
  upstreamUrl: string | undefined
  upstreamDelayMs: number
}

/**
 * Reads the demo's settings from the environment: PORT (3000), HOST (127.0.0.1), REDIS_URL (none: memory only),
 * DB_FILE (example-site/data/site.db), UPSTREAM_URL (none: start one), UPSTREAM_DELAY_MS (2000).
 * @throws Error naming the variable when a number is not one.
 * @example
 * ```ts
 * startOptionsFromEnv({ PORT: '8080' }).port // 8080
 * ```
 */
export function startOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): StartOptions {
  return {
    port: integer(env, 'PORT', 3000),
    host: env.HOST || '127.0.0.1',
    redisUrl: env.REDIS_URL || undefined,
    dbFile: env.DB_FILE || undefined,
    upstreamUrl: env.UPSTREAM_URL || undefined,
    upstreamDelayMs: integer(env, 'UPSTREAM_DELAY_MS', 2000),
  }
}

/**
 * Creates the cache (Redis when `redisUrl` is set), builds the site and listens; stops cleanly on SIGINT/SIGTERM.
 * @example
 * ```ts
 * const { site } = await startSite(startOptionsFromEnv())
 * ```
 */
export async function startSite(options: StartOptions): Promise<{ site: Site; url: string }> {
  // CACHE_LOCK, CACHE_GRACE and CACHE_SOFT_TIMEOUT_MS, for bench:stampede.
  const cache = createCacheWithEnvOptions({ prefix: 'fragcache-demo', redis: options.redisUrl })
  if (options.redisUrl) {
    try {
      await cache.ready()
    } catch (error) {
      await cache.close()
      throw new Error(`Cannot reach Redis at REDIS_URL=${options.redisUrl}: ${(error as Error).message}`, { cause: error })
    }
  }
  const site = await createSite({
    cache,
    dbFile: options.dbFile,
    upstreamUrl: options.upstreamUrl,
    upstreamDelayMs: options.upstreamDelayMs,
  })
  const server = await site.listen(options.port, options.host)
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  const stop = async () => {
    await site.close()
    await cache.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return { site, url: `http://${options.host}:${port}` }
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number of at least 0; got "${raw}"`)
  return value
}

import type { Server } from 'node:http'
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
  let server: Server
  try {
    server = await site.listen(options.port, options.host)
  } catch (error) {
    await site.close()
    await cache.close()
    throw (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? portInUse(options, error) : error
  }
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

/** A port another process holds (often a demo still running), with the ways out. */
function portInUse({ host, port }: StartOptions, cause: unknown): Error {
  return new Error(
    `port ${port} on ${host} is already in use (another demo still running?): stop that process, or start on another ` +
      `port: PORT=0 for any free one (printed), or e.g. PORT=3001`,
    { cause },
  )
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number of at least 0; got "${raw}"`)
  return value
}

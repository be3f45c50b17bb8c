import { type CacheOptions, type TieredCache, createCache } from '../src/index.ts'

/**
 * The stampede options a benchmark gives the demo through the environment: CACHE_LOCK (`0`: `lock: false`; `1` or
 * unset: the library's default), CACHE_GRACE (seconds), CACHE_SOFT_TIMEOUT_MS. Untyped: they are being added to
 * `createCache`, which checks them.
 * @throws Error naming the variable when its value is not one it takes.
 * @example
 * ```ts
 * stampedeOptionsFromEnv({ CACHE_LOCK: '0', CACHE_GRACE: '0' }) // { lock: false, grace: 0 }
 * ```
 */
export function stampedeOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const options: Record<string, unknown> = {}
  const lock = env.CACHE_LOCK
  if (lock === '0') options.lock = false
  else if (lock !== undefined && lock !== '' && lock !== '1') throw new Error(`CACHE_LOCK must be 0 or 1; got "${lock}"`)
  const grace = number(env, 'CACHE_GRACE')
  if (grace !== undefined) options.grace = grace
  const softTimeoutMs = number(env, 'CACHE_SOFT_TIMEOUT_MS')
  if (softTimeoutMs !== undefined) options.softTimeoutMs = softTimeoutMs
  return options
}

/**
 * `createCache(base)` with the options of {@link stampedeOptionsFromEnv}. A fragcache that does not know one of them
 * yet gets `base` alone: `lock: false` and `grace: 0` are what it does anyway; anything else is said on stderr.
 * @example
 * ```ts
 * const cache = createCacheWithEnvOptions({ prefix: 'fragcache-demo', redis: process.env.REDIS_URL })
 * ```
 */
export function createCacheWithEnvOptions(base: CacheOptions, env: NodeJS.ProcessEnv = process.env): TieredCache {
  const extra = stampedeOptionsFromEnv(env)
  try {
    return createCache({ ...base, ...extra } as CacheOptions)
  } catch (error) {
    const unknown = error instanceof Error ? /unknown option "([^"]+)"/.exec(error.message)?.[1] : undefined
    if (unknown === undefined || !(unknown in extra)) throw error
    const changed = Object.entries(extra).filter(([name, value]) => !(name === 'lock' && value === false) && !(name === 'grace' && value === 0))
    if (changed.length > 0) console.warn(`fragcache demo: this fragcache has no "${unknown}" option; ignoring ${changed.map(([n, v]) => `${n}=${String(v)}`).join(', ')}`)
    return createCache(base)
  }
}

function number(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of at least 0; got "${raw}"`)
  return value
}

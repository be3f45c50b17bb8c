/**
 * Time to live, as Django reads it: seconds, `null` for no expiry, 0 or less for "do not store".
 */
import { InvalidArgumentError } from './errors.ts'

/**
 * A time to live in seconds, as Django reads one: `null` keeps the value until it is deleted or evicted,
 * `0` or less means "do not store", `undefined` means the cache's default.
 */
export type Ttl = number | null

/**
 * Checks a TTL given by a caller, naming what was wrong.
 * @throws InvalidArgumentError for anything but a finite number or null.
 * @example
 * ```ts
 * checkTtl(300, 'set')      // 300
 * checkTtl('300', 'set')    // throws: fragcache: set: ttl must be a number of seconds or null; got "300"
 * ```
 */
export function checkTtl(ttl: unknown, where: string): Ttl {
  if (ttl === null) return null
  if (typeof ttl === 'number' && Number.isFinite(ttl)) return ttl
  const shown = typeof ttl === 'string' ? JSON.stringify(ttl) : String(ttl)
  throw new InvalidArgumentError(`fragcache: ${where}: ttl must be a number of seconds or null; got ${shown}`)
}

/** The absolute expiry for a TTL from `now`: null for none, undefined for "do not store". */
export function expiryFor(ttl: Ttl, now: number): number | null | undefined {
  if (ttl === null) return null
  if (ttl <= 0) return undefined
  return now + Math.ceil(ttl * 1000)
}

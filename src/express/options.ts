// The options of the page cache: their types, defaults, and the checks that run before any request.
import type { Request } from 'express'
import { InvalidArgumentError, describeValue } from '../errors.ts'
import { checkKnownOptions } from '../options.ts'
import { TieredCache } from '../tiered-cache.ts'
import { type Ttl, checkTtl } from '../ttl.ts'

/** Options of `cachePage` and `cacheSite`. Every one has a default; an unknown option is an error. */
export interface PageCacheOptions {
  /** Seconds a page is kept; null for no expiry. Default: the cache's `ttl`. */
  ttl?: Ttl
  /**
   * What the page varies by besides method, path and query: request header names (`'accept-language'`) and
   * cookies (`'cookie:lang'`). Their values are hashed into the key, and the headers are added to `Vary`.
   * Naming `'authorization'`, a session cookie (`'cookie:sid'`) or `'cookie'` caches per credential.
   */
  vary?: readonly string[]
  /** Data-version tags the page depends on, besides those its fragments record. */
  deps?: (req: Request) => readonly string[]
  /** Statuses that are stored. Default `[200]`. */
  statuses?: readonly number[]
  /**
   * Host names (no port) that are part of the key, for sites whose pages differ by host. When set, a request
   * for any other host bypasses the cache, so a forged `Host` can never poison a stored page. When unset,
   * the host is not part of the key: pages must not show it.
   */
  allowedHosts?: readonly string[]
  /** Cookies that mean "signed in": a request carrying one bypasses the cache. Default `['connect.sid']`. */
  sessionCookies?: readonly string[]
  /** A body larger than this is streamed through and not stored. Default 1 MiB. */
  maxBodyBytes?: number
  /** Query parameters left out of the key (tracking parameters, a `refresh` flag); the page must not depend on them. */
  ignoreQuery?: readonly string[]
  /** Requests for which the cache is not consulted at all (`X-Cache: BYPASS`). */
  skip?: (req: Request) => boolean
}

/** {@link PageCacheOptions} checked, with defaults. */
export interface ResolvedPageOptions {
  readonly where: string
  readonly ttl: Ttl | undefined
  readonly varyHeaders: readonly string[]
  readonly varyCookies: readonly string[]
  readonly varyAllCookies: boolean
  readonly deps: ((req: Request) => readonly string[]) | undefined
  readonly statuses: ReadonlySet<number>
  readonly allowedHosts: ReadonlySet<string> | undefined
  readonly sessionCookies: readonly string[]
  readonly maxBodyBytes: number
  readonly ignoreQuery: ReadonlySet<string>
  readonly skip: ((req: Request) => boolean) | undefined
  readonly clock: () => number
}

const KNOWN = ['ttl', 'vary', 'deps', 'statuses', 'allowedHosts', 'sessionCookies', 'maxBodyBytes', 'ignoreQuery', 'skip']
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
const COOKIE_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HOST_NAME = /^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/
const DEFAULT_MAX_BODY = 1024 * 1024

/** Checks that `cache` is a fragcache cache. */
export function checkCache(cache: unknown, where: string): asserts cache is TieredCache {
  if (!(cache instanceof TieredCache)) {
    throw new InvalidArgumentError(`fragcache: ${where} needs a cache made by createCache(); got ${describeValue(cache)}`)
  }
}

/**
 * Validates the options of `cachePage`/`cacheSite` up front, with messages that name the option.
 * @throws InvalidArgumentError naming the first bad option.
 */
export function checkPageOptions(cache: TieredCache, options: PageCacheOptions, where: string): ResolvedPageOptions {
  checkKnownOptions(options, KNOWN, where)
  const vary = list(options.vary, 'vary', where).map((entry): { cookie: string } | { header: string } => {
    const text = typeof entry === 'string' ? entry.trim() : entry
    const lower = typeof text === 'string' ? text.toLowerCase() : text
    if (typeof lower === 'string' && lower.startsWith('cookie:') && COOKIE_NAME.test((text as string).slice(7))) {
      return { cookie: (text as string).slice(7) }
    }
    if (typeof lower === 'string' && HEADER_NAME.test(lower)) return { header: lower }
    throw new InvalidArgumentError(
      `fragcache: ${where}: vary entries must be header names ("accept-language") or "cookie:NAME"; got ${JSON.stringify(entry) ?? String(entry)}`,
    )
  })
  const statuses = list(options.statuses ?? [200], 'statuses', where).map((status) => {
    if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 599 || status === 206 || status === 304) {
      throw new InvalidArgumentError(
        `fragcache: ${where}: statuses must be HTTP status codes from 200 to 599 other than 206 and 304; got ${describeValue(status)}`,
      )
    }
    return status as number
  })
  const hosts =
    options.allowedHosts === undefined
      ? undefined
      : list(options.allowedHosts, 'allowedHosts', where).map((host) => {
          const lower = typeof host === 'string' ? host.toLowerCase() : host
          if (typeof lower !== 'string' || !HOST_NAME.test(lower)) {
            throw new InvalidArgumentError(`fragcache: ${where}: allowedHosts must be host names without a port; got ${describeValue(host)}`)
          }
          return lower
        })
  const sessionCookies = list(options.sessionCookies ?? ['connect.sid'], 'sessionCookies', where).map((name) => {
    if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
      throw new InvalidArgumentError(`fragcache: ${where}: sessionCookies must be cookie names; got ${describeValue(name)}`)
    }
    return name
  })
  const ignoreQuery = list(options.ignoreQuery ?? [], 'ignoreQuery', where).map((name) => {
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError(`fragcache: ${where}: ignoreQuery must be query parameter names; got ${describeValue(name)}`)
    }
    return name
  })
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new InvalidArgumentError(`fragcache: ${where}: maxBodyBytes must be a positive integer; got ${describeValue(maxBodyBytes)}`)
  }
  const cookies = vary.flatMap((v) => ('cookie' in v ? [v.cookie] : []))
  const headers = vary.flatMap((v) => ('header' in v ? [v.header] : []))
  return {
    where,
    ttl: options.ttl === undefined ? undefined : checkTtl(options.ttl, where),
    varyHeaders: [...new Set(headers)],
    varyCookies: [...new Set(cookies)],
    varyAllCookies: headers.includes('cookie'),
    deps: optionalFunction(options.deps, 'deps', where),
    statuses: new Set(statuses),
    allowedHosts: hosts === undefined ? undefined : new Set(hosts),
    sessionCookies,
    maxBodyBytes,
    ignoreQuery: new Set(ignoreQuery),
    skip: optionalFunction(options.skip, 'skip', where),
    // Age is measured on the clock the cache stores with.
    clock: () => cache.now(),
  }
}

/** Checks that an optional option is a function. */
export function optionalFunction<T>(value: T | undefined, name: string, where: string): T | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new InvalidArgumentError(`fragcache: ${where}: ${name} must be a function; got ${describeValue(value)}`)
  }
  return value
}

function list(value: unknown, name: string, where: string): unknown[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new InvalidArgumentError(`fragcache: ${where}: ${name} must be an array; got ${describeValue(value)}`)
  return value
}

// The options of the page cache: their types, defaults, and the checks that run before any request.
import type { Request } from 'express'
import { InvalidArgumentError, describeValue } from '../errors.ts'
import { checkKnownOptions } from '../options.ts'
import { TieredCache } from '../tiered-cache.ts'
import { type Ttl, checkTtl } from '../ttl.ts'

/**
 * Options of `cachePage` and `cacheSite`. Every one has a default; an unknown option is an error. A request is
 * served from and stored in the shared cache only when nothing in it may make the page personal or differ unseen:
 * no cookie outside `ignoreCookies` and `vary`, no `Authorization` unless `vary` names it, a host in `allowedHosts`
 * (when set), and a query Express reads whole, of names in `query` (when set) or `ignoreQuery`.
 */
export interface PageCacheOptions {
  /** Seconds a page is kept; null for no expiry. Default: the cache's `ttl`. */
  ttl?: Ttl
  /**
   * What the page varies by besides method, path, query and host: request header names (`'accept-language'`) and
   * cookies (`'cookie:lang'`). Their values are hashed into the key, and the headers are added to `Vary`. A
   * request may carry the cookies named here; naming `'authorization'`, a session cookie (`'cookie:sid'`) or the
   * whole `'cookie'` header caches per credential.
   */
  vary?: readonly string[]
  /** Data-version tags the page depends on, besides those its fragments record. */
  deps?: (req: Request) => readonly string[]
  /** Statuses that are stored. Default `[200]`. */
  statuses?: readonly number[]
  /**
   * Host names (no port) the page cache serves; a request for any other host bypasses it. The host is always
   * part of the key (the `Host` header as sent, and `X-Forwarded-Host` when Express trusts it), so a forged host
   * can never poison the page of another: this list bounds how many hosts can fill the cache.
   */
  allowedHosts?: readonly string[]
  /**
   * Cookies a request may carry and still be served a shared page, left out of the key: analytics cookies
   * (`'_ga'`) the page never reads. Any other cookie (one not in `vary` either) makes the request bypass the cache.
   */
  ignoreCookies?: readonly string[]
  /**
   * The query parameters the page reads: only these are part of the key, and a request with any other (outside
   * `ignoreQuery`) bypasses the cache, so junk parameters cannot fill it. Default: every parameter is part of the key.
   */
  query?: readonly string[]
  /** Query parameters left out of the key (tracking parameters, a `refresh` flag); the page must not depend on them. */
  ignoreQuery?: readonly string[]
  /** A body larger than this is streamed through and not stored. Default 1 MiB. */
  maxBodyBytes?: number
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
  /** The cookies a request may carry and still use the cache: `ignoreCookies` and the cookies of `vary`. */
  readonly allowedCookies: ReadonlySet<string>
  readonly query: ReadonlySet<string> | undefined
  readonly ignoreQuery: ReadonlySet<string>
  readonly maxBodyBytes: number
  readonly skip: ((req: Request) => boolean) | undefined
  readonly clock: () => number
}

const KNOWN = ['ttl', 'vary', 'deps', 'statuses', 'allowedHosts', 'ignoreCookies', 'query', 'ignoreQuery', 'maxBodyBytes', 'skip']
/** Options that are gone, and what took their place. */
const REPLACED: Readonly<Record<string, string>> = {
  sessionCookies:
    'sessionCookies was replaced: a request with any cookie bypasses the page cache, unless every cookie it carries is named in ignoreCookies (left out of the key) or in vary as "cookie:NAME" (part of the key)',
}
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
  for (const name of Object.keys(options ?? {})) {
    if (Object.hasOwn(REPLACED, name)) throw new InvalidArgumentError(`fragcache: ${where}: ${REPLACED[name]}`)
  }
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
  const ignoreCookies = names(options.ignoreCookies, 'ignoreCookies', where, (name) => COOKIE_NAME.test(name), 'cookie names')
  const query = options.query === undefined ? undefined : names(options.query, 'query', where, queryName, 'query parameter names')
  const ignoreQuery = names(options.ignoreQuery, 'ignoreQuery', where, queryName, 'query parameter names')
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new InvalidArgumentError(`fragcache: ${where}: maxBodyBytes must be a positive integer; got ${describeValue(maxBodyBytes)}`)
  }
  const cookies = vary.flatMap((v) => ('cookie' in v ? [v.cookie] : []))
  const headers = vary.flatMap((v) => ('header' in v ? [v.header] : []))
  disjoint(ignoreCookies, 'ignoreCookies', cookies, 'vary', where)
  disjoint(ignoreQuery, 'ignoreQuery', query ?? [], 'query', where)
  return {
    where,
    ttl: options.ttl === undefined ? undefined : checkTtl(options.ttl, where),
    varyHeaders: [...new Set(headers)],
    varyCookies: [...new Set(cookies)],
    varyAllCookies: headers.includes('cookie'),
    deps: optionalFunction(options.deps, 'deps', where),
    statuses: new Set(statuses),
    allowedHosts: hosts === undefined ? undefined : new Set(hosts),
    allowedCookies: new Set([...ignoreCookies, ...cookies]),
    query: query === undefined ? undefined : new Set(query),
    ignoreQuery: new Set(ignoreQuery),
    maxBodyBytes,
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

/** A list of names, each checked by `valid` (`what` says what they must be). */
function names(value: unknown, option: string, where: string, valid: (name: string) => boolean, what: string): string[] {
  return list(value, option, where).map((name) => {
    if (typeof name !== 'string' || !valid(name)) {
      throw new InvalidArgumentError(`fragcache: ${where}: ${option} must be ${what}; got ${describeValue(name)}`)
    }
    return name
  })
}

const queryName = (name: string): boolean => name.length > 0

/** Throws when a name is in two lists that contradict each other (left out of the key, and part of it). */
function disjoint(left: readonly string[], leftName: string, right: readonly string[], rightName: string, where: string): void {
  const both = left.find((name) => right.includes(name))
  if (both !== undefined) {
    throw new InvalidArgumentError(`fragcache: ${where}: "${both}" is in both ${leftName} (left out of the key) and ${rightName} (part of it)`)
  }
}

function list(value: unknown, name: string, where: string): unknown[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new InvalidArgumentError(`fragcache: ${where}: ${name} must be an array; got ${describeValue(value)}`)
  return value
}

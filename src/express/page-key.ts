// The key of a page (path, query, host, vary values) and the path tags that `invalidatePath` bumps.
import type { Request } from 'express'
import { InvalidArgumentError } from '../errors.ts'
import { stableHash } from '../keys.ts'
import type { TieredCache } from '../tiered-cache.ts'
import type { ResolvedPageOptions } from './options.ts'
import { keyedQuery } from './page-query.ts'

/** A page deeper than this is not cached: each directory costs a version tag. */
const MAX_PATH_SEGMENTS = 32
/** The longest tag the core accepts. */
const MAX_TAG = 200

/** Where a page is stored, and the path tags that invalidate it. */
export interface PageKey {
  /** `GET:/tournaments/5/bracket` kept readable, then a hash of the host, full path, query and vary values. */
  readonly fullKey: string
  readonly tags: readonly string[]
}

/**
 * The path as the client asked for it (the mount point included, query left out). Characters outside printable
 * ASCII are percent-encoded, so `/café` and `/caf%C3%A9` are one path.
 */
export function requestPath(req: Request): string {
  const url = req.originalUrl ?? req.url ?? '/'
  const query = url.indexOf('?')
  return encodePath(query < 0 ? url : url.slice(0, query))
}

/**
 * The host as a page can see it, for the key: the `Host` header as sent and, when Express reads the host from a
 * trusted `X-Forwarded-Host`, that one too; exact, port included, since a page may print any of them.
 *
 * Always part of the key, as in Varnish's default hash and Django's key (the absolute URI): a request with a forged
 * host can only store a page that requests with that same host get. Bypassing every host outside `allowedHosts`
 * instead would cache nothing until it is set, and sites serving several hosts would need the host keyed anyway;
 * `allowedHosts` bounds how many hosts can fill the cache.
 */
export function requestHost(req: Request): string {
  const sent = req.headers.host ?? ''
  // Without the header Express's req.host is the Host header, and asking it costs more than the rest of a key.
  if (req.headers['x-forwarded-host'] === undefined) return sent
  const seen = (req.host as string | undefined) ?? ''
  // A header value never holds a line feed: the two cannot run together.
  return seen === sent ? sent : `${seen}\n${sent}`
}

/** The cookies of a request, by name (first occurrence wins, as browsers send the most specific first). */
function requestCookies(req: Request): Map<string, string> {
  const cookies = new Map<string, string>()
  const header = req.headers.cookie
  if (typeof header !== 'string') return cookies
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    if (name === '' || cookies.has(name)) continue
    let value = part.slice(eq + 1).trim()
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1)
    cookies.set(name, value)
  }
  return cookies
}

/** The page's key: method GET (HEAD shares it), path, host, query and vary values; undefined when not cacheable. */
function keyFrom(cache: TieredCache, url: string, path: string, host: string, vary: Record<string, unknown>, o: ResolvedPageOptions): PageKey | undefined {
  const tags = pathTags(path)
  const query = keyedQuery(url, o)
  if (tags === undefined || query === undefined) return undefined
  return { fullKey: cache.keys.build('view', `GET:${path}`, [host, path, query, vary]), tags }
}

/** The values of the `vary` headers and cookies of a request, by `header` and `cookie:NAME`. */
function varyValues(req: Request, o: ResolvedPageOptions): Record<string, unknown> {
  const vary: Record<string, unknown> = {}
  for (const header of o.varyHeaders) vary[header] = req.headers[header] ?? null
  if (o.varyCookies.length > 0) {
    const cookies = requestCookies(req)
    for (const name of o.varyCookies) vary[`cookie:${name}`] = cookies.get(name) ?? null
  }
  return vary
}

/** Requests longer than this (URL and vary values) are keyed afresh each time, so the memo stays small. */
const MAX_MEMO_SIGNATURE = 2048
const MAX_MEMO_ENTRIES = 10_000

/**
 * The page keys of one page cache, memoized by what they are made of (host, URL, vary values): a hit then costs a
 * Map lookup instead of parsing the query and hashing. Bounded: cleared when full, and long requests are not kept.
 */
export class PageKeys {
  readonly #cache: TieredCache
  readonly #o: ResolvedPageOptions
  /** Host and URL alone tell requests apart when the key has no vary values. */
  readonly #noVary: boolean
  /** By host, then by the rest of the signature: the key, or null for a URL that cannot be cached. */
  readonly #known = new Map<string, Map<string, PageKey | null>>()
  #size = 0

  constructor(cache: TieredCache, o: ResolvedPageOptions) {
    this.#cache = cache
    this.#o = o
    this.#noVary = o.varyHeaders.length === 0 && o.varyCookies.length === 0
  }

  /**
   * The key of `req`; undefined when its URL cannot be cached: a path too deep, or a query that keeps it out
   * (see {@link keyedQuery}).
   */
  of(req: Request): PageKey | undefined {
    const url = req.originalUrl ?? req.url ?? '/'
    const host = requestHost(req)
    const vary = this.#noVary ? undefined : varyValues(req, this.#o)
    // Within one page cache every signature has the same shape (same vary names). Host and URL are looked up apart:
    // hashing the two costs less than joining them into one string to hash.
    const signature = vary === undefined ? url : JSON.stringify([url, vary])
    const known = this.#known.get(host)?.get(signature)
    if (known !== undefined) return known ?? undefined
    const key = keyFrom(this.#cache, url, requestPath(req), host, vary ?? {}, this.#o) ?? null
    if (signature.length + host.length <= MAX_MEMO_SIGNATURE) {
      if (this.#size >= MAX_MEMO_ENTRIES) {
        this.#known.clear()
        this.#size = 0
      }
      let byHost = this.#known.get(host)
      if (byHost === undefined) this.#known.set(host, (byHost = new Map()))
      byHost.set(signature, key)
      this.#size += 1
    }
    return key ?? undefined
  }
}

/**
 * The version tags a page at `path` depends on: one per directory on the way to it, and one for the page as a
 * directory of its own. `/t/5/bracket` → `path:/`, `path:/t/`, `path:/t/5/`, `path:/t/5/bracket/`.
 * Undefined when the path is too deep to cache.
 */
export function pathTags(path: string): string[] | undefined {
  const tags = [tagFor('/')]
  let slash = path.indexOf('/', 1)
  while (slash > 0) {
    tags.push(tagFor(path.slice(0, slash + 1)))
    if (tags.length > MAX_PATH_SEGMENTS) return undefined
    slash = path.indexOf('/', slash + 1)
  }
  if (!path.endsWith('/')) tags.push(tagFor(`${path}/`))
  return tags
}

/**
 * The tag `invalidatePath` bumps for `prefix`: always read as a directory, so `/t/5` and `/t/5/` both mean
 * "`/t/5`, `/t/5/` and everything under `/t/5/`" (never `/t/50`).
 * @throws InvalidArgumentError when `prefix` is not a path starting with "/" without a query or fragment.
 */
export function prefixTag(prefix: unknown): string {
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || /[?#]/.test(prefix)) {
    throw new InvalidArgumentError(
      `fragcache: invalidatePath: a path prefix must be a string starting with "/", without "?" or "#"; got ${JSON.stringify(prefix) ?? String(prefix)}`,
    )
  }
  const path = encodePath(prefix)
  return tagFor(path.endsWith('/') ? path : `${path}/`)
}

function tagFor(directory: string): string {
  // Express routes case-insensitively by default: one tag for every spelling, at worst clearing a little more.
  const tag = `path:${directory.toLowerCase()}`
  return tag.length <= MAX_TAG ? tag : `path#${stableHash(directory.toLowerCase())}`
}

function encodePath(path: string): string {
  return path.replace(/[^\x21-\x7e]+/g, (run) => encodeURIComponent(run))
}

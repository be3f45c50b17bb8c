// The key of a page (path, normalised query, host, vary values) and the path tags that `invalidatePath` bumps.
import type { Request } from 'express'
import { InvalidArgumentError } from '../errors.ts'
import { stableHash } from '../keys.ts'
import type { TieredCache } from '../tiered-cache.ts'
import type { ResolvedPageOptions } from './options.ts'

/** A page deeper than this is not cached: each directory costs a version tag. */
const MAX_PATH_SEGMENTS = 32
/** The longest tag the core accepts. */
const MAX_TAG = 200

/** Where a page is stored, and the path tags that invalidate it. */
export interface PageKey {
  /** `GET:/tournaments/5/bracket` kept readable, then a hash of the host, full path, normalised query and vary values. */
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

/** The query string with parameter order ignored (values of one name keep their order) and ignored names left out. */
export function normalisedQuery(req: Request, ignore: ReadonlySet<string>): string | null {
  const url = req.originalUrl ?? req.url ?? ''
  const start = url.indexOf('?')
  if (start < 0) return null
  const params = [...new URLSearchParams(url.slice(start + 1))].filter(([name]) => !ignore.has(name))
  if (params.length === 0) return null
  // Array.prototype.sort is stable: repeated names keep their relative order (`?a=1&a=2` differs from `?a=2&a=1`).
  params.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return new URLSearchParams(params).toString()
}

/** The cookies of a request, by name (first occurrence wins, as browsers send the most specific first). */
export function requestCookies(req: Request): Map<string, string> {
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

/** Builds the page's key from the request: method GET (HEAD shares it), path, query, host and vary values. */
function keyFrom(
  cache: TieredCache,
  req: Request,
  where: { path: string; host: string | null; tags: readonly string[] },
  vary: Record<string, unknown>,
  o: ResolvedPageOptions,
): PageKey {
  const { path, host, tags } = where
  const inputs = [host, path, normalisedQuery(req, o.ignoreQuery), vary]
  return { fullKey: cache.keys.build('view', `GET:${path}`, inputs), tags }
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
 * The page keys of one page cache, memoized by what they are made of (URL, host, vary values): a hit then costs a
 * Map lookup instead of parsing the query and hashing. Bounded: cleared when full, and long requests are not kept.
 */
export class PageKeys {
  readonly #cache: TieredCache
  readonly #o: ResolvedPageOptions
  /** The URL alone tells requests apart when the key has neither host nor vary values. */
  readonly #urlOnly: boolean
  /** By signature: the key, or null for a path too deep to cache. */
  readonly #known = new Map<string, PageKey | null>()

  constructor(cache: TieredCache, o: ResolvedPageOptions) {
    this.#cache = cache
    this.#o = o
    this.#urlOnly = o.allowedHosts === undefined && o.varyHeaders.length === 0 && o.varyCookies.length === 0
  }

  /** The key of `req` for `host` (null when hosts are not part of keys); undefined when the path is too deep to cache. */
  of(req: Request, host: string | null): PageKey | undefined {
    const url = req.originalUrl ?? req.url ?? '/'
    const vary = this.#urlOnly ? undefined : varyValues(req, this.#o)
    // Within one page cache every signature has the same shape (same vary names, host always or never).
    const signature = vary === undefined ? url : JSON.stringify([url, host, vary])
    const known = this.#known.get(signature)
    if (known !== undefined) return known ?? undefined
    const path = requestPath(req)
    const tags = pathTags(path)
    const key = tags === undefined ? null : keyFrom(this.#cache, req, { path, host, tags }, vary ?? {}, this.#o)
    if (signature.length <= MAX_MEMO_SIGNATURE) {
      if (this.#known.size >= MAX_MEMO_ENTRIES) this.#known.clear()
      this.#known.set(signature, key)
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

// A response as stored: what may be stored, its JSON form, its ETag, and its ready-to-send form.
import { hash } from 'node:crypto'
import { type OutgoingHttpHeaders, validateHeaderName, validateHeaderValue } from 'node:http'
import { isUtf8 } from 'node:buffer'
import type { CapturedResponse } from './response-tap.ts'

/** A response as stored: JSON, so it fits every tier. */
export interface StoredPage {
  readonly status: number
  readonly statusMessage: string | null
  /** Headers the view set or changed (those set before the page cache ran are this request's own). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>
  /** Headers the view removed. */
  readonly removed: readonly string[]
  /** The body: UTF-8 text as it is, anything else as base64. */
  readonly body: string
  readonly base64: boolean
  /** A strong ETag: the quoted SHA-1 (base64url) of the body. */
  readonly etag: string
  /** When it was stored, by the page cache's clock (for `Age`). */
  readonly storedAt: number
}

/** Headers that belong to one connection or one delivery, never to the stored page. */
const PER_DELIVERY = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'etag', 'content-length', 'age', 'x-cache', 'server-timing'])

/** The headers of a response, by lower-case name, values as strings. */
export type HeaderSnapshot = ReadonlyMap<string, string | readonly string[]>

/** The headers set on a response so far. */
export function snapshotHeaders(headers: OutgoingHttpHeaders): HeaderSnapshot {
  const out = new Map<string, string | readonly string[]>()
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out.set(name.toLowerCase(), Array.isArray(value) ? value.map(String) : String(value))
  }
  return out
}

/** What the page cache needs to judge a captured response. */
export interface StorePolicy {
  readonly statuses: ReadonlySet<number>
  /** Request headers the key varies by (lower case), plus `cookie` when it varies by a cookie. */
  readonly keyedHeaders: ReadonlySet<string>
}

/**
 * Why a captured response must not be stored, or undefined when it may be: a status not configured, a cookie
 * being set, `Cache-Control: private` or `no-store`, or a `Vary` on something the key does not include.
 */
export function unstorableReason(captured: CapturedResponse, before: HeaderSnapshot, policy: StorePolicy): string | undefined {
  if (!policy.statuses.has(captured.status)) return `status ${captured.status}`
  const after = snapshotHeaders(captured.headers)
  if (after.has('set-cookie')) return 'sets a cookie'
  const control = String(after.get('cache-control') ?? '').toLowerCase()
  if (/(^|[\s,])(private|no-store)($|[\s,=])/.test(control)) return `Cache-Control: ${control}`
  const varyBefore = new Set(fields(before.get('vary')))
  for (const field of fields(after.get('vary'))) {
    if (field === '*') return 'Vary: *'
    if (!varyBefore.has(field) && !policy.keyedHeaders.has(field)) return `Vary: ${field} is not part of the key`
  }
  return undefined
}

/** The stored form of a captured response; `before` are the headers that were set before the view ran. */
export function toStoredPage(captured: CapturedResponse, before: HeaderSnapshot, storedAt: number): StoredPage {
  const after = snapshotHeaders(captured.headers)
  const headers: Record<string, string | readonly string[]> = {}
  for (const [name, value] of after) {
    if (PER_DELIVERY.has(name)) continue
    if (JSON.stringify(before.get(name)) !== JSON.stringify(value)) headers[name] = value
  }
  const removed = [...before.keys()].filter((name) => !after.has(name) && !PER_DELIVERY.has(name))
  const text = isUtf8(captured.body)
  return {
    status: captured.status,
    statusMessage: captured.statusMessage ?? null,
    headers,
    removed,
    body: captured.body.toString(text ? 'utf8' : 'base64'),
    base64: !text,
    etag: etagOf(captured.body),
    storedAt,
  }
}

/** The body bytes of a stored page. */
export function bodyOf(page: StoredPage): Buffer {
  return Buffer.from(page.body, page.base64 ? 'base64' : 'utf8')
}

/** A stored page with what every delivery of it needs worked out once. */
export interface ReadyPage {
  readonly page: StoredPage
  /** The page's own headers as a flat `[name, value, …]` list, then its `ETag`. */
  readonly headers: readonly (string | readonly string[])[]
  /** The body bytes, decoded once and written as they are (no copy per hit, unlike a string). */
  readonly body: Buffer
  /** `Content-Length` of the body. */
  readonly length: string
}

/** Stored pages are frozen and shared (L1 hands out the same object every hit): their ready form is kept beside them. */
const ready = new WeakMap<object, ReadyPage>()

/** The ready form of a stored page, or undefined when `value` is not a {@link StoredPage}. */
export function readyPage(value: unknown): ReadyPage | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const known = ready.get(value)
  if (known !== undefined) return known
  if (!isStoredPage(value)) return undefined
  const headers: (string | readonly string[])[] = []
  for (const [name, value_] of Object.entries(value.headers)) headers.push(name, value_)
  headers.push('ETag', value.etag)
  const bytes = bodyOf(value)
  const page: ReadyPage = { page: value, headers, body: bytes, length: String(bytes.length) }
  if (Object.isFrozen(value)) ready.set(value, page)
  return page
}

/** A strong ETag for a body. */
export function etagOf(body: Buffer): string {
  return `"${hash('sha1', body, 'base64url')}"`
}

/**
 * True when `value` is a {@link StoredPage} that can be replayed as it is: the shape, a status Node accepts, header names
 * and values Node would send, a quoted ETag, a base64 body that is base64. Anything else under a page key (a value
 * fragcache did not write, or a corrupt one) is a miss, never a 500.
 */
export function isStoredPage(value: unknown): value is StoredPage {
  if (typeof value !== 'object' || value === null) return false
  const page = value as Record<string, unknown>
  if (!Number.isInteger(page.status) || (page.status as number) < 200 || (page.status as number) > 599) return false
  if (page.statusMessage !== null && (typeof page.statusMessage !== 'string' || /[\r\n]/.test(page.statusMessage))) return false
  if (typeof page.body !== 'string' || typeof page.base64 !== 'boolean' || typeof page.storedAt !== 'number') return false
  if (page.base64 && !BASE64.test(page.body)) return false
  if (typeof page.etag !== 'string' || !ETAG.test(page.etag)) return false
  if (!Array.isArray(page.removed) || !page.removed.every((name) => typeof name === 'string' && sendable(name, ''))) return false
  if (typeof page.headers !== 'object' || page.headers === null || Array.isArray(page.headers)) return false
  return Object.entries(page.headers as Record<string, unknown>).every(([name, header]) =>
    Array.isArray(header) ? header.every((item) => typeof item === 'string' && sendable(name, item)) : typeof header === 'string' && sendable(name, header),
  )
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const ETAG = /^"[\w-]+"$/

/** Whether Node would send this header (`setHeader` throws for an invalid name or value). */
function sendable(name: string, value: string): boolean {
  try {
    validateHeaderName(name)
    validateHeaderValue(name, value)
    return true
  } catch {
    return false
  }
}

/** True when an `If-None-Match` header matches `etag` (weak comparison, as RFC 9110 asks for GET and HEAD). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  if (ifNoneMatch.trim() === '*') return true
  const bare = etag.replace(/^W\//, '')
  return ifNoneMatch.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === bare)
}

function fields(value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return []
  const text = typeof value === 'string' ? value : value.join(',')
  return text
    .split(',')
    .map((field) => field.trim().toLowerCase())
    .filter((field) => field !== '')
}

/**
 * How an entry is stored in Redis, written once: the envelope (`encodeEntry`/`decodeEntry`) and, beside it, the Lua
 * scripts that read the same envelope inside Redis (`add`, `touch`, `incr`). Change one and the other is in view.
 *
 * `fc2|expiresAt|graceUntil|computeMs|type|bytes|varies|deps` + newline + payload
 * - `expiresAt`, `graceUntil`: epoch ms (0: never); an entry is fresh before `expiresAt` and kept (stale) until `graceUntil`;
 * - `type`: `s` a string stored as it is (HTML is read back without a JSON parse), `j` JSON, `r` a variation redirect;
 * - `bytes`: the payload's length in bytes, so a truncated value is recognised (and never output);
 * - `varies`: the request contexts the value varies by, comma-separated; `deps`: the data versions, as JSON.
 * Scripts judge expiry by the cache's clock (ARGV), never by Redis's TTL alone, so an injected clock rules every tier.
 */
import { type Deps, type Entry, ENTRY_OVERHEAD, deepFreeze } from '../entry.ts'
import { LuaScript } from './redis-client.ts'

const MARKER = 'fc2|'
const NEWLINE = 10

/**
 * The Redis form of an entry.
 * @example
 * ```ts
 * encodeEntry(entry, 'hello') // 'fc2|1764…|1764…|3|s|5||\nhello'
 * ```
 */
export function encodeEntry(entry: Entry, payload: string): string {
  const deps = entry.deps ? JSON.stringify(entry.deps) : ''
  const varies = entry.varies ? entry.varies.join(',') : ''
  return `${MARKER}${entry.expiresAt ?? 0}|${entry.graceUntil ?? 0}|${Math.round(entry.computeMs)}|${entry.kind}|${Buffer.byteLength(payload)}|${varies}|${deps}\n${payload}`
}

/** What {@link decodeEntry} makes of a value that is not a whole fragcache entry. */
export type Undecodable = 'older' | 'corrupt'

/**
 * Parses what Redis holds: the entry, `'older'` for an envelope of an earlier fragcache (a miss), or `'corrupt'` for a
 * value fragcache did not write whole (foreign, truncated, or not what its header says).
 * @example
 * ```ts
 * decodeEntry(Buffer.from('fc2|0|0|3|s|5||\nhello')) // { value: 'hello', … }
 * ```
 */
export function decodeEntry(raw: Buffer): Entry | Undecodable {
  // Read straight from the bytes: on an L2 hit this runs once per read, and splitting the header into strings
  // cost a third of fragcache's own CPU time per hit.
  if (!startsWithMarker(raw, TWO)) return startsWithMarker(raw, ONE) ? 'older' : 'corrupt'
  const newline = raw.indexOf(NEWLINE, MARKER.length)
  if (newline < 0) return 'corrupt'
  const expiresEnd = raw.indexOf(PIPE, MARKER.length)
  const graceEnd = expiresEnd < 0 || expiresEnd > newline ? -1 : raw.indexOf(PIPE, expiresEnd + 1)
  const computeEnd = graceEnd < 0 || graceEnd > newline ? -1 : raw.indexOf(PIPE, graceEnd + 1)
  // `kind` is one byte, then `|`; then the payload's byte length, the varies and the deps (JSON, which may hold a `|`).
  const kindByte = computeEnd < 0 || computeEnd > newline ? -1 : raw[computeEnd + 1]
  const bytesEnd = kindByte === -1 || raw[computeEnd + 2] !== PIPE ? -1 : raw.indexOf(PIPE, computeEnd + 3)
  const variesEnd = bytesEnd < 0 || bytesEnd > newline ? -1 : raw.indexOf(PIPE, bytesEnd + 1)
  if (variesEnd < 0 || variesEnd > newline) return 'corrupt'
  const kind = kindByte === S ? 's' : kindByte === J ? 'j' : kindByte === R ? 'r' : undefined
  const expiresAt = digits(raw, MARKER.length, expiresEnd)
  const graceUntil = digits(raw, expiresEnd + 1, graceEnd)
  const computeMs = digits(raw, graceEnd + 1, computeEnd)
  const start = newline + 1
  if (kind === undefined || expiresAt < 0 || graceUntil < 0 || computeMs < 0 || digits(raw, computeEnd + 3, bytesEnd) !== raw.length - start) return 'corrupt'
  try {
    const deps = variesEnd + 1 === newline ? null : (JSON.parse(raw.toString('utf8', variesEnd + 1, newline)) as unknown)
    if (deps !== null && !isDeps(deps)) return 'corrupt'
    const text = raw.toString('utf8', start)
    const value = kind === 's' ? text : deepFreeze(JSON.parse(text) as unknown)
    if (kind === 'r' && !isContextList(value)) return 'corrupt'
    return {
      value,
      kind,
      expiresAt: expiresAt === 0 ? null : expiresAt,
      graceUntil: graceUntil === 0 ? null : graceUntil,
      computeMs,
      deps,
      varies: variesEnd === bytesEnd + 1 ? null : raw.toString('utf8', bytesEnd + 1, variesEnd).split(','),
      size: raw.length - start + ENTRY_OVERHEAD,
    }
  } catch {
    return 'corrupt'
  }
}

const PIPE = 0x7c
const S = 0x73
const J = 0x6a
const R = 0x72
const TWO = 0x32
const ONE = 0x31

/** Whether `raw` starts with `fc<version>|`. */
function startsWithMarker(raw: Buffer, version: number): boolean {
  return raw.length >= 4 && raw[0] === 0x66 && raw[1] === 0x63 && raw[2] === version && raw[3] === PIPE
}

/** The decimal integer in `raw[from, to)`: -1 unless it is 1–16 digits and nothing else (a safe integer ≥ 0). */
function digits(raw: Buffer, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1
  let value = 0
  for (let i = from; i < to; i++) {
    const digit = (raw[i] as number) - 0x30
    if (digit < 0 || digit > 9) return -1
    value = value * 10 + digit
  }
  return Number.isSafeInteger(value) ? value : -1
}

/**
 * The PX (milliseconds to live) of an entry kept until `keptUntil` at `now`: never 0 or less, which Redis refuses;
 * null for no expiry.
 * @example
 * ```ts
 * pxFor(1_000, 999) // 1
 * ```
 */
export function pxFor(keptUntil: number | null, now: number): number | null {
  return keptUntil === null ? null : Math.max(1, keptUntil - now)
}

/** Shared Lua: `fresh(raw, now)` is true when `raw` is a fragcache entry not expired at `now` (the header's first field). */
const FRESH = `
local function fresh(raw, now)
  if not raw or string.sub(raw, 1, 4) ~= 'fc2|' then return false end
  local expires = tonumber(string.match(raw, '^fc2|(%d+)|'))
  return expires ~= nil and (expires == 0 or expires > now)
end`

/** SET NX by the cache's clock: stores unless a fresh entry is there. ARGV: now, the envelope, PX (0 = none). */
export const ADD = new LuaScript(`${FRESH}
if fresh(redis.call('GET', KEYS[1]), tonumber(ARGV[1])) then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)

/** A new expiry, in the envelope and on the key, for a fresh entry. ARGV: now, expiresAt, graceUntil (0 = none), PX (0 = none). */
export const TOUCH = new LuaScript(`${FRESH}
local raw = redis.call('GET', KEYS[1])
if not fresh(raw, tonumber(ARGV[1])) then return 0 end
local rest = string.match(raw, '^fc2|%d+|%d+(|.*)$')
if not rest then return 0 end
local updated = 'fc2|' .. ARGV[2] .. '|' .. ARGV[3] .. rest
if ARGV[4] == '0' then redis.call('SET', KEYS[1], updated) else redis.call('SET', KEYS[1], updated, 'PX', ARGV[4]) end
return 1`)

/** Adds ARGV[2] to a fresh integer entry (a JSON payload, type `j`), keeping its TTL. ARGV[1]: now. */
export const INCR = new LuaScript(`${FRESH}
local raw = redis.call('GET', KEYS[1])
if not fresh(raw, tonumber(ARGV[1])) then return {'missing'} end
local newline = string.find(raw, '\\n', 1, true)
if not newline then return {'nan'} end
-- Only a JSON payload can be a number: a string stored as it is ('s') stays a string, even "5".
local head, tail = string.match(string.sub(raw, 1, newline - 1), '^(fc2|[^|]*|[^|]*|[^|]*|j|)%d+(|.*)$')
if not head then return {'nan'} end
local text = string.sub(raw, newline + 1)
if not string.match(text, '^%-?%d+$') then return {'nan'} end
local out = string.format('%d', tonumber(text) + tonumber(ARGV[2]))
redis.call('SET', KEYS[1], head .. #out .. tail .. '\\n' .. out, 'KEEPTTL')
return {'ok', out}`)

function isDeps(value: unknown): value is Deps {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  return Object.values(value).every((v) => typeof v === 'number')
}

function isContextList(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && value.every((name) => typeof name === 'string')
}


/**
 * How an entry is stored in Redis, written once: the envelope (`encodeEntry`/`decodeEntry`) and, beside it, the Lua
 * scripts that read the same envelope inside Redis (`touch`, `incr`). Change one and the other is in view.
 */
import { type Deps, type Entry, ENTRY_OVERHEAD, deepFreeze } from '../entry.ts'
import { LuaScript } from './redis-client.ts'

/** Envelope marker: anything not starting with it was not written by fragcache. */
const MARKER = 'fc1|'

/**
 * The Redis form of an entry: `fc1|expiresAt|computeMs|type|depsJSON` + newline + payload, where `type` is `s` for a
 * string stored as it is (an HTML fragment is read back without a JSON parse or a copy) and `j` for JSON; 0 = no expiry.
 * @example
 * ```ts
 * encodeEntry(entry, 'hello') // 'fc1|1764…|3|s|\nhello'
 * ```
 */
export function encodeEntry(entry: Entry, payload: string): string {
  const deps = entry.deps ? JSON.stringify(entry.deps) : ''
  const type = typeof entry.value === 'string' ? 's' : 'j'
  return `${MARKER}${entry.expiresAt ?? 0}|${Math.round(entry.computeMs)}|${type}|${deps}\n${payload}`
}

/**
 * Parses what Redis holds; `undefined` when it is not an envelope fragcache wrote (a corrupt or foreign value).
 * @example
 * ```ts
 * decodeEntry('fc1|0|3|s|\nhello')?.value // 'hello'
 * ```
 */
export function decodeEntry(raw: string): Entry | undefined {
  if (!raw.startsWith(MARKER)) return undefined
  const newline = raw.indexOf('\n')
  if (newline < 0) return undefined
  const [expires, compute, type, depsJson] = splitHeader(raw.slice(MARKER.length, newline))
  const expiresAt = Number(expires)
  const computeMs = Number(compute)
  if (!Number.isFinite(expiresAt) || !Number.isFinite(computeMs) || depsJson === undefined) return undefined
  if (type !== 's' && type !== 'j') return undefined
  try {
    const deps = depsJson === '' ? null : (JSON.parse(depsJson) as unknown)
    if (deps !== null && !isDeps(deps)) return undefined
    const payload = raw.slice(newline + 1)
    const value = type === 's' ? payload : deepFreeze(JSON.parse(payload) as unknown)
    return { value, expiresAt: expiresAt === 0 ? null : expiresAt, computeMs, deps, size: payload.length + ENTRY_OVERHEAD }
  } catch {
    return undefined
  }
}

/**
 * The PX (milliseconds to live) for an expiry at `now`: never 0 or less, which Redis refuses; null for no expiry.
 * @example
 * ```ts
 * pxFor(1_000, 999) // 1
 * ```
 */
export function pxFor(expiresAt: number | null, now: number): number | null {
  return expiresAt === null ? null : Math.max(1, expiresAt - now)
}

/** Sets a new expiry inside the envelope (its first field) and on the key. ARGV: expiresAt (0 = none), PX (0 = none). */
export const TOUCH = new LuaScript(`
local raw = redis.call('GET', KEYS[1])
if not raw or string.sub(raw, 1, 4) ~= 'fc1|' then return 0 end
local bar = string.find(raw, '|', 5, true)
if not bar then return 0 end
local updated = 'fc1|' .. ARGV[1] .. string.sub(raw, bar)
if ARGV[2] == '0' then redis.call('SET', KEYS[1], updated) else redis.call('SET', KEYS[1], updated, 'PX', ARGV[2]) end
return 1`)

/** Adds ARGV[1] to an integer entry (a JSON payload, type `j`), keeping its TTL. */
export const INCR = new LuaScript(`
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local newline = string.find(raw, '\\n', 1, true)
if string.sub(raw, 1, 4) ~= 'fc1|' or not newline then return {'nan'} end
-- Only a JSON payload can be a number: a string stored as it is ('s') stays a string, even "5".
if not string.match(string.sub(raw, 1, newline - 1), '^fc1|[^|]*|[^|]*|j|') then return {'nan'} end
local text = string.sub(raw, newline + 1)
if not string.match(text, '^%-?%d+$') then return {'nan'} end
local n = tonumber(text) + tonumber(ARGV[1])
local out = string.format('%d', n)
redis.call('SET', KEYS[1], string.sub(raw, 1, newline) .. out, 'KEEPTTL')
return {'ok', out}`)

/** Splits `expires|compute|type|deps` (deps last: it is JSON and may hold a `|`). */
function splitHeader(header: string): [string, string, string, string | undefined] {
  const first = header.indexOf('|')
  const second = header.indexOf('|', first + 1)
  const third = header.indexOf('|', second + 1)
  if (first < 0 || second < 0 || third < 0) return ['', '', '', undefined]
  return [header.slice(0, first), header.slice(first + 1, second), header.slice(second + 1, third), header.slice(third + 1)]
}

function isDeps(value: unknown): value is Deps {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  return Object.values(value).every((v) => typeof v === 'number')
}

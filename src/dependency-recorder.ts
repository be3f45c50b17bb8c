/**
 * Recording what a compute's result depends on, as Drupal's render cache bubbles cacheability: the data versions it saw,
 * the earliest expiry of what it contains, the request contexts it varies by, and the private values it read. Every
 * nested read adds to the compute around it, so an outer entry never outlives, nor is shared wider than, its parts.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Deps, Entry } from './entry.ts'

/** What a compute recorded. */
export interface Recorded {
  /** Tag → version; null when none. */
  readonly deps: Deps | null
  /** The earliest `expiresAt` among the nested entries it read (null: none expires). */
  readonly expiresAt: number | null
  /** The earliest `graceUntil` among them. */
  readonly graceUntil: number | null
  /** Request contexts nested entries vary by (declared by them, or bubbled up to them). */
  readonly varies: ReadonlySet<string>
  /** Private values read directly, by context, with what was read first (`user.name`). */
  readonly privateReads: ReadonlyMap<string, string>
}

class Recorder {
  readonly deps = new Map<string, number>()
  expiresAt: number | null = null
  graceUntil: number | null = null
  readonly varies = new Set<string>()
  readonly privateReads = new Map<string, string>()
}

const storage = new AsyncLocalStorage<Recorder>()
/** Computes recording now, in this process: with none (a hit outside any compute), recording costs one comparison. */
let recording = 0

/** True while a compute is recording (some recording calls cost more than this check). */
export function isRecording(): boolean {
  return recording > 0 && storage.getStore() !== undefined
}

/**
 * Adds what a nested entry carries (its deps, its expiry, what it varies by) to the compute running now, if any.
 * @example
 * ```ts
 * recordEntry(entry) // inside a getOrSet compute: the outer entry depends on, expires with and varies as this one
 * ```
 */
export function recordEntry(entry: Pick<Entry, 'deps' | 'expiresAt' | 'graceUntil' | 'varies'>): void {
  if (recording === 0) return
  const recorder = storage.getStore()
  if (recorder === undefined) return
  addDeps(recorder, entry.deps)
  if (entry.expiresAt !== null && (recorder.expiresAt === null || entry.expiresAt < recorder.expiresAt)) recorder.expiresAt = entry.expiresAt
  if (entry.graceUntil !== null && (recorder.graceUntil === null || entry.graceUntil < recorder.graceUntil)) recorder.graceUntil = entry.graceUntil
  if (entry.varies !== null) for (const context of entry.varies) recorder.varies.add(context)
}

/**
 * Adds data versions to the compute running now, if any.
 * @example
 * ```ts
 * recordDeps({ 'article:1': 1764… })
 * ```
 */
export function recordDeps(deps: Deps | ReadonlyMap<string, number> | null): void {
  if (recording === 0) return
  const recorder = storage.getStore()
  if (recorder !== undefined) addDeps(recorder, deps)
}

/**
 * Notes that the compute running now read a private value of `context` (`what` says which: `user.name`).
 * @example
 * ```ts
 * recordPrivateRead('user', 'user.email')
 * ```
 */
export function recordPrivateRead(context: string, what: string): void {
  if (recording === 0) return
  const recorder = storage.getStore()
  if (recorder !== undefined && !recorder.privateReads.has(context)) recorder.privateReads.set(context, what)
}

/**
 * Runs `compute` in a fresh recorder seeded with `initial` deps, and returns its value with what it recorded.
 * @example
 * ```ts
 * const { value, recorded } = await runRecording(() => render(), new Map([['article:1', 1764]]))
 * ```
 */
export async function runRecording<T>(compute: () => T | Promise<T>, initial: ReadonlyMap<string, number>): Promise<{ value: Awaited<T>; recorded: Recorded }> {
  const recorder = new Recorder()
  for (const [tag, version] of initial) recorder.deps.set(tag, version)
  recording += 1
  let value: Awaited<T>
  try {
    value = await storage.run(recorder, compute)
  } finally {
    recording -= 1
  }
  return {
    value,
    recorded: {
      deps: recorder.deps.size === 0 ? null : Object.fromEntries(recorder.deps),
      expiresAt: recorder.expiresAt,
      graceUntil: recorder.graceUntil,
      varies: recorder.varies,
      privateReads: recorder.privateReads,
    },
  }
}

function addDeps(recorder: Recorder, deps: Deps | ReadonlyMap<string, number> | null): void {
  if (deps === null) return
  if (deps instanceof Map) for (const [tag, version] of deps) recorder.deps.set(tag, version)
  else for (const tag in deps) recorder.deps.set(tag, (deps as Deps)[tag] as number)
}

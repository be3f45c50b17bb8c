/**
 * The two behaviours `bench:stampede` compares: today's (`lock: false, grace: 0`) and the new defaults. The options
 * are being built while this benchmark is written, so they travel in untyped objects, and a fragcache that rejects
 * them as unknown makes the "new" column say "not available yet" instead of silently measuring today's behaviour.
 */
import type { CacheOptions, CacheStatsSnapshot, GetOrSetOptions, TieredCache } from '../../src/index.ts'

/** Options this fragcache may not know yet: passed as they are, checked by `createCache` at run time. */
export type UntypedOptions = Readonly<Record<string, unknown>>

export type VariantId = 'today' | 'new'

/** One column of the report. */
export interface Variant {
  readonly id: VariantId
  readonly label: string
  /** False when this fragcache does not have the options the variant needs yet. */
  readonly available: boolean
  /** What `createCache` gets on top of the scenario's own options. */
  readonly cacheOptions: UntypedOptions
  /** What the demo's `start.ts` reads (CACHE_LOCK, CACHE_GRACE). */
  readonly demoEnv: Readonly<Record<string, string>>
}

/** The stampede options and the value of each that is today's behaviour. */
const TODAY: UntypedOptions = { lock: false, grace: 0 }
/** Options the new behaviour is driven by; each is probed on its own. */
const PROBES: UntypedOptions = { lock: false, grace: 0, softTimeoutMs: 100 }

/** The message `createCache` throws for an option it does not know, naming it. */
const UNKNOWN_OPTION = /unknown option "([^"]+)"/

/** The option `error` says is unknown, or undefined when it is another error. */
export function unknownOptionOf(error: unknown): string | undefined {
  return error instanceof Error ? UNKNOWN_OPTION.exec(error.message)?.[1] : undefined
}

/**
 * Which of the stampede options this fragcache knows: each is tried alone on a memory-only cache, and is known unless
 * `createCache` names it as unknown.
 * @example
 * ```ts
 * await knownStampedeOptions(createCache) // Set {} before the lead's change lands; Set { 'lock', 'grace', 'softTimeoutMs' } after
 * ```
 */
export async function knownStampedeOptions(create: (options: CacheOptions) => TieredCache): Promise<Set<string>> {
  const known = new Set<string>()
  for (const [name, value] of Object.entries(PROBES)) {
    try {
      await create(asCacheOptions({ [name]: value })).close()
      known.add(name)
    } catch (error) {
      // Refused for another reason (a value or a combination it does not take alone): the option exists.
      if (unknownOptionOf(error) !== name) known.add(name)
    }
  }
  return known
}

/**
 * Today's behaviour and the new defaults. Today's column passes `lock: false, grace: 0` where they exist: before they
 * land, omitting them is exactly today's behaviour, so that column always runs.
 */
export function stampedeVariants(known: ReadonlySet<string>): Variant[] {
  const today = Object.fromEntries(Object.entries(TODAY).filter(([name]) => known.has(name)))
  return [
    {
      id: 'today',
      label: 'today (lock: false, grace: 0)',
      available: true,
      cacheOptions: today,
      demoEnv: { CACHE_LOCK: '0', CACHE_GRACE: '0' },
    },
    {
      id: 'new',
      label: 'new defaults',
      available: Object.keys(PROBES).every((name) => known.has(name)),
      cacheOptions: {},
      demoEnv: {},
    },
  ]
}

/** Untyped options handed to `createCache` (it checks them at run time). */
export function asCacheOptions(options: UntypedOptions): CacheOptions {
  return options as CacheOptions
}

/** Untyped options handed to `getOrSet` (per call: `lock`, `grace`, `softTimeoutMs`). */
export function asGetOrSetOptions(options: UntypedOptions): GetOrSetOptions {
  return options as GetOrSetOptions
}

/** `stats().l2.timeouts` once the cache counts them; undefined before. */
export function l2Timeouts(stats: CacheStatsSnapshot): number | undefined {
  const timeouts = (stats.l2 as unknown as Record<string, unknown>).timeouts
  return typeof timeouts === 'number' ? timeouts : undefined
}

/** A counter of `stats()` that only a newer fragcache has (`lockWaits`, `lockTimeouts`, `staleServes`); undefined before. */
export function newerCounter(stats: CacheStatsSnapshot, name: 'lockWaits' | 'lockTimeouts' | 'staleServes'): number | undefined {
  const value = (stats as unknown as Record<string, unknown>)[name]
  return typeof value === 'number' ? value : undefined
}

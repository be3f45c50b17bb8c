/**
 * Concurrent misses coalesced: `concurrent` calls of `get` of one absent key at once, in one process; the GETs Redis
 * ran, counted by the server (`INFO commandstats`).
 */
import type { Redis } from 'ioredis'
import { createCache } from '../../src/index.ts'
import { median } from '../support/measure.ts'
import { commandDelta, commandStats, describeCounts } from '../support/redis-counters.ts'
import type { Section } from '../support/stampede-report.ts'
import { type Variant, type VariantId, asCacheOptions } from '../support/stampede-variants.ts'

export interface CoalescingSettings {
  readonly rounds: number
  readonly concurrent: number
}

interface Round {
  gets: number
  commands: string
}

export async function coalescingCase(redisUrl: string, observer: Redis, variants: readonly Variant[], settings: CoalescingSettings): Promise<Section> {
  const rounds = new Map<VariantId, Round[]>(variants.map((v) => [v.id, []]))
  const caches = new Map(
    variants
      .filter((v) => v.available)
      .map((v) => [v.id, createCache(asCacheOptions({ redis: redisUrl, prefix: `coalescing-${v.id}`, logger: { warn: () => {}, error: () => {} }, ...v.cacheOptions }))]),
  )
  try {
    await Promise.all([...caches.values()].map((cache) => cache.ready()))
    for (let r = 0; r < settings.rounds; r++) {
      for (const [id, cache] of caches) {
        const before = await commandStats(observer)
        await Promise.all(Array.from({ length: settings.concurrent }, () => cache.get(`absent-${r}`)))
        const delta = commandDelta(before, await commandStats(observer))
        rounds.get(id)?.push({ gets: delta.get('get') ?? 0, commands: describeCounts(delta) })
      }
    }
  } finally {
    await Promise.all([...caches.values()].map((cache) => cache.close()))
  }
  const of = (id: VariantId) => rounds.get(id) ?? []
  const ran = variants.filter((v) => of(v.id).length > 0)
  return {
    title: `Concurrent misses: ${settings.concurrent} concurrent get of one absent key`,
    method: `One process; the commands the private Redis ran for the ${settings.concurrent} calls (INFO commandstats). Median over ${settings.rounds} rounds, each on a new key.`,
    figures: [
      { name: 'GETs sent to Redis', values: Object.fromEntries(ran.map((v) => [v.id, String(median(of(v.id).map((r) => r.gets)))])), target: '1' },
      { name: 'commands Redis ran (last round)', values: Object.fromEntries(ran.map((v) => [v.id, of(v.id).at(-1)?.commands ?? '–'])) },
    ],
    targets: [
      {
        text: `${settings.concurrent} concurrent misses of one key send 1 GET`,
        judge: (id) => {
          const gets = of(id).map((r) => r.gets)
          return gets.length === 0 ? undefined : { met: median(gets) === 1, measured: `median ${median(gets)} GETs` }
        },
      },
    ],
  }
}

/**
 * A busy process and a healthy Redis: each read (`getOrSet` of an entry that is in Redis, with deps) is followed by a
 * synchronous stretch, as a template render is, after the GET was written and before its reply is read. Redis
 * answers in well under a millisecond; a timeout measured on the caller's event loop still counts the stretch.
 */
import { setImmediate as nextTurn } from 'node:timers/promises'
import { createCache } from '../../src/index.ts'
import type { TieredCache } from '../../src/index.ts'
import { median } from '../support/measure.ts'
import type { Section } from '../support/stampede-report.ts'
import { type Variant, type VariantId, asCacheOptions, l2Timeouts } from '../support/stampede-variants.ts'

export interface BusyLoopSettings {
  readonly rounds: number
  readonly reads: number
  /** The synchronous stretch after each read. */
  readonly blockMs: number
}

interface Round {
  timeouts: number | undefined
  errors: number
  outages: number
  computes: number
}

const quiet = { warn: () => {}, error: () => {} }
const DEPS = ['article:1']

export async function busyLoopCase(redisUrl: string, variants: readonly Variant[], settings: BusyLoopSettings): Promise<Section> {
  const rounds = new Map<string, Round[]>()
  const record = (id: VariantId, kind: 'blocked' | 'control', round: Round) => {
    const key = `${id}:${kind}`
    rounds.set(key, [...(rounds.get(key) ?? []), round])
  }
  // A patient writer stores the entries the measured caches read: every read should be an L2 hit.
  const writer = createCache({ redis: redisUrl, prefix: 'busy-loop', redisTimeoutMs: 1000, logger: quiet })
  await writer.ready()
  try {
    for (let r = 0; r < settings.rounds; r++) {
      for (const variant of variants) {
        if (!variant.available) continue
        for (const kind of ['control', 'blocked'] as const) {
          const keys = Array.from({ length: settings.reads }, (_, i) => `${variant.id}-${kind}-${r}-${i}`)
          for (const key of keys) await writer.getOrSet(key, () => `<p>${key}</p>`, { ttl: 600, deps: DEPS })
          record(variant.id, kind, await readAll(redisUrl, variant, keys, kind === 'blocked' ? settings.blockMs : 0))
        }
      }
    }
  } finally {
    await writer.close()
  }
  const of = (id: VariantId, kind: 'blocked' | 'control') => rounds.get(`${id}:${kind}`) ?? []
  const ran = variants.filter((v) => of(v.id, 'blocked').length > 0)
  const figure = (name: string, kind: 'blocked' | 'control', pick: (r: Round) => number | undefined, target?: string) => ({
    name,
    values: Object.fromEntries(
      ran.map((v) => {
        const values = of(v.id, kind).map(pick)
        return [v.id, values.some((x) => x === undefined) ? 'not counted yet' : String(median(values as number[]))]
      }),
    ),
    ...(target === undefined ? {} : { target }),
  })
  const stretch = `${settings.blockMs} ms stretch after each read`
  return {
    title: `Busy event loop, no fault: ${settings.reads} reads of entries in Redis, each followed by a ${settings.blockMs} ms synchronous stretch`,
    method:
      `One process, a fresh createCache({ redis }) per round (default redisTimeoutMs: 50), reading ${settings.reads} entries another cache stored ` +
      `in Redis (deps ${DEPS.join(', ')}) with getOrSet; after each call, once the GET has been written, the loop is blocked for ` +
      `${settings.blockMs} ms. The control does the same reads without the stretch. Median over ${settings.rounds} rounds.`,
    figures: [
      figure(`l2.timeouts (${stretch})`, 'blocked', (r) => r.timeouts, '0'),
      figure(`l2.errors (${stretch})`, 'blocked', (r) => r.errors, '0'),
      figure(`l2.outages (${stretch})`, 'blocked', (r) => r.outages, '0'),
      figure(`reads that became computes (${stretch})`, 'blocked', (r) => r.computes, '0'),
      figure('control, no stretch: l2.errors', 'control', (r) => r.errors, '0'),
      figure('control, no stretch: reads that became computes', 'control', (r) => r.computes, '0'),
    ],
    targets: [
      {
        text: 'a busy loop causes 0 timeouts and 0 outages',
        judge: (id) => {
          const blocked = of(id, 'blocked')
          if (blocked.length === 0) return undefined
          const timeouts = median(blocked.map((r) => r.timeouts ?? r.errors))
          const outages = median(blocked.map((r) => r.outages))
          const counted = blocked.every((r) => r.timeouts !== undefined) ? 'timeouts' : 'errors (timeouts not counted yet)'
          return { met: timeouts === 0 && outages === 0, measured: `${counted} ${timeouts}, outages ${outages}` }
        },
      },
      {
        text: 'no read of a stored entry becomes a compute',
        judge: (id) => {
          const blocked = of(id, 'blocked')
          if (blocked.length === 0) return undefined
          const computes = median(blocked.map((r) => r.computes))
          return { met: computes === 0, measured: `${computes} of ${settings.reads}` }
        },
      },
    ],
  }
}

async function readAll(redisUrl: string, variant: Variant, keys: readonly string[], blockMs: number): Promise<Round> {
  const cache: TieredCache = createCache(asCacheOptions({ redis: redisUrl, prefix: 'busy-loop', logger: quiet, ...variant.cacheOptions }))
  await cache.ready()
  try {
    for (const key of keys) {
      const pending = cache.getOrSet(key, () => `<p>${key}, computed again</p>`, { ttl: 600, deps: DEPS })
      // ioredis writes auto-pipelined commands on the next turn (setImmediate): block after the GET is on the wire.
      await nextTurn()
      blockFor(blockMs)
      await pending
    }
    const stats = cache.stats()
    return { timeouts: l2Timeouts(stats), errors: stats.l2.errors, outages: stats.l2.outages, computes: stats.computes }
  } finally {
    await cache.close()
  }
}

/** Keeps the thread busy for `ms`, as a synchronous render does. */
function blockFor(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // busy
  }
}

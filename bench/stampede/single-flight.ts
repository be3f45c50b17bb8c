/**
 * Cross-process single-flight: `processes` OS processes, each with its own cache on one Redis, `concurrent` calls of
 * `getOrSet` of one cold key spread over them, all started at the same instant; the compute takes `computeMs` and
 * counts itself with INCR. Per trial: computes across processes and the distinct values served for the one key.
 */
import type { Redis } from 'ioredis'
import { median } from '../support/measure.ts'
import { formatMs } from '../support/report.ts'
import type { StampedeProcesses } from '../support/stampede-processes.ts'
import type { Section } from '../support/stampede-report.ts'
import type { Variant, VariantId } from '../support/stampede-variants.ts'

export interface SingleFlightSettings {
  readonly trials: number
  readonly concurrent: number
  readonly computeMs: number
}

interface Trial {
  computes: number
  distinctValues: number
  failed: number
  maxWaitMs: number
}

/** How long before the agreed instant the request goes out: enough for every process to receive it. */
const START_MARGIN_MS = 200

export async function singleFlightCase(
  processes: StampedeProcesses,
  observer: Redis,
  variants: readonly Variant[],
  settings: SingleFlightSettings,
): Promise<Section> {
  const trials = new Map<VariantId, Trial[]>(variants.map((v) => [v.id, []]))
  for (let t = 0; t < settings.trials; t++) {
    // Interleaved: a noisy moment of the machine touches both variants alike.
    for (const variant of variants) {
      if (!variant.available) continue
      const counterKey = `bench:stampede:single-flight:${variant.id}:${t}:computes`
      const at = Date.now() + START_MARGIN_MS
      const results = await processes.all((i) => ({
        op: 'stampede' as const,
        variant: variant.id,
        key: `single-flight-${t}`,
        count: share(settings.concurrent, processes.size, i),
        at,
        compute: { counterKey, computeMs: settings.computeMs },
      }))
      const values = new Set(results.flatMap((r) => Object.keys(r.values)))
      trials.get(variant.id)?.push({
        computes: Number((await observer.get(counterKey)) ?? 0),
        distinctValues: values.size,
        failed: results.reduce((n, r) => n + r.failed, 0),
        maxWaitMs: Math.max(...results.map((r) => r.maxWaitMs)),
      })
    }
  }
  const of = (id: VariantId) => trials.get(id) ?? []
  const spread = (values: number[]) => `${median(values)} (${Math.min(...values)}–${Math.max(...values)})`
  const each = (pick: (t: Trial) => number) =>
    Object.fromEntries(variants.filter((v) => of(v.id).length > 0).map((v) => [v.id, spread(of(v.id).map(pick))]))
  return {
    title: `Cross-process single-flight: ${settings.concurrent} concurrent getOrSet of one cold key over ${processes.size} processes`,
    method:
      `${processes.size} forked processes, each with createCache({ redis }) on one private Redis; ${settings.concurrent} calls started at the ` +
      `same instant, spread evenly; the compute takes ${settings.computeMs} ms and counts itself with INCR. ` +
      `${settings.trials} trials per column, interleaved, each on a new key. Median (min–max) over trials.`,
    figures: [
      { name: 'computes per trial (all processes)', values: each((t) => t.computes), target: '1' },
      { name: 'distinct values served for the key', values: each((t) => t.distinctValues), target: '1' },
      {
        name: 'slowest call per trial',
        values: Object.fromEntries(
          variants.filter((v) => of(v.id).length > 0).map((v) => [v.id, formatMs(median(of(v.id).map((t) => t.maxWaitMs)))]),
        ),
      },
      { name: 'failed calls (all trials)', values: Object.fromEntries(variants.map((v) => [v.id, String(of(v.id).reduce((n, t) => n + t.failed, 0))])) },
    ],
    targets: [
      {
        text: `1 compute per trial across ${processes.size} processes`,
        judge: (id) => judgeEvery(of(id), (t) => t.computes, 1),
      },
      {
        text: 'one value served for one key',
        judge: (id) => judgeEvery(of(id), (t) => t.distinctValues, 1),
      },
    ],
    notes: variants
      .filter((v) => of(v.id).length > 0)
      .map((v) => `${v.label}: computes per trial ${of(v.id).map((t) => t.computes).join(', ')}; distinct values ${of(v.id).map((t) => t.distinctValues).join(', ')}`),
  }
}

/** Met when every trial's figure is `expected`; measured as the per-trial figures. */
function judgeEvery(trials: readonly Trial[], pick: (t: Trial) => number, expected: number): { met: boolean; measured: string } | undefined {
  if (trials.length === 0) return undefined
  const values = trials.map(pick)
  const off = values.filter((v) => v !== expected).length
  return { met: off === 0, measured: `${off === 0 ? 'every' : `${values.length - off} of ${values.length}`} trial${off === 0 ? '' : 's'} at ${expected}; median ${median(values)}, max ${Math.max(...values)}` }
}

/** The calls process `index` of `processes` makes, `total` spread as evenly as can be. */
function share(total: number, processes: number, index: number): number {
  return Math.floor(total / processes) + (index < total % processes ? 1 : 0)
}

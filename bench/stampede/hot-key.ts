/**
 * A hot key expiring under load: one key with a short TTL, warmed once, then asked without pause by every process
 * until well past its expiry. Counts the recomputes (INCR in the compute, across processes) and the longest wait of
 * any request. With grace and the lock, one process recomputes and nobody waits longer than the soft timeout.
 */
import type { Redis } from 'ioredis'
import { median, percentile } from '../support/measure.ts'
import { formatMs } from '../support/report.ts'
import type { StampedeProcesses } from '../support/stampede-processes.ts'
import type { Section } from '../support/stampede-report.ts'
import type { UntypedOptions, Variant, VariantId } from '../support/stampede-variants.ts'

export interface HotKeySettings {
  readonly rounds: number
  /** Seconds the key lives. */
  readonly ttlSeconds: number
  readonly computeMs: number
  /** Seconds of grace the new variant asks for. */
  readonly graceSeconds: number
  readonly softTimeoutMs: number
  /** Requests in flight per process, each followed by `pauseMs`. */
  readonly concurrencyPerProcess: number
  readonly pauseMs: number
  /** How long the load goes on after the key expired. */
  readonly afterExpiryMs: number
}

interface Round {
  recomputes: number
  requests: number
  failed: number
  maxWaitMs: number
  p99WaitMs: number
}

export async function hotKeyCase(
  processes: StampedeProcesses,
  observer: Redis,
  variants: readonly Variant[],
  settings: HotKeySettings,
): Promise<Section> {
  const rounds = new Map<VariantId, Round[]>(variants.map((v) => [v.id, []]))
  for (let r = 0; r < settings.rounds; r++) {
    for (const variant of variants) {
      if (!variant.available) continue
      const callOptions = callOptionsFor(variant, settings)
      const counterKey = `bench:stampede:hot-key:${variant.id}:${r}:computes`
      const key = `hot-key-${r}`
      const compute = { counterKey, computeMs: settings.computeMs }
      await processes.one(0, { op: 'warm', variant: variant.id, key, compute, callOptions })
      // The entry expires ttl after it was stored, just before `warm` answered.
      const warmed = Date.now()
      const computesBefore = Number((await observer.get(counterKey)) ?? 0)
      const until = warmed + settings.ttlSeconds * 1000 + settings.afterExpiryMs
      const results = await processes.all(() => ({
        op: 'hotKey' as const,
        variant: variant.id,
        key,
        at: Date.now() + 50,
        until,
        concurrency: settings.concurrencyPerProcess,
        pauseMs: settings.pauseMs,
        compute,
        callOptions,
      }))
      const waits = results.flatMap((result) => result.waitsMs)
      rounds.get(variant.id)?.push({
        recomputes: Number((await observer.get(counterKey)) ?? 0) - computesBefore,
        requests: waits.length,
        failed: results.reduce((n, result) => n + result.failed, 0),
        maxWaitMs: Math.max(...waits),
        p99WaitMs: percentile(waits, 99),
      })
    }
  }
  const of = (id: VariantId) => rounds.get(id) ?? []
  const ran = variants.filter((v) => of(v.id).length > 0)
  const each = (show: (values: Round[]) => string) => Object.fromEntries(ran.map((v) => [v.id, show(of(v.id))]))
  const med = (pick: (r: Round) => number) => (values: Round[]) => median(values.map(pick))
  return {
    title: `Hot key expiring under load (TTL ${settings.ttlSeconds} s, compute ${settings.computeMs} ms, ${processes.size} processes)`,
    method:
      `The key is computed once, then ${processes.size} processes × ${settings.concurrencyPerProcess} clients ask for it in a loop ` +
      `(${settings.pauseMs} ms pause) from then until ${settings.afterExpiryMs} ms after it expired. Today: getOrSet(key, fn, { ttl }); ` +
      `new: { ttl, grace: ${settings.graceSeconds}, softTimeoutMs: ${settings.softTimeoutMs} }. Median over ${settings.rounds} rounds, interleaved.`,
    figures: [
      { name: 'recomputes across processes', values: each((v) => String(med((r) => r.recomputes)(v))), target: '1' },
      { name: 'longest wait of any request', values: each((v) => formatMs(med((r) => r.maxWaitMs)(v))), target: `≤ ${settings.softTimeoutMs} ms` },
      { name: 'p99 wait', values: each((v) => formatMs(med((r) => r.p99WaitMs)(v))) },
      { name: 'requests per round', values: each((v) => String(med((r) => r.requests)(v))) },
      { name: 'failed requests (all rounds)', values: each((v) => String(v.reduce((n, r) => n + r.failed, 0))) },
    ],
    targets: [
      {
        text: '1 recompute as the key expires',
        judge: (id) => {
          const values = of(id).map((r) => r.recomputes)
          return values.length === 0 ? undefined : { met: median(values) === 1, measured: `median ${median(values)}; rounds ${values.join(', ')}` }
        },
      },
      {
        text: `no request waiting longer than softTimeoutMs (${settings.softTimeoutMs} ms)`,
        judge: (id) => {
          const values = of(id).map((r) => r.maxWaitMs)
          if (values.length === 0) return undefined
          return { met: median(values) <= settings.softTimeoutMs, measured: `median longest wait ${formatMs(median(values))}; rounds ${values.map(formatMs).join(', ')}` }
        },
      },
    ],
  }
}

function callOptionsFor(variant: Variant, settings: HotKeySettings): UntypedOptions {
  const ttl = settings.ttlSeconds
  return variant.id === 'today' ? { ttl } : { ttl, grace: settings.graceSeconds, softTimeoutMs: settings.softTimeoutMs }
}

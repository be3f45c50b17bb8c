/**
 * A hot key expiring under load: one key with a short TTL, warmed once, then asked without pause by every process
 * until well past its expiry. Counts the recomputes (INCR in the compute, across processes) and the longest wait of
 * any request. With grace and the lock, one process recomputes and nobody waits longer than the soft timeout.
 *
 * Run twice: with early refresh as it is by default (XFetch may recompute the key in the background, in each process,
 * before it expires) and with it off for the call, so that the key really does expire under load.
 */
import type { Redis } from 'ioredis'
import { median, percentile } from '../support/measure.ts'
import { formatMs } from '../support/report.ts'
import type { StampedeProcesses } from '../support/stampede-processes.ts'
import type { Figure, Section, Target } from '../support/stampede-report.ts'
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

const MODES = [
  { id: 'early', label: 'early refresh on (default)', options: {} },
  { id: 'expiry', label: 'early refresh off', options: { earlyRefresh: false } },
] as const
type Mode = (typeof MODES)[number]

export async function hotKeyCase(
  processes: StampedeProcesses,
  observer: Redis,
  variants: readonly Variant[],
  settings: HotKeySettings,
): Promise<Section> {
  const rounds = new Map<string, Round[]>()
  const at = (id: VariantId, mode: Mode) => rounds.get(`${id}:${mode.id}`) ?? []
  for (let r = 0; r < settings.rounds; r++) {
    for (const mode of MODES) {
      for (const variant of variants) {
        if (!variant.available) continue
        const round = await oneRound(processes, observer, `${variant.id}-${mode.id}-${r}`, variant, { ...callOptionsFor(variant, settings), ...mode.options }, settings)
        rounds.set(`${variant.id}:${mode.id}`, [...at(variant.id, mode), round])
      }
    }
  }
  const ran = variants.filter((v) => MODES.some((mode) => at(v.id, mode).length > 0))
  const figures: Figure[] = []
  const targets: Target[] = []
  for (const mode of MODES) {
    const each = (pick: (r: Round) => number, show: (value: number) => string) =>
      Object.fromEntries(ran.map((v) => [v.id, show(median(at(v.id, mode).map(pick)))]))
    figures.push(
      { name: `${mode.label}: recomputes across processes`, values: each((r) => r.recomputes, String), target: '1' },
      { name: `${mode.label}: longest wait of any request`, values: each((r) => r.maxWaitMs, formatMs), target: `≤ ${settings.softTimeoutMs} ms` },
      { name: `${mode.label}: p99 wait`, values: each((r) => r.p99WaitMs, formatMs) },
    )
    targets.push(
      {
        text: `${mode.label}: 1 recompute as the key expires`,
        judge: (id) => {
          const values = at(id, mode).map((r) => r.recomputes)
          return values.length === 0 ? undefined : { met: median(values) === 1, measured: `median ${median(values)}; rounds ${values.join(', ')}` }
        },
      },
      {
        text: `${mode.label}: no request waiting longer than softTimeoutMs (${settings.softTimeoutMs} ms)`,
        judge: (id) => {
          const values = at(id, mode).map((r) => r.maxWaitMs)
          if (values.length === 0) return undefined
          return {
            met: median(values) <= settings.softTimeoutMs,
            measured: `median of the rounds' longest wait ${formatMs(median(values))}; rounds ${values.map(formatMs).join(', ')}`,
          }
        },
      },
    )
  }
  const all = (id: VariantId) => MODES.flatMap((mode) => at(id, mode))
  figures.push(
    { name: 'requests per round', values: Object.fromEntries(ran.map((v) => [v.id, String(median(all(v.id).map((r) => r.requests)))])) },
    { name: 'failed requests (all rounds)', values: Object.fromEntries(ran.map((v) => [v.id, String(all(v.id).reduce((n, r) => n + r.failed, 0))])) },
  )
  return {
    title: `Hot key expiring under load (TTL ${settings.ttlSeconds} s, compute ${settings.computeMs} ms, ${processes.size} processes)`,
    method:
      `The key is computed once, then ${processes.size} processes × ${settings.concurrencyPerProcess} clients ask for it in a loop ` +
      `(${settings.pauseMs} ms pause) from then until ${settings.afterExpiryMs} ms after it expired. Today: getOrSet(key, fn, { ttl }); ` +
      `new: { ttl, grace: ${settings.graceSeconds}, softTimeoutMs: ${settings.softTimeoutMs} }. Once with early refresh as configured ` +
      `(default: on, which may recompute the key in the background before it expires) and once with earlyRefresh: false on the call, ` +
      `so that it does expire under load. Median over ${settings.rounds} rounds, interleaved; the longest wait is each round's longest.`,
    figures,
    targets,
  }
}

async function oneRound(
  processes: StampedeProcesses,
  observer: Redis,
  name: string,
  variant: Variant,
  callOptions: UntypedOptions,
  settings: HotKeySettings,
): Promise<Round> {
  const counterKey = `bench:stampede:hot-key:${name}:computes`
  const key = `hot-key-${name}`
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
  return {
    recomputes: Number((await observer.get(counterKey)) ?? 0) - computesBefore,
    requests: waits.length,
    failed: results.reduce((n, result) => n + result.failed, 0),
    maxWaitMs: Math.max(...waits),
    p99WaitMs: percentile(waits, 99),
  }
}

function callOptionsFor(variant: Variant, settings: HotKeySettings): UntypedOptions {
  const ttl = settings.ttlSeconds
  return variant.id === 'today' ? { ttl } : { ttl, grace: settings.graceSeconds, softTimeoutMs: settings.softTimeoutMs }
}

/**
 * One of the OS processes of `bench:stampede`'s cross-process cases: a cache per variant on the shared private Redis,
 * driven over IPC. Computes count themselves with INCR on a Redis key the parent names, so a compute in any process
 * is counted once, wherever it ran.
 *
 * Run: `fork('stampede-process.ts', [redisUrl, JSON.stringify(variants)], { execArgv: ['--import', 'tsx'] })`.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createCache } from '../../src/index.ts'
import type { TieredCache } from '../../src/index.ts'
import { type UntypedOptions, type VariantId, asCacheOptions, asGetOrSetOptions } from './stampede-variants.ts'

/** A variant as this process builds its cache. */
export interface ProcessVariant {
  id: VariantId
  cacheOptions: UntypedOptions
}

/** A compute: INCR `counterKey` (the count across processes), then `computeMs` of waiting, as a slow query. */
export interface ComputeSpec {
  counterKey: string
  computeMs: number
}

/** What the parent asks. `at` is a `Date.now()` time: every process starts then, so the load really is concurrent. */
export type StampedeRequest =
  | { op: 'stampede'; variant: VariantId; key: string; count: number; at: number; compute: ComputeSpec }
  | { op: 'warm'; variant: VariantId; key: string; compute: ComputeSpec; callOptions: UntypedOptions }
  | {
      op: 'hotKey'
      variant: VariantId
      key: string
      at: number
      until: number
      concurrency: number
      pauseMs: number
      compute: ComputeSpec
      callOptions: UntypedOptions
    }

/** The answer to `stampede`: how often each value was served, and the longest wait. */
export interface StampedeResult {
  values: Record<string, number>
  failed: number
  maxWaitMs: number
}

/** The answer to `hotKey`: the wait of every request. */
export interface HotKeyResult {
  waitsMs: number[]
  failed: number
}

type Envelope = StampedeRequest & { id: number }

const [url, variantsJson] = process.argv.slice(2)
if (url === undefined || variantsJson === undefined || process.send === undefined) {
  throw new Error('usage: fork stampede-process.ts with [redisUrl, variantsJson] and an IPC channel')
}
const quiet = { warn: () => {}, error: () => {} }
const caches = new Map<VariantId, TieredCache>(
  (JSON.parse(variantsJson) as ProcessVariant[]).map((v) => [
    v.id,
    createCache(asCacheOptions({ redis: url, prefix: `stampede-${v.id}`, logger: quiet, ...v.cacheOptions })),
  ]),
)
const counter = new Redis(url, { maxRetriesPerRequest: 1 })
await Promise.all([...caches.values()].map((cache) => cache.ready()))

function cacheOf(variant: VariantId): TieredCache {
  const cache = caches.get(variant)
  if (cache === undefined) throw new Error(`no cache for variant ${variant} in process ${process.pid}`)
  return cache
}

/** The compute every case uses; its value names the process and the compute, so distinct values can be counted. */
function computeFor({ counterKey, computeMs }: ComputeSpec): () => Promise<string> {
  return async () => {
    const n = await counter.incr(counterKey)
    await sleep(computeMs)
    return `${process.pid}#${n}`
  }
}

async function untilTime(at: number): Promise<void> {
  const wait = at - Date.now()
  if (wait > 0) await sleep(wait)
}

async function stampede(request: Extract<StampedeRequest, { op: 'stampede' }>): Promise<StampedeResult> {
  const cache = cacheOf(request.variant)
  const compute = computeFor(request.compute)
  await untilTime(request.at)
  const result: StampedeResult = { values: {}, failed: 0, maxWaitMs: 0 }
  await Promise.all(
    Array.from({ length: request.count }, async () => {
      const started = performance.now()
      try {
        const value = await cache.getOrSet(request.key, compute, { ttl: 60 })
        result.values[value] = (result.values[value] ?? 0) + 1
      } catch {
        result.failed += 1
      }
      result.maxWaitMs = Math.max(result.maxWaitMs, performance.now() - started)
    }),
  )
  return result
}

async function hotKey(request: Extract<StampedeRequest, { op: 'hotKey' }>): Promise<HotKeyResult> {
  const cache = cacheOf(request.variant)
  const compute = computeFor(request.compute)
  const options = asGetOrSetOptions(request.callOptions)
  const result: HotKeyResult = { waitsMs: [], failed: 0 }
  await untilTime(request.at)
  const client = async () => {
    while (Date.now() < request.until) {
      const started = performance.now()
      try {
        await cache.getOrSet(request.key, compute, options)
      } catch {
        result.failed += 1
      }
      result.waitsMs.push(performance.now() - started)
      await sleep(request.pauseMs)
    }
  }
  await Promise.all(Array.from({ length: request.concurrency }, client))
  return result
}

async function answer(request: StampedeRequest): Promise<unknown> {
  if (request.op === 'stampede') return stampede(request)
  if (request.op === 'hotKey') return hotKey(request)
  await cacheOf(request.variant).getOrSet(request.key, computeFor(request.compute), asGetOrSetOptions(request.callOptions))
  return null
}

process.on('message', (message: Envelope) => {
  answer(message).then(
    (result) => process.send?.({ id: message.id, result }),
    (error: unknown) => process.send?.({ id: message.id, error: error instanceof Error ? error.message : String(error) }),
  )
})
process.on('disconnect', () => {
  void Promise.all([...caches.values()].map((cache) => cache.close()))
    .then(() => counter.quit())
    .finally(() => process.exit(0))
})
process.send({ id: 0, result: 'ready' })

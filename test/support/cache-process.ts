/**
 * A cache in a separate OS process, driven over IPC by a test (or a benchmark) to check what crosses processes.
 * Started by {@link startCacheProcess}; answers `{ id, op, ... }` messages with `{ id, result }` or `{ id, error }`.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Cluster, Redis } from 'ioredis'
import { type CacheOptions, createCache } from '../../src/index.ts'
import { patientRedis } from './redis-server.ts'

/** How the child's first argument says it is a list of Cluster seeds rather than one URL. */
const CLUSTER_MARK = 'cluster:'

type Request =
  | { id: number; op: 'getOrSet'; key: string; value: unknown; deps?: string[] }
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'set'; key: string; value: unknown }
  | { id: number; op: 'bump'; tags: string[] }
  | { id: number; op: 'check'; deps: Record<string, number> }
  | { id: number; op: 'computes' }
  /**
   * `count` concurrent getOrSet of `key`, whose compute INCRs `counter` in Redis (so computes are counted across
   * processes), waits `computeMs` and returns `value:<pid>:<n>`; answers the distinct values its callers got.
   */
  | { id: number; op: 'burst'; key: string; count: number; computeMs: number; counter: string }
  /** A getOrSet of `key` whose compute INCRs `counter` and never finishes (to be killed mid-compute); answers at once. */
  | { id: number; op: 'hang'; key: string; counter: string }
  /** getOrSet of `key`, computed as `v<version of tag>` (the version read inside the compute, so recorded as a dep). */
  | { id: number; op: 'versioned'; key: string; tag: string }
  /** Moves this process's clock (started with `controlledClock`) forward. */
  | { id: number; op: 'advance'; ms: number }
  /** What `stats()` says. */
  | { id: number; op: 'stats' }

/** A handle on the child process. */
export interface CacheProcess {
  call<T = unknown>(request: Record<string, unknown> & { op: Request['op'] }): Promise<T>
  close(): Promise<void>
}

/**
 * Forks a process holding `createCache({ redis: url, prefix, ...options })`, ready when it resolves. A list of URLs is a
 * Cluster's seeds (the child's cache opens its own Cluster from them).
 */
export async function startCacheProcess(url: string | readonly string[], prefix: string, options: Partial<CacheOptions> & { controlledClock?: boolean } = {}): Promise<CacheProcess & { pid: number; kill(): Promise<void> }> {
  const child = fork(fileURLToPath(import.meta.url), [typeof url === 'string' ? url : `${CLUSTER_MARK}${url.join(',')}`, prefix, JSON.stringify(options)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  let next = 0
  child.on('message', (message: { id: number; result?: unknown; error?: string; ready?: boolean }) => {
    const pending = waiting.get(message.id)
    if (!pending) return
    waiting.delete(message.id)
    if (message.error !== undefined) pending.reject(new Error(message.error))
    else pending.resolve(message.result)
  })
  const handle: CacheProcess & { pid: number; kill(): Promise<void> } = {
    pid: child.pid ?? 0,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
    },
    call: (request) =>
      new Promise((resolve, reject) => {
        const id = ++next
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
        child.send({ ...request, id })
      }),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    },
  }
  await handle.call({ op: 'computes' }) // answers once the cache is ready
  return handle
}

if (process.send && process.argv[2] !== undefined && process.argv[3]) {
  const { controlledClock, ...options } = JSON.parse(process.argv[4] ?? '{}') as Partial<CacheOptions> & { controlledClock?: boolean }
  const argument = process.argv[2]
  const seeds = argument.startsWith(CLUSTER_MARK) ? argument.slice(CLUSTER_MARK.length).split(',') : undefined
  const url = seeds ?? argument
  let offset = 0
  const clock = controlledClock === true ? { clock: () => Date.now() + offset } : {}
  const cache = createCache({ redis: url, prefix: process.argv[3], ...patientRedis, logger: { warn: () => {}, error: () => {} }, ...clock, ...options })
  const raw = seeds === undefined ? new Redis(argument, { maxRetriesPerRequest: 1 }) : new Cluster(seeds.map((seed) => new URL(seed)).map(({ hostname, port }) => ({ host: hostname, port: Number(port) })), { redisOptions: { maxRetriesPerRequest: 1 } })
  const ready = cache.ready()
  let computes = 0
  process.on('message', async (request: Request) => {
    try {
      await ready
      let result: unknown
      if (request.op === 'getOrSet') {
        result = await cache.getOrSet(request.key, () => (computes++, request.value), { deps: request.deps ?? [] })
      } else if (request.op === 'get') result = await cache.get(request.key)
      else if (request.op === 'set') result = await cache.set(request.key, request.value)
      else if (request.op === 'bump') result = await cache.versions.bump(...request.tags)
      else if (request.op === 'check') result = cache.versions.check(request.deps) ?? null
      else if (request.op === 'burst') {
        const { key, count, computeMs, counter } = request
        const compute = async () => {
          const n = await raw.incr(counter)
          await new Promise((r) => setTimeout(r, computeMs))
          return `value:${process.pid}:${n}`
        }
        const values = await Promise.all(Array.from({ length: count }, () => cache.getOrSet(key, compute)))
        result = [...new Set(values)]
      } else if (request.op === 'hang') {
        const { key, counter } = request
        void cache.getOrSet(key, async () => {
          await raw.incr(counter)
          return new Promise<string>(() => {})
        })
        // Answer once the compute is under way (it INCRs first), so the parent can kill it mid-compute.
        while (Number(await raw.get(counter)) === 0) await new Promise((r) => setTimeout(r, 5))
        result = null
      } else if (request.op === 'versioned') {
        const { key, tag } = request
        result = await cache.getOrSet(key, async () => `v${(await cache.versions.get([tag]))[tag]}`)
      } else if (request.op === 'advance') {
        offset += request.ms
        result = null
      } else if (request.op === 'stats') result = cache.stats()
      else result = computes
      process.send?.({ id: request.id, result: result ?? null })
    } catch (error) {
      process.send?.({ id: request.id, error: (error as Error).message })
    }
  })
  process.on('SIGTERM', () => {
    raw.disconnect()
    void cache.close().finally(() => process.exit(0))
  })
}

/**
 * A cache in a separate OS process, driven over IPC by a test (or a benchmark) to check what crosses processes.
 * Started by {@link startCacheProcess}; answers `{ id, op, ... }` messages with `{ id, result }` or `{ id, error }`.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createCache } from '../../src/index.ts'
import { patientRedis } from './redis-server.ts'

type Request =
  | { id: number; op: 'getOrSet'; key: string; value: unknown; deps?: string[] }
  | { id: number; op: 'get'; key: string }
  | { id: number; op: 'set'; key: string; value: unknown }
  | { id: number; op: 'bump'; tags: string[] }
  | { id: number; op: 'check'; deps: Record<string, number> }
  | { id: number; op: 'computes' }

/** A handle on the child process. */
export interface CacheProcess {
  call<T = unknown>(request: Record<string, unknown> & { op: Request['op'] }): Promise<T>
  close(): Promise<void>
}

/** Forks a process holding `createCache({ redis: url, prefix })`, ready when it resolves. */
export async function startCacheProcess(url: string, prefix: string): Promise<CacheProcess> {
  const child = fork(fileURLToPath(import.meta.url), [url, prefix], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  let next = 0
  child.on('message', (message: { id: number; result?: unknown; error?: string; ready?: boolean }) => {
    const pending = waiting.get(message.id)
    if (!pending) return
    waiting.delete(message.id)
    if (message.error !== undefined) pending.reject(new Error(message.error))
    else pending.resolve(message.result)
  })
  const handle: CacheProcess = {
    call: (request) =>
      new Promise((resolve, reject) => {
        const id = ++next
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
        child.send({ ...request, id })
      }),
    close: async () => {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    },
  }
  await handle.call({ op: 'computes' }) // answers once the cache is ready
  return handle
}

if (process.send && process.argv[2] && process.argv[3]) {
  const cache = createCache({ redis: process.argv[2], prefix: process.argv[3], ...patientRedis, logger: { warn: () => {}, error: () => {} } })
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
      else result = computes
      process.send?.({ id: request.id, result: result ?? null })
    } catch (error) {
      process.send?.({ id: request.id, error: (error as Error).message })
    }
  })
  process.on('SIGTERM', () => {
    void cache.close().finally(() => process.exit(0))
  })
}

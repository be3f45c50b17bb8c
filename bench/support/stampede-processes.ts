/** The parent's side of {@link ./stampede-process.ts}: several forked cache processes on one Redis, asked over IPC. */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { HotKeyResult, ProcessVariant, StampedeRequest, StampedeResult } from './stampede-process.ts'

type Reply = { id: number; result?: unknown; error?: string }

/** What each request answers. */
interface Answers {
  stampede: StampedeResult
  hotKey: HotKeyResult
  warm: null
}

/** One forked cache process. */
class CacheProcess {
  readonly #child: ChildProcess
  readonly #waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  #next = 0
  readonly ready: Promise<void>

  constructor(redisUrl: string, variants: readonly ProcessVariant[]) {
    const script = fileURLToPath(new URL('./stampede-process.ts', import.meta.url))
    this.#child = fork(script, [redisUrl, JSON.stringify(variants)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
    this.ready = new Promise((resolve, reject) => {
      this.#waiting.set(0, { resolve: () => resolve(), reject })
      this.#child.once('exit', (code) => reject(new Error(`a stampede process exited with ${code} before it was ready`)))
    })
    this.#child.on('message', (reply: Reply) => {
      const pending = this.#waiting.get(reply.id)
      if (pending === undefined) return
      this.#waiting.delete(reply.id)
      if (reply.error !== undefined) pending.reject(new Error(reply.error))
      else pending.resolve(reply.result)
    })
  }

  ask<R extends StampedeRequest>(request: R): Promise<Answers[R['op']]> {
    return new Promise((resolve, reject) => {
      const id = ++this.#next
      this.#waiting.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.#child.send({ ...request, id })
    })
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()))
    this.#child.disconnect()
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/**
 * `count` cache processes, each with one cache per variant (prefix `stampede-<variant>`) on `redisUrl`.
 * @example
 * ```ts
 * const processes = await StampedeProcesses.start(4, redis.url, [{ id: 'today', cacheOptions: {} }])
 * const results = await processes.all(() => ({ op: 'stampede', variant: 'today', key: 'k', count: 125, at, compute }))
 * await processes.close()
 * ```
 */
export class StampedeProcesses {
  readonly #processes: CacheProcess[]

  private constructor(processes: CacheProcess[]) {
    this.#processes = processes
  }

  static async start(count: number, redisUrl: string, variants: readonly ProcessVariant[]): Promise<StampedeProcesses> {
    const processes = Array.from({ length: count }, () => new CacheProcess(redisUrl, variants))
    try {
      await Promise.all(processes.map((p) => p.ready))
    } catch (error) {
      await Promise.all(processes.map((p) => p.close()))
      throw error
    }
    return new StampedeProcesses(processes)
  }

  get size(): number {
    return this.#processes.length
  }

  /** One request to one process. */
  one<R extends StampedeRequest>(index: number, request: R): Promise<Answers[R['op']]> {
    const target = this.#processes[index]
    if (target === undefined) throw new RangeError(`no process ${index} of ${this.#processes.length}`)
    return target.ask(request)
  }

  /** A request to every process (`make` gets the process's index), answered by all. */
  all<R extends StampedeRequest>(make: (index: number) => R): Promise<Answers[R['op']][]> {
    return Promise.all(this.#processes.map((p, i) => p.ask(make(i))))
  }

  async close(): Promise<void> {
    await Promise.all(this.#processes.map((p) => p.close()))
  }
}

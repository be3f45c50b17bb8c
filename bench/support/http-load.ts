/**
 * HTTP load through autocannon, keeping the time and latency of every response, so that a window of the run (after
 * a fault, say) can be looked at on its own.
 */
import autocannon from 'autocannon'

/** One answered request: when it ended (`Date.now()`), how long it took and its status. */
export interface Answered {
  readonly at: number
  readonly ms: number
  readonly status: number
}

/** What a load run did. */
export interface LoadResult {
  readonly requests: number
  /** Connection errors, timeouts included (autocannon's `errors`). */
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly answered: readonly Answered[]
}

/** Options of {@link runLoad}: a duration, or an amount of requests (`amount: connections` is one request each). */
export interface LoadOptions {
  readonly base: string
  /** Paths each connection asks in turn (the first one only, when there is one). */
  readonly paths: readonly string[]
  readonly connections: number
  readonly seconds?: number
  readonly amount?: number
  /** Seconds without an answer before autocannon counts a timeout (its default: 10). */
  readonly timeoutSeconds?: number
}

/**
 * Runs autocannon against `base` with `paths` and resolves with the whole result and every answer.
 * @example
 * ```ts
 * const burst = await runLoad({ base, paths: ['/eta/article/1'], connections: 500, amount: 500 })
 * ```
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const answered: Answered[] = []
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.base,
        connections: options.connections,
        ...(options.seconds !== undefined ? { duration: options.seconds } : {}),
        ...(options.amount !== undefined ? { amount: options.amount } : {}),
        timeout: options.timeoutSeconds ?? 10,
        requests: options.paths.map((path) => ({ method: 'GET' as const, path })),
      },
      (error: unknown, result) => {
        if (error) {
          reject(error instanceof Error ? error : new Error(String(error)))
          return
        }
        resolve({
          requests: result.requests.total,
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          p99Ms: result.latency.p99,
          maxMs: result.latency.max,
          answered,
        })
      },
    )
    instance.on('response', (_client, status, _bytes, ms) => {
      answered.push({ at: Date.now(), ms, status })
    })
  })
}

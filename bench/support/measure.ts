/**
 * Timing for the benchmarks: one operation run a bounded number of times, sequentially (each awaited before
 * the next) or with a fixed number in flight, and the median over interleaved rounds.
 */

/** One operation of a benchmark; `i` picks the key, so concurrent operations can use distinct keys. */
export type Operation = (i: number) => unknown

/** How the operations of one round are issued. */
export type Mode =
  | { kind: 'sync' }
  | { kind: 'sequential' }
  | { kind: 'inflight'; concurrency: number }

/** A measured case: its label, how it is issued, how many operations make one round. */
export interface Case {
  readonly label: string
  readonly mode: Mode
  readonly opsPerRound: number
  readonly op: Operation
}

/** The median nanoseconds per operation of one case, with the fastest and slowest round. */
export interface Result {
  readonly label: string
  readonly mode: Mode
  readonly nsPerOp: number
  /** Median CPU time this process spent per operation (user + system): less sensitive to other processes' load. */
  readonly cpuNsPerOp: number
  readonly minNs: number
  readonly maxNs: number
  readonly rounds: number
}

// Results of sync operations land here, so the engine cannot drop the calls as dead code.
let sink: unknown

/** Runs `ops` operations and returns the wall-clock and CPU nanoseconds per operation. */
export async function timeRound(op: Operation, ops: number, mode: Mode): Promise<{ ns: number; cpuNs: number }> {
  const cpu = process.cpuUsage()
  const started = process.hrtime.bigint()
  if (mode.kind === 'sync') {
    for (let i = 0; i < ops; i++) sink = op(i)
  } else if (mode.kind === 'sequential') {
    for (let i = 0; i < ops; i++) sink = await op(i)
  } else {
    // `concurrency` workers, each awaiting its own operations one after another: exactly that many in flight.
    const { concurrency } = mode
    const perWorker = Math.ceil(ops / concurrency)
    const workers: Promise<void>[] = []
    for (let w = 0; w < concurrency; w++) {
      workers.push(
        (async () => {
          for (let j = 0; j < perWorker; j++) sink = await op(w + j * concurrency)
        })(),
      )
    }
    await Promise.all(workers)
    ops = perWorker * concurrency
  }
  const elapsed = Number(process.hrtime.bigint() - started)
  const used = process.cpuUsage(cpu)
  return { ns: elapsed / ops, cpuNs: ((used.user + used.system) * 1000) / ops }
}

/**
 * Runs every case once per round, `rounds` times, after one warm-up round that is not counted. Cases are
 * interleaved (round 1 runs them all, then round 2 …) so a noisy moment of the machine touches every case
 * alike instead of one case's whole sample.
 */
export async function runInterleaved(cases: readonly Case[], rounds: number, progress?: (label: string) => void): Promise<Result[]> {
  const samples = cases.map(() => [] as number[])
  const cpuSamples = cases.map(() => [] as number[])
  for (let round = 0; round <= rounds; round++) {
    for (const [index, item] of cases.entries()) {
      if (round === 0) progress?.(item.label)
      const { ns, cpuNs } = await timeRound(item.op, item.opsPerRound, item.mode)
      if (round > 0) {
        samples[index]?.push(ns)
        cpuSamples[index]?.push(cpuNs)
      }
    }
  }
  void sink
  return cases.map((item, index) => {
    const values = samples[index] ?? []
    return {
      label: item.label,
      mode: item.mode,
      nsPerOp: median(values),
      cpuNsPerOp: median(cpuSamples[index] ?? []),
      minNs: Math.min(...values),
      maxNs: Math.max(...values),
      rounds: values.length,
    }
  })
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** The `p`-th percentile (0–100) of `values`, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1] as number
}

/** Operations per second for a time per operation in nanoseconds. */
export function opsPerSecond(nsPerOp: number): number {
  return 1e9 / nsPerOp
}

import type { RequestHandler } from 'express'
import type { CacheStatsSnapshot, TieredCache } from '../src/index.ts'
import type { FragmentCountRow, Renderers } from './engines.ts'
import type { PageCounters, PageCounts } from './page-counters.ts'

/** What `GET /_bench/counters` answers: this process's counters, as `/_cache` draws them. */
export interface BenchCounters {
  pid: number
  stats: CacheStatsSnapshot
  /** Per fragment and engine: `misses` is how many times the fragment's body ran in this process. */
  fragments: FragmentCountRow[]
  /** Per view: for a guest GET, MISS and BYPASS both mean the view rendered. */
  pages: Record<string, PageCounts>
}

/**
 * `GET /_bench/counters` as JSON, mounted only when FRAGCACHE_BENCH=1: `bench/stampede.ts` asks every worker of
 * `start:cluster` for it (one connection per request, so the round robin reaches each) to count renders across them.
 * @example
 * ```ts
 * if (process.env.FRAGCACHE_BENCH === '1') app.get('/_bench/counters', benchCounters({ cache, renderers, pages }))
 * ```
 */
export function benchCounters({ cache, renderers, pages }: { cache: TieredCache; renderers: Renderers; pages: PageCounters }): RequestHandler {
  return function counters(_req, res) {
    const body: BenchCounters = {
      pid: process.pid,
      stats: cache.stats(),
      fragments: renderers.fragmentCounts(),
      pages: Object.fromEntries(pages.snapshot()),
    }
    res.setHeader('Cache-Control', 'no-store')
    res.json(body)
  }
}

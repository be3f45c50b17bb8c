/**
 * The demo site with several workers on one Redis (`example-site/cluster.ts`), once per variant: a cold per-view page
 * and a cold fragment hit by many concurrent requests (renders counted across all workers), a load run with no
 * fault, and Redis killed under load.
 */
import type { BenchCounters } from '../../example-site/bench-counters.ts'
import { RedisServer } from '../../test/support/redis-server.ts'
import { DemoCluster } from '../../test/support/demo-cluster.ts'
import { type Answered, type LoadResult, runLoad } from '../support/http-load.ts'
import { median, percentile } from '../support/measure.ts'
import { formatMs, formatRatio } from '../support/report.ts'
import type { Figure, Section } from '../support/stampede-report.ts'
import { type Variant, type VariantId, l2Timeouts, newerCounter } from '../support/stampede-variants.ts'

export interface DemoSettings {
  readonly workers: number
  readonly upstreamDelayMs: number
  /** Cold trials per page kind, engines alternating. */
  readonly trials: number
  readonly concurrent: number
  readonly loadSeconds: number
  readonly loadConnections: number
  /** Each phase of the outage run (no fault, then Redis killed half-way). */
  readonly outageSeconds: number
}

const ENGINES = ['nunjucks', 'eta'] as const
type Engine = (typeof ENGINES)[number]
/** Article 8 warms the templates; 1–7 stay cold for the trials. */
const COLD_ARTICLES = 7

/** The cached pages of the load runs: every article (body fragment), every category (per view), both home pages. */
const CACHED_PATHS = ENGINES.flatMap((engine) => [
  `/${engine}/`,
  ...Array.from({ length: 8 }, (_, i) => `/${engine}/article/${i + 1}`),
  ...['caching', 'databases', 'templates'].map((slug) => `/${engine}/category/${slug}`),
])

interface ColdTrial {
  renders: number
  failed: number
  maxMs: number
  counted: Counted
}

interface Counted {
  timeouts: number | undefined
  errors: number
  outages: number
  computes: number
  lockWaits: number | undefined
  lockTimeouts: number | undefined
  staleServes: number | undefined
}

interface DemoRun {
  pages: ColdTrial[]
  fragments: ColdTrial[]
  load: { http: LoadResult; counted: Counted }
  outage: { noFault: LoadResult; killed: LoadResult; after: readonly Answered[]; counted: Counted }
  stderr: string
}

export async function demoCases(variants: readonly Variant[], settings: DemoSettings, progress: (line: string) => void): Promise<Section[]> {
  const runs = new Map<VariantId, DemoRun>()
  for (const variant of variants) {
    if (!variant.available) continue
    progress(`demo, ${variant.label}: ${settings.workers} workers`)
    runs.set(variant.id, await runDemo(variant, settings, progress))
  }
  return [coldSection(runs, variants, settings), loadSection(runs, settings), outageSection(runs, settings)]
}

async function runDemo(variant: Variant, settings: DemoSettings, progress: (line: string) => void): Promise<DemoRun> {
  const redis = await RedisServer.start()
  let demo: DemoCluster | undefined
  try {
    demo = await DemoCluster.start({ redisUrl: redis.url, workers: settings.workers, upstreamDelayMs: settings.upstreamDelayMs, env: { ...variant.demoEnv, FRAGCACHE_BENCH: '1' } })
    // Templates compiled and the layout's fragments cached in every worker: the trials measure one cold part each.
    for (const engine of ENGINES) {
      await demo.warm(`/${engine}/`)
      await demo.warm(`/${engine}/article/8`)
      await demo.warm(`/${engine}/category/caching?warm=1`)
    }
    const pages: ColdTrial[] = []
    const fragments: ColdTrial[] = []
    for (let t = 0; t < settings.trials; t++) {
      const engine = ENGINES[t % 2] as Engine
      const article = (Math.floor(t / 2) % COLD_ARTICLES) + 1
      pages.push(await coldTrial(demo, `/${engine}/category/databases?cold=${t}`, settings.concurrent, (c) => pageRenders(c, `${engine} category`)))
      fragments.push(await coldTrial(demo, `/${engine}/article/${article}`, settings.concurrent, (c) => fragmentRenders(c, engine, 'article_body')))
    }
    progress(`demo, ${variant.label}: ${settings.loadSeconds} s load run`)
    const before = await demo.counters()
    const http = await runLoad({ base: demo.base, paths: CACHED_PATHS, connections: settings.loadConnections, seconds: settings.loadSeconds })
    const load = { http, counted: countedBetween(before, await demo.counters()) }

    progress(`demo, ${variant.label}: Redis killed under load`)
    const noFault = await runLoad({ base: demo.base, paths: CACHED_PATHS, connections: settings.loadConnections, seconds: settings.outageSeconds })
    const beforeKill = await demo.counters()
    let killedAt = Number.POSITIVE_INFINITY
    const kill = setTimeout(() => {
      killedAt = Date.now()
      void redis.stop()
    }, (settings.outageSeconds * 1000) / 2)
    const killed = await runLoad({ base: demo.base, paths: CACHED_PATHS, connections: settings.loadConnections, seconds: settings.outageSeconds })
    clearTimeout(kill)
    const outage = { noFault, killed, after: killed.answered.filter((a) => a.at >= killedAt), counted: countedBetween(beforeKill, await demo.counters()) }
    return { pages, fragments, load, outage, stderr: demo.stderr }
  } finally {
    await demo?.stop()
    await redis.stop()
  }
}

/** One cold page asked by `concurrent` connections at once, one request each; renders counted across workers. */
async function coldTrial(demo: DemoCluster, path: string, concurrent: number, renders: (counters: BenchCounters[]) => number): Promise<ColdTrial> {
  const before = await demo.counters()
  const http = await runLoad({ base: demo.base, paths: [path], connections: concurrent, amount: concurrent })
  const after = await demo.counters()
  return { renders: renders(after) - renders(before), failed: http.errors + http.non2xx, maxMs: http.maxMs, counted: countedBetween(before, after) }
}

/** Times the view rendered: for a guest GET, a MISS or a BYPASS of the page cache. */
function pageRenders(counters: BenchCounters[], view: string): number {
  return counters.reduce((n, c) => n + (c.pages[view]?.MISS ?? 0) + (c.pages[view]?.BYPASS ?? 0), 0)
}

/** Times the fragment's body ran. */
function fragmentRenders(counters: BenchCounters[], engine: Engine, name: string): number {
  return counters.reduce((n, c) => n + (c.fragments.find((f) => f.engine === engine && f.name === name)?.misses ?? 0), 0)
}

function countedBetween(before: BenchCounters[], after: BenchCounters[]): Counted {
  const sum = (counters: BenchCounters[], pick: (c: BenchCounters) => number | undefined) => {
    const values = counters.map(pick)
    return values.some((v) => v === undefined) ? undefined : (values as number[]).reduce((a, b) => a + b, 0)
  }
  const delta = (pick: (c: BenchCounters) => number | undefined) => {
    const a = sum(after, pick)
    const b = sum(before, pick)
    return a === undefined || b === undefined ? undefined : a - b
  }
  return {
    timeouts: delta((c) => l2Timeouts(c.stats)),
    errors: delta((c) => c.stats.l2.errors) ?? 0,
    outages: delta((c) => c.stats.l2.outages) ?? 0,
    computes: delta((c) => c.stats.computes) ?? 0,
    lockWaits: delta((c) => newerCounter(c.stats, 'lockWaits')),
    lockTimeouts: delta((c) => newerCounter(c.stats, 'lockTimeouts')),
    staleServes: delta((c) => newerCounter(c.stats, 'staleServes')),
  }
}

/** A counter a fragcache may not have yet. */
function maybe(value: number | undefined): string {
  return value === undefined ? 'not counted yet' : String(value)
}

function coldSection(runs: Map<VariantId, DemoRun>, variants: readonly Variant[], settings: DemoSettings): Section {
  const row = (name: string, show: (run: DemoRun) => string, target?: string): Figure => ({
    name,
    values: Object.fromEntries([...runs].map(([id, run]) => [id, show(run)])),
    ...(target === undefined ? {} : { target }),
  })
  const spread = (values: number[]) => (values.length === 0 ? '–' : `${median(values)} (${Math.min(...values)}–${Math.max(...values)})`)
  const judgeRenders = (pick: (run: DemoRun) => ColdTrial[]) => (id: VariantId) => {
    const run = runs.get(id)
    if (run === undefined) return undefined
    const renders = pick(run).map((t) => t.renders)
    return { met: renders.every((r) => r === 1), measured: `renders per trial ${renders.join(', ')}` }
  }
  return {
    title: `Demo site, ${settings.workers} workers on one Redis: a cold page hit by ${settings.concurrent} concurrent requests`,
    method:
      `example-site/cluster.ts (WORKERS=${settings.workers}, a private Redis, a fresh SQLite file, UPSTREAM_DELAY_MS=${settings.upstreamDelayMs}), ` +
      `one cluster per column; autocannon with ${settings.concurrent} connections, one request each. Per-view page: /<engine>/category/databases?cold=<trial> ` +
      `(cachePage), renders = MISS + BYPASS of the view; fragment page: /<engine>/article/<id>, renders = runs of the article_body body. ` +
      `Summed over the workers' GET /_bench/counters. ${settings.trials} trials each, engines alternating; median (min–max).`,
    figures: [
      row('per-view page: renders per trial', (run) => spread(run.pages.map((t) => t.renders)), '1'),
      row('fragment: renders per trial', (run) => spread(run.fragments.map((t) => t.renders)), '1'),
      row('slowest response (median of trials), page / fragment', (run) => `${formatMs(median(run.pages.map((t) => t.maxMs)))} / ${formatMs(median(run.fragments.map((t) => t.maxMs)))}`),
      row('lock waits / lock waits that timed out, all trials', (run) => {
        const trials = [...run.pages, ...run.fragments]
        const total = (pick: (c: Counted) => number | undefined) =>
          trials.some((t) => pick(t.counted) === undefined) ? undefined : trials.reduce((n, t) => n + (pick(t.counted) ?? 0), 0)
        return `${maybe(total((c) => c.lockWaits))} / ${maybe(total((c) => c.lockTimeouts))}`
      }),
      row('failed responses (errors + non-2xx), all trials', (run) => String([...run.pages, ...run.fragments].reduce((n, t) => n + t.failed, 0)), '0'),
    ],
    targets: [
      { text: `a cold per-view page renders once across ${settings.workers} workers`, judge: judgeRenders((run) => run.pages) },
      { text: `a cold fragment renders once across ${settings.workers} workers`, judge: judgeRenders((run) => run.fragments) },
    ],
    notes: variants.filter((v) => runs.has(v.id)).map((v) => {
      const run = runs.get(v.id) as DemoRun
      return `${v.label}: page renders ${run.pages.map((t) => t.renders).join(', ')}; fragment renders ${run.fragments.map((t) => t.renders).join(', ')}`
    }),
  }
}

function loadSection(runs: Map<VariantId, DemoRun>, settings: DemoSettings): Section {
  const row = (name: string, show: (run: DemoRun) => string, target?: string): Figure => ({
    name,
    values: Object.fromEntries([...runs].map(([id, run]) => [id, show(run)])),
    ...(target === undefined ? {} : { target }),
  })
  return {
    title: `Demo site under load, no fault: ${settings.loadSeconds} s, ${settings.loadConnections} connections, default redisTimeoutMs (50 ms)`,
    method:
      `The same cluster, after the cold trials: autocannon over ${CACHED_PATHS.length} cached pages (articles, categories, home, both engines) ` +
      `for ${settings.loadSeconds} s. Redis figures summed over the workers' stats() (before/after).`,
    figures: [
      row('l2.timeouts', (run) => maybe(run.load.counted.timeouts), '0'),
      row('l2.errors', (run) => String(run.load.counted.errors), '0'),
      row('l2.outages', (run) => String(run.load.counted.outages), '0'),
      row('computes (renders of cached parts)', (run) => String(run.load.counted.computes)),
      row('lock waits / lock waits that timed out', (run) => `${maybe(run.load.counted.lockWaits)} / ${maybe(run.load.counted.lockTimeouts)}`),
      row('stale serves', (run) => maybe(run.load.counted.staleServes)),
      row('requests', (run) => String(run.load.http.requests)),
      row('p99 latency', (run) => formatMs(run.load.http.p99Ms)),
      row('max latency', (run) => formatMs(run.load.http.maxMs)),
      row('responses slower than 1 s', (run) => String(run.load.http.answered.filter((a) => a.ms >= 1000).length)),
      row('failed requests (errors + timeouts + non-2xx)', (run) => String(run.load.http.errors + run.load.http.non2xx)),
    ],
    targets: [
      {
        text: 'no fault: 0 timeouts, 0 outages',
        judge: (id) => {
          const counted = runs.get(id)?.load.counted
          if (counted === undefined) return undefined
          const timeouts = counted.timeouts ?? counted.errors
          const what = counted.timeouts === undefined ? 'l2.errors (timeouts not counted yet)' : 'l2.timeouts'
          return { met: timeouts === 0 && counted.outages === 0, measured: `${what} ${timeouts}, outages ${counted.outages}` }
        },
      },
    ],
  }
}

function outageSection(runs: Map<VariantId, DemoRun>, settings: DemoSettings): Section {
  const row = (name: string, show: (run: DemoRun) => string, target?: string): Figure => ({
    name,
    values: Object.fromEntries([...runs].map(([id, run]) => [id, show(run)])),
    ...(target === undefined ? {} : { target }),
  })
  const p99After = (run: DemoRun) => percentile(run.outage.after.map((a) => a.ms), 99)
  const p99Before = (run: DemoRun) => percentile(run.outage.noFault.answered.map((a) => a.ms), 99)
  const failed = (http: LoadResult) => http.errors + http.non2xx
  return {
    title: `Demo site: Redis killed under load (${settings.outageSeconds} s, SIGKILL half-way)`,
    method:
      `The same cluster: ${settings.outageSeconds} s of load on the cached pages with no fault, then ${settings.outageSeconds} s more with ` +
      `Redis killed (SIGKILL) half-way. p99 after the kill is over the responses that ended after it.`,
    figures: [
      row('failed requests (errors + timeouts + non-2xx) with the kill', (run) => String(failed(run.outage.killed)), '0'),
      row('  of which timeouts / non-2xx', (run) => `${run.outage.killed.timeouts} / ${run.outage.killed.non2xx}`),
      row('p99, no fault', (run) => formatMs(p99Before(run))),
      row('p99 after the kill', (run) => formatMs(p99After(run))),
      row('p99 after the kill ÷ no fault', (run) => formatRatio(p99After(run) / p99Before(run)), '≤ 2×'),
      row('max latency after the kill', (run) => formatMs(Math.max(0, ...run.outage.after.map((a) => a.ms)))),
      row('responses after the kill', (run) => String(run.outage.after.length)),
      row('l2.outages during the run with the kill', (run) => String(run.outage.counted.outages)),
    ],
    targets: [
      {
        text: 'Redis killed under load: 0 failed requests',
        judge: (id) => {
          const run = runs.get(id)
          return run === undefined ? undefined : { met: failed(run.outage.killed) === 0, measured: `${failed(run.outage.killed)} failed` }
        },
      },
      {
        text: 'p99 during the outage within 2× of the no-fault p99',
        judge: (id) => {
          const run = runs.get(id)
          if (run === undefined) return undefined
          const ratio = p99After(run) / p99Before(run)
          return { met: ratio <= 2, measured: `${formatMs(p99After(run))} vs ${formatMs(p99Before(run))}, ${formatRatio(ratio)}` }
        },
      },
    ],
    notes: [...runs].map(([id, run]) => `${id}: the cluster's stderr over the whole run: ${summarizeLines(run.stderr)}`),
  }
}

/** Distinct lines with their counts, most frequent first, numbers and pids masked (`12× fragcache: Redis is unavailable (get: …)`). */
function summarizeLines(text: string): string {
  const counts = new Map<string, number>()
  for (const line of text.split('\n').map((l) => l.trim()).filter((l) => l !== '')) {
    const shape = line.replace(/\d+/g, 'N')
    counts.set(shape, (counts.get(shape) ?? 0) + 1)
  }
  if (counts.size === 0) return 'empty'
  const lines = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([shape, n]) => `${n}× ${shape}`)
  return `\n\`\`\`\n${lines.join('\n')}${counts.size > 6 ? `\n… ${counts.size - 6} more kinds of line` : ''}\n\`\`\``
}

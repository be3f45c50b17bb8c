// `npm run bench:site`: the seeds' Apache Bench run (a view waiting 2 s on an API: 1.69 req/s uncached, ~36 cached),
// redone with autocannon on loopback, in one run: Express hello-world (the ceiling), the slow-upstream page
// uncached, cached per view (cachePage), with only its widget fragment cached, and behind apicache.
//
// The site runs in a child process so autocannon does not share its CPU. Cases are interleaved round by round
// and the median of the rounds is reported, with the server's CPU time per request (user + system, from
// process.cpuUsage), which a busy machine disturbs much less than the request rate. Two cases isolate the page
// caches: cachePage and apicache each in front of the hello-world handler itself, so all three answer the same bytes.
// Env: ROUNDS (3), DURATION (5 s), WARMUP (1 s), CONNECTIONS (50), UPSTREAM_DELAY_MS (2000).
import { type ChildProcess, fork } from 'node:child_process'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import type { Request, Response } from 'express'

interface BenchSettings {
  rounds: number
  duration: number
  warmup: number
  connections: number
  upstreamDelayMs: number
}

interface Case {
  name: string
  path: string
  /** Whether a warm-up makes sense (it fills the cache); the uncached page gains nothing from one. */
  warm: boolean
}

const CASES: Case[] = [
  { name: 'hello-world res.send (ceiling)', path: '/hello', warm: true },
  { name: 'hello-world, cachePage in front', path: '/hello/cachepage', warm: true },
  { name: 'hello-world, apicache in front', path: '/hello/apicache', warm: true },
  { name: 'slow page, uncached', path: '/nunjucks/forecast/live', warm: false },
  { name: 'slow page, cachePage in front', path: '/cachepage/nunjucks/forecast/live', warm: true },
  { name: 'slow page, apicache in front', path: '/apicache/nunjucks/forecast/live', warm: true },
  { name: 'slow page, cachePage on the site route', path: '/nunjucks/forecast/page', warm: true },
  { name: 'slow page, widget fragment (Nunjucks)', path: '/nunjucks/forecast', warm: true },
  { name: 'slow page, widget fragment (Eta)', path: '/eta/forecast', warm: true },
]

function settingsFromEnv(): BenchSettings {
  const read = (name: string, fallback: number) => {
    const raw = process.env[name]
    const value = raw === undefined || raw === '' ? fallback : Number(raw)
    if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of at least 0; got "${raw}"`)
    return value
  }
  return {
    rounds: Math.max(1, Math.round(read('ROUNDS', 3))),
    duration: read('DURATION', 5),
    warmup: read('WARMUP', 1),
    connections: Math.max(1, Math.round(read('CONNECTIONS', 50))),
    upstreamDelayMs: read('UPSTREAM_DELAY_MS', 2000),
  }
}

/**
 * The child: the demo site (memory cache, fresh SQLite), a hello-world route, and apicache and cachePage each
 * mounted in front of the site; the site's own `/nunjucks/forecast/page` has cachePage after its cookie parser,
 * request scope and router.
 */
async function serve(upstreamDelayMs: number): Promise<void> {
  const [{ default: express }, { default: apicache }, { createCache }, { cachePage }, { createSite }] = await Promise.all([
    import('express'),
    import('apicache'),
    import('../src/index.ts'),
    import('../src/express/index.ts'),
    import('../example-site/site.ts'),
  ])
  const cache = createCache({ prefix: 'bench-site' })
  // TTLs longer than the run: the cached cases measure steady-state hits, not a re-render stall every minute.
  const site = await createSite({ cache, dbFile: ':memory:', upstreamDelayMs, pageTtl: 3600, widgetTtl: 3600 })
  const app = express()
  app.disable('x-powered-by')
  const hello = (_req: Request, res: Response) => {
    res.send('Hello World!')
  }
  const apicacheHour = apicache.options({ statusCodes: { include: [200] } }).middleware('1 hour')
  app.get('/hello', hello)
  app.get('/hello/cachepage', cachePage(cache, { ttl: 3600 }), hello)
  app.get('/hello/apicache', apicacheHour, hello)
  // apicache and cachePage at the same place, in front of the same uncached page, for a like-for-like hit.
  app.use('/apicache', apicacheHour, site.app)
  app.use('/cachepage', cachePage(cache, { ttl: 3600 }), site.app)
  app.use(site.app)
  const server = app.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.send?.({ port: typeof address === 'object' && address ? address.port : 0 })
  })
  process.on('message', (message) => {
    if ((message as { cpu?: boolean }).cpu === true) process.send?.({ cpu: process.cpuUsage() })
  })
  process.on('disconnect', () => {
    server.closeAllConnections()
    server.close()
    void site.close().then(() => cache.close()).then(() => process.exit(0))
  })
}

function startChild(upstreamDelayMs: number): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
    execArgv: process.execArgv,
    env: { ...process.env, BENCH_UPSTREAM_DELAY_MS: String(upstreamDelayMs) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve({ child, port: (message as { port: number }).port }))
    child.once('exit', (code) => reject(new Error(`the bench server exited with ${code} before listening`)))
  })
}

/** The server's CPU time so far (user + system), in microseconds. */
function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      const cpu = (message as { cpu?: NodeJS.CpuUsage }).cpu
      if (cpu === undefined) return
      child.off('message', onMessage)
      resolve(cpu.user + cpu.system)
    }
    child.on('message', onMessage)
    child.send({ cpu: true })
  })
}

interface Measured {
  rps: number
  requests: number
  /** Server CPU microseconds per request. */
  cpuUs: number
  p50: number
  p99: number
  non2xx: number
  errors: number
}

async function measure(url: string, connections: number, duration: number): Promise<Measured> {
  const result = await autocannon({ url, connections, duration })
  return {
    // Total over elapsed time, not the mean of per-second samples: a 2 s page answers in lumps.
    rps: result.requests.total / Math.max(result.duration, duration),
    requests: result.requests.total,
    cpuUs: Number.NaN,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

async function main(): Promise<void> {
  const settings = settingsFromEnv()
  const { child, port } = await startChild(settings.upstreamDelayMs)
  const base = `http://127.0.0.1:${port}`
  console.log(
    `bench:site — ${settings.rounds} rounds × ${CASES.length} cases, ${settings.duration} s each (+${settings.warmup} s warm-up), ` +
      `${settings.connections} connections, upstream delay ${settings.upstreamDelayMs} ms, loopback; server in its own process`,
  )
  const load = () => loadavg().map((n) => n.toFixed(2)).join(' ')
  console.log(`machine: ${cpus().length} CPUs, node ${process.version}, load average at start ${load()}`)
  const runs = new Map<string, Measured[]>(CASES.map((c) => [c.name, []]))
  try {
    for (const c of CASES) {
      // One request first: for the cached cases it is the miss that fills the cache.
      const response = await fetch(base + c.path)
      if (response.status !== 200) throw new Error(`${c.path} answered ${response.status}: ${await response.text()}`)
      await response.arrayBuffer()
    }
    for (let round = 1; round <= settings.rounds; round++) {
      for (const c of CASES) {
        if (c.warm && settings.warmup > 0) await measure(base + c.path, settings.connections, settings.warmup)
        const cpuBefore = await serverCpu(child)
        const measured = await measure(base + c.path, settings.connections, settings.duration)
        measured.cpuUs = (await serverCpu(child)) - cpuBefore
        measured.cpuUs /= Math.max(1, measured.requests)
        runs.get(c.name)?.push(measured)
        console.log(
          `  round ${round}: ${c.name.padEnd(40)} ${measured.rps.toFixed(1).padStart(9)} req/s ${measured.cpuUs.toFixed(0).padStart(6)} µs CPU/req`,
        )
      }
    }
  } finally {
    child.disconnect()
  }
  console.log(`load average at end ${load()}`)

  const rows = CASES.map((c) => {
    const measured = runs.get(c.name) ?? []
    return {
      name: c.name,
      rps: median(measured.map((m) => m.rps)),
      rounds: measured.map((m) => m.rps),
      cpuUs: median(measured.map((m) => m.cpuUs)),
      p50: median(measured.map((m) => m.p50)),
      p99: median(measured.map((m) => m.p99)),
      bad: measured.reduce((n, m) => n + m.non2xx + m.errors, 0),
    }
  })
  const rate = (name: string) => rows.find((r) => r.name === name)?.rps ?? Number.NaN
  const cpuOf = (name: string) => rows.find((r) => r.name === name)?.cpuUs ?? Number.NaN
  const hello = rate(CASES[0]!.name)
  const helloCachePage = rate(CASES[1]!.name)
  const helloApicache = rate(CASES[2]!.name)
  const uncached = rate(CASES[3]!.name)
  const perView = rate(CASES[4]!.name)
  const apicacheRate = rate(CASES[5]!.name)
  const perViewOnRoute = rate(CASES[6]!.name)
  const fragment = rate(CASES[7]!.name)
  const fragmentEta = rate(CASES[8]!.name)

  console.log('')
  console.log(
    `| case | req/s (median) | rounds | vs hello-world | vs uncached | server CPU/req | p50 / p99 latency | non-2xx + errors |\n` +
      `| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |`,
  )
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.rps.toFixed(1)} | ${r.rounds.map((x) => x.toFixed(0)).join(' / ')} | ${((r.rps / hello) * 100).toFixed(1)}% | ` +
        `${(r.rps / uncached).toFixed(1)}× | ${r.cpuUs.toFixed(0)} µs | ${r.p50} / ${r.p99} ms | ${r.bad} |`,
    )
  }
  const bound = settings.connections / (settings.upstreamDelayMs / 1000)
  console.log('')
  console.log(
    `uncached is bounded by connections / upstream delay = ${settings.connections} / ${settings.upstreamDelayMs / 1000} s = ${bound.toFixed(1)} req/s ` +
      `(fewer in a ${settings.duration} s window: a request started in its last ${settings.upstreamDelayMs / 1000} s does not finish in it)`,
  )
  const check = (label: string, ok: boolean, detail: string) => console.log(`${ok ? 'MET ' : 'MISSED'}  ${label}: ${detail}`)
  const cpuRatio = (a: string, b: string) => `${cpuOf(a).toFixed(0)} vs ${cpuOf(b).toFixed(0)} µs CPU/req`
  check(
    'per-view hit >= apicache (hello-world handler)',
    helloCachePage >= helloApicache,
    `${helloCachePage.toFixed(0)} vs ${helloApicache.toFixed(0)} req/s (${((helloCachePage / helloApicache) * 100).toFixed(1)}%); ${cpuRatio(CASES[1]!.name, CASES[2]!.name)}`,
  )
  check(
    'per-view hit >= 80% of hello-world (hello-world handler)',
    helloCachePage >= 0.8 * hello,
    `${((helloCachePage / hello) * 100).toFixed(1)}%; ${cpuRatio(CASES[1]!.name, CASES[0]!.name)}`,
  )
  check('per-view hit >= apicache (both in front)', perView >= apicacheRate, `${perView.toFixed(0)} vs ${apicacheRate.toFixed(0)} req/s (${((perView / apicacheRate) * 100).toFixed(1)}%)`)
  check('per-view hit >= 80% of hello-world (in front)', perView >= 0.8 * hello, `${((perView / hello) * 100).toFixed(1)}%`)
  check('per-view hit >= 80% of hello-world (site route)', perViewOnRoute >= 0.8 * hello, `${((perViewOnRoute / hello) * 100).toFixed(1)}%`)
  check('fragment-cached >= 10x uncached (Nunjucks)', fragment >= 10 * uncached, `${(fragment / uncached).toFixed(1)}×`)
  check('fragment-cached >= 10x uncached (Eta)', fragmentEta >= 10 * uncached, `${(fragmentEta / uncached).toFixed(1)}×`)
}

if (process.argv.includes('--serve')) {
  await serve(Number(process.env.BENCH_UPSTREAM_DELAY_MS ?? 2000))
} else {
  await main()
}

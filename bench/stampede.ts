// `npm run bench:stampede`: the figures of the "rendered once" issue, side by side for today's behaviour
// (`lock: false, grace: 0`) and the new defaults, in one run:
// - cross-process single-flight: forked processes on one Redis, many concurrent getOrSet of one cold key;
// - a hot key expiring under load, with grace;
// - a busy event loop and a healthy Redis: timeouts, outages, reads turned into computes;
// - concurrent misses of one key: GETs sent to Redis;
// - the demo site with several workers: a cold page and a cold fragment hit at once (renders across workers), a load
//   run with no fault, and Redis killed under load.
// Until the new options land, the "new defaults" column says "not available yet" (createCache rejects them). Both
// columns run this checkout's code: what is not an option (how timeouts are measured, misses coalesced) is the same in both.
// Everything runs on private redis-servers on free loopback ports. Figures are medians over trials or rounds.
//
// Env: TRIALS (10, cross-process trials), ROUNDS (3, hot key, busy loop, coalescing), PROCESSES (4), CONCURRENT (500),
// DEMO_TRIALS (4, cold pages per kind), WORKERS (4), LOAD_SECONDS (30), LOAD_CONNECTIONS (50), OUTAGE_SECONDS (6),
// UPSTREAM_DELAY_MS (20), SKIP (comma-separated: single-flight, hot-key, busy-loop, coalescing, demo).
import { cpus, loadavg } from 'node:os'
import { Redis } from 'ioredis'
import { createCache } from '../src/index.ts'
import { RedisServer } from '../test/support/redis-server.ts'
import { busyLoopCase } from './stampede/busy-loop.ts'
import { coalescingCase } from './stampede/coalescing.ts'
import { demoCases } from './stampede/demo.ts'
import { hotKeyCase } from './stampede/hot-key.ts'
import { singleFlightCase } from './stampede/single-flight.ts'
import { StampedeProcesses } from './support/stampede-processes.ts'
import { type Section, renderSection } from './support/stampede-report.ts'
import { knownStampedeOptions, stampedeVariants } from './support/stampede-variants.ts'

const CASES = ['single-flight', 'hot-key', 'busy-loop', 'coalescing', 'demo'] as const
type CaseName = (typeof CASES)[number]

function settingsFromEnv() {
  const read = (name: string, fallback: number, min = 1) => {
    const raw = process.env[name]
    const value = raw === undefined || raw === '' ? fallback : Number(raw)
    if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number of at least ${min}; got "${raw}"`)
    return value
  }
  const skip = new Set((process.env.SKIP ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))
  for (const name of skip) if (!(CASES as readonly string[]).includes(name)) throw new Error(`SKIP: unknown case "${name}"; cases are ${CASES.join(', ')}`)
  return {
    runs: (name: CaseName) => !skip.has(name),
    processes: Math.round(read('PROCESSES', 4)),
    singleFlight: { trials: Math.round(read('TRIALS', 10)), concurrent: Math.round(read('CONCURRENT', 500)), computeMs: 200 },
    hotKey: {
      rounds: Math.round(read('ROUNDS', 3)),
      ttlSeconds: 1.5,
      computeMs: 100,
      graceSeconds: 10,
      softTimeoutMs: 50,
      concurrencyPerProcess: 5,
      pauseMs: 10,
      afterExpiryMs: 1000,
    },
    busyLoop: { rounds: Math.round(read('ROUNDS', 3)), reads: 40, blockMs: 60 },
    coalescing: { rounds: Math.round(read('ROUNDS', 3)) + 2, concurrent: 5 },
    demo: {
      workers: Math.round(read('WORKERS', 4)),
      upstreamDelayMs: read('UPSTREAM_DELAY_MS', 20, 0),
      trials: Math.round(read('DEMO_TRIALS', 4)),
      concurrent: Math.round(read('CONCURRENT', 500)),
      loadSeconds: read('LOAD_SECONDS', 30),
      loadConnections: Math.round(read('LOAD_CONNECTIONS', 50)),
      outageSeconds: read('OUTAGE_SECONDS', 6, 2),
    },
  }
}

async function main(): Promise<void> {
  const settings = settingsFromEnv()
  const started = performance.now()
  const known = await knownStampedeOptions(createCache)
  const variants = stampedeVariants(known)
  const load = () => loadavg().map((n) => n.toFixed(2)).join(' ')
  console.log(`bench:stampede — machine: ${cpus().length} CPUs, node ${process.version}, load average at start ${load()}`)
  console.log(
    `stampede options this fragcache knows: ${known.size === 0 ? 'none (lock, grace, softTimeoutMs are rejected as unknown)' : [...known].join(', ')}; ` +
      `columns: ${variants.map((v) => `${v.label}${v.available ? '' : ' (not available yet)'}`).join(' | ')}`,
  )
  console.log('both columns run this checkout: only lock and grace differ; what is not an option is the same in both')
  const progress = (line: string) => console.log(`  … ${line} (${((performance.now() - started) / 1000).toFixed(0)} s)`)
  const sections: Section[] = []

  const redis = await RedisServer.start()
  const observer = new Redis(redis.port, '127.0.0.1')
  try {
    const processVariants = variants.filter((v) => v.available).map((v) => ({ id: v.id, cacheOptions: v.cacheOptions }))
    if (settings.runs('single-flight') || settings.runs('hot-key')) {
      const processes = await StampedeProcesses.start(settings.processes, redis.url, processVariants)
      try {
        if (settings.runs('single-flight')) {
          progress('cross-process single-flight')
          sections.push(await singleFlightCase(processes, observer, variants, settings.singleFlight))
        }
        if (settings.runs('hot-key')) {
          progress('hot key expiring under load')
          sections.push(await hotKeyCase(processes, observer, variants, settings.hotKey))
        }
      } finally {
        await processes.close()
      }
    }
    if (settings.runs('busy-loop')) {
      progress('busy event loop, no fault')
      sections.push(await busyLoopCase(redis.url, variants, settings.busyLoop))
    }
    if (settings.runs('coalescing')) {
      progress('concurrent misses')
      sections.push(await coalescingCase(redis.url, observer, variants, settings.coalescing))
    }
  } finally {
    observer.disconnect()
    await redis.stop()
  }
  if (settings.runs('demo')) sections.push(...(await demoCases(variants, settings.demo, progress)))

  console.log(`\nload average at end ${load()}; ${((performance.now() - started) / 1000).toFixed(0)} s in all\n`)
  console.log(sections.map((section) => renderSection(section, variants)).join('\n\n'))
}

await main()
// The forked processes and servers are gone; anything else left (a socket autocannon keeps) must not hold the run open.
process.exit(0)

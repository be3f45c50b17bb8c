/**
 * `npm run bench:versions` — data versions on a private redis-server (never the shared 6379):
 *
 * (a) How long a bump takes to reach another OS process: a child process (bench/support/version-watcher.ts)
 *     holds the tag's version in its L1 and watches it with `versions.check`; the parent bumps the tag 1,000
 *     times, one at a time, and times each from just before `bump()` is called to the moment the child's IPC
 *     message "dropped" arrives. That includes the bump's own round trip, the publish, the bus delivery, one
 *     event-loop turn of the child, and one IPC hop back (its cost is measured alone and printed). After each
 *     drop the child reads the version again and reports it: it must be the one `bump()` returned.
 * (b) Redis round trips per read of an entry with 5 deps: counted on the client (commands and round trips the
 *     cache's ioredis client sent) and on the server (`INFO commandstats` deltas), never estimated.
 *
 * Environment: BENCH_BUMPS (default 1000).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createCache, runInRequestScope } from '../src/index.ts'
import type { TieredCache } from '../src/index.ts'
import { RedisServer } from '../test/support/redis-server.ts'
import { median, percentile } from './support/measure.ts'
import { type CountingClient, commandDelta, commandStats, countingClient, describeCounts } from './support/redis-counters.ts'
import { formatMs, markdownTable, verdict } from './support/report.ts'
import { fragmentHtml } from './support/values.ts'
import type { WatcherReply, WatcherRequest } from './support/version-watcher.ts'

const BUMPS = positiveInt(process.env.BENCH_BUMPS, 1000)
const PINGS = 1000
const TAG = 'article:42'
const DEPS = ['article:1', 'article:2', 'category:3', 'author:4', 'site'] as const
const STEADY_READS = 1000
const COLD_READS = 50
const html = fragmentHtml(1024)


// (a) ------------------------------------------------------------------------------------------------------

async function propagation(): Promise<void> {
  const cache = createCache({ prefix: 'vbench', redis: server.url })
  await cache.ready()
  const watcher = new Watcher(spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./support/version-watcher.ts', import.meta.url)), server.url, 'vbench', TAG], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }))
  try {
    await watcher.next('ready', 30_000)
    // The IPC hop alone, so it can be told apart from the bus.
    const ipc: number[] = []
    for (let n = 0; n < PINGS; n++) {
      const started = performance.now()
      watcher.send({ type: 'ping', n })
      await watcher.next('pong')
      ipc.push(performance.now() - started)
    }

    const delays: number[] = []
    const oneWay: number[] = []
    const bumpCalls: number[] = []
    let wrongVersions = 0
    let timeouts = 0
    let expected: number | undefined
    watcher.send({ type: 'arm' })
    for (let i = 0; i < BUMPS; i++) {
      const armed = await watcher.next('armed')
      if (expected !== undefined && armed.version !== expected) wrongVersions += 1
      const started = performance.now()
      const bumped = await cache.versions.bump(TAG)
      const bumpedAt = performance.now()
      const seen = await watcher.nextOf(['dropped', 'timeout'])
      if (seen.type !== 'dropped') {
        timeouts += 1
      } else {
        delays.push(performance.now() - started)
        oneWay.push(seen.at - (performance.timeOrigin + started))
        bumpCalls.push(bumpedAt - started)
      }
      expected = bumped[TAG]
      watcher.send({ type: 'arm' })
    }
    const last = await watcher.next('armed')
    if (last.version !== expected) wrongVersions += 1

    const ipcOneWay = ipc.map((ms) => ms / 2)
    const row = (what: string, values: number[]) => [what, formatMs(median(values)), formatMs(percentile(values, 99)), formatMs(Math.max(...values))]
    console.log(`## (a) Propagation of a bump to another process — ${BUMPS} sequential bumps of "${TAG}"\n`)
    console.log(
      markdownTable(
        ['measure', 'p50', 'p99', 'max'],
        [
          row('bump() called → other process\'s L1 dropped the version (seen by the parent over IPC)', delays),
          row('same, child\'s clock (timeOrigin-based, no IPC hop back)', oneWay),
          row('bump() call itself (EVALSHA INCR round trip, then PUBLISH sent)', bumpCalls),
          row('IPC hop alone (half a ping-pong), included in the first row', ipcOneWay),
        ],
      ),
    )
    console.log(
      `\nobserved ${delays.length} of ${BUMPS} bumps (${timeouts} watches gave up after 5 s); versions the child read after a drop that differ from what bump() returned: ${wrongVersions}\n`,
    )
    const p99 = percentile(delays, 99)
    console.log(verdict(p99 < 50 && timeouts === 0, 'propagation p99 < 50 ms (every bump observed)', `p99 ${formatMs(p99)}, ${timeouts} missed`))
    console.log('')
  } finally {
    await watcher.stop()
    await cache.close()
  }
}

/** The child process, with a queue of its replies. */
class Watcher {
  readonly #child: ChildProcess
  readonly #replies: WatcherReply[] = []
  #wake: (() => void) | undefined

  constructor(child: ChildProcess) {
    this.#child = child
    child.on('message', (reply: WatcherReply) => {
      this.#replies.push(reply)
      this.#wake?.()
    })
  }

  send(request: WatcherRequest): void {
    this.#child.send(request)
  }

  async next<T extends WatcherReply['type']>(type: T, timeoutMs = 10_000): Promise<Extract<WatcherReply, { type: T }>> {
    return (await this.nextOf([type], timeoutMs)) as Extract<WatcherReply, { type: T }>
  }

  /** The next reply, which must be one of `types`; bounded by `timeoutMs`. */
  async nextOf(types: readonly WatcherReply['type'][], timeoutMs = 10_000): Promise<WatcherReply> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const reply = this.#replies.shift()
      if (reply !== undefined) {
        if (!types.includes(reply.type)) throw new Error(`watcher sent "${reply.type}" while "${types.join('" or "')}" was expected`)
        return reply
      }
      if (this.#child.exitCode !== null) throw new Error(`the watcher process exited with code ${this.#child.exitCode}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no "${types.join('" or "')}" from the watcher within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#wake = undefined
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return
    const exited = new Promise((resolve) => this.#child.once('exit', resolve))
    this.#child.send({ type: 'stop' } satisfies WatcherRequest)
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }
}

// (b) ------------------------------------------------------------------------------------------------------

interface Scenario {
  name: string
  reads: number
  clientCommands: number
  clientRoundTrips: number
  clientBreakdown: string
  serverCommands: number
  serverBreakdown: string
  computes: number
}

async function roundTrips(): Promise<void> {
  const observer = server.client()
  const counting = countingClient(server.port)
  const scenarios: Scenario[] = []
  const compute = () => html
  const options = { deps: [...DEPS], ttl: 300 }
  try {
    // Written once by a cache of its own; the versions exist in Redis from then on.
    const writer = createCache({ prefix: 'rt', redis: server.url })
    await writer.ready()
    await writer.getOrSet('page', compute, options)
    await writer.getOrSet('page-b', compute, options)
    // Russian doll: the outer entry's deps are recorded from the inner one; whoever reads it declares none.
    await writer.getOrSet('outer', async () => `<main>${await writer.getOrSet('inner', compute, options)}</main>`)
    await writer.close()

    const measure = async (name: string, reads: number, cacheFor: (i: number) => Promise<TieredCache>, read: (cache: TieredCache) => Promise<unknown>) => {
      const total: Scenario = { name, reads, clientCommands: 0, clientRoundTrips: 0, clientBreakdown: '', serverCommands: 0, serverBreakdown: '', computes: 0 }
      const clientNames = new Map<string, number>()
      const serverNames = new Map<string, number>()
      for (let i = 0; i < reads; i++) {
        const cache = await cacheFor(i)
        const computesBefore = cache.stats().computes
        counting.take()
        const before = await commandStats(observer)
        await read(cache)
        const client = counting.take()
        const server = commandDelta(before, await commandStats(observer))
        total.computes += cache.stats().computes - computesBefore
        total.clientCommands += client.commands
        total.clientRoundTrips += client.roundTrips
        for (const [k, v] of client.byName) clientNames.set(k, (clientNames.get(k) ?? 0) + v)
        for (const [k, v] of server) {
          serverNames.set(k, (serverNames.get(k) ?? 0) + v)
          total.serverCommands += v
        }
      }
      total.clientBreakdown = describeCounts(clientNames, reads)
      total.serverBreakdown = describeCounts(serverNames, reads)
      scenarios.push(total)
    }

    // Steady state: one cache, L1 warm (entry and versions), no bumps.
    const warm = createCache({ prefix: 'rt', redis: counting.client })
    await warm.ready()
    await warm.getOrSet('page', compute, options)
    await measure('steady state: L1 warm, no bumps', STEADY_READS, async () => warm, (c) => c.getOrSet('page', compute, options))
    await measure('steady state, each read in its own request scope', STEADY_READS, async () => warm, (c) =>
      runInRequestScope(() => c.getOrSet('page', compute, options)),
    )

    // Entry not in L1, versions known: an L1 of one entry, two entries with the same deps read in turn.
    const small = createCache({ prefix: 'rt', redis: counting.client, l1: { max: 1 } })
    await small.ready()
    await small.getOrSet('page', compute, options)
    await small.getOrSet('page-b', compute, options)
    await measure('entry not in L1, its versions known (L1 of 1 entry, 2 keys in turn)', STEADY_READS, async () => small, (() => {
      let n = 0
      return (c: TieredCache) => c.getOrSet(n++ % 2 === 0 ? 'page' : 'page-b', compute, options)
    })())

    // Cold: a new cache each time (as a process that just started): empty L1, no version known.
    let previous: TieredCache | undefined
    await measure('cold L1: new cache instance, nothing known', COLD_READS, async () => {
      await previous?.close()
      previous = createCache({ prefix: 'rt', redis: counting.client })
      await previous.ready()
      return previous
    }, (c) => c.getOrSet('page', compute, options))
    const freshCache = async () => {
      await previous?.close()
      previous = createCache({ prefix: 'rt', redis: counting.client })
      await previous.ready()
      return previous
    }
    await measure('cold L1, read with cache.get (deps not declared by the reader)', COLD_READS, freshCache, (c) => c.get('page'))
    await measure('cold L1, outer entry whose deps were recorded from a nested getOrSet', COLD_READS, freshCache, (c) =>
      c.getOrSet('outer', compute),
    )
    await previous?.close()
    await warm.close()
    await small.close()
  } finally {
    observer.disconnect()
    counting.client.disconnect()
  }

  console.log(`## (b) Redis round trips per read of an entry with ${DEPS.length} deps (getOrSet, 1 KB value)\n`)
  const per = (n: number, reads: number) => (Number.isInteger(n / reads) ? String(n / reads) : (n / reads).toFixed(3))
  console.log(
    markdownTable(
      ['scenario', 'reads', 'round trips / read', 'client commands / read', 'client commands', 'server commands / read (incl. inside Lua)', 'computes'],
      scenarios.map((s) => [
        s.name,
        String(s.reads),
        per(s.clientRoundTrips, s.reads),
        per(s.clientCommands, s.reads),
        s.clientBreakdown,
        `${per(s.serverCommands, s.reads)} (${s.serverBreakdown})`,
        String(s.computes),
      ]),
    ),
  )
  console.log('')
  const [steady, scoped, , cold, coldGet, coldNested] = scenarios
  const rt = (s: Scenario | undefined) => (s ? s.clientRoundTrips / s.reads : Number.NaN)
  console.log(verdict(rt(steady) === 0 && rt(scoped) === 0, 'steady state: 0 round trips per read', `${rt(steady)} / ${rt(scoped)} in a request scope`))
  console.log(verdict(rt(cold) <= 1, 'cold L1: 1 round trip per read (getOrSet declaring its deps)', String(rt(cold))))
  console.log(
    verdict(
      rt(coldGet) <= 1 && rt(coldNested) <= 1,
      'cold L1: 1 round trip per read when the reader does not declare the deps (cache.get, nested/recorded deps)',
      `${rt(coldGet)} / ${rt(coldNested)}`,
    ),
  )
}

// Run last: the Watcher class above must be initialised before it is used.
const server = await RedisServer.start()
try {
  console.log(`# bench:versions — node ${process.version}, ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, redis-server on 127.0.0.1:${server.port}\n`)
  await propagation()
  await roundTrips()
} finally {
  await server.stop()
}

function positiveInt(text: string | undefined, fallback: number): number {
  const value = Number(text)
  return Number.isInteger(value) && value > 0 ? value : fallback
}

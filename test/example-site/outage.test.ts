// Redis killed under load: the demo (example-site/server.ts in a process of its own, with a private redis-server as
// REDIS_URL) under autocannon against its cached pages; the Redis server is killed (SIGKILL) half-way through the run.
// Every request must still be answered, with a 2xx: no connection error, no timeout, no 5xx. Latency is a benchmark
// figure (bench:stampede), not asserted here.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RedisServer, eventually } from '../support/redis-server.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const ENGINES = ['nunjucks', 'eta'] as const
/** Pages the demo caches: article bodies (fragments), categories (per view), home pages (sidebar and widget fragments). */
const CACHED_PATHS = ENGINES.flatMap((engine) => [
  `/${engine}/`,
  ...Array.from({ length: 8 }, (_, i) => `/${engine}/article/${i + 1}`),
  ...['caching', 'databases', 'templates'].map((slug) => `/${engine}/category/${slug}`),
])
const RUN_SECONDS = 6
const CONNECTIONS = 20

interface Context {
  redis: RedisServer
  dir: string
  server: ChildProcess
  output: { stdout: string; stderr: string }
  base: string
}

async function startDemo(context: Context): Promise<void> {
  context.redis = await RedisServer.start()
  context.dir = mkdtempSync(join(tmpdir(), 'fragcache-outage-'))
  context.output = { stdout: '', stderr: '' }
  const server = spawn(process.execPath, ['--import', 'tsx', 'example-site/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: context.redis.url,
      PORT: '0',
      HOST: '127.0.0.1',
      DB_FILE: join(context.dir, 'site.db'),
      UPSTREAM_URL: '',
      UPSTREAM_DELAY_MS: '20',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  context.server = server
  server.stdout?.setEncoding('utf8').on('data', (chunk: string) => (context.output.stdout += chunk))
  server.stderr?.setEncoding('utf8').on('data', (chunk: string) => (context.output.stderr += chunk))
  process.once('exit', () => server.kill('SIGKILL'))
  const listening = /fragcache demo on (http:\/\/127\.0\.0\.1:\d+)\//
  await eventually(() => listening.test(context.output.stdout) || server.exitCode !== null, 60_000, 'the demo to listen').catch((error: Error) => {
    throw new Error(`${error.message}\nstdout:\n${context.output.stdout}\nstderr:\n${context.output.stderr}`)
  })
  const match = listening.exec(context.output.stdout)
  if (match === null) throw new Error(`server.ts exited with ${server.exitCode}:\n${context.output.stdout}\n${context.output.stderr}`)
  context.base = match[1] as string
}

async function cleanUp(context: Context): Promise<void> {
  try {
    const server = context.server
    if (server !== undefined && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()))
      server.kill('SIGTERM')
      // Closing the cache with its Redis gone may take a while; the test does not judge that.
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  } finally {
    await context.redis?.stop()
    if (context.dir) rmSync(context.dir, { recursive: true, force: true })
  }
}

/** The last lines the server wrote on stderr, for failure messages. */
function stderrTail(context: Context): string {
  return context.output.stderr.trim().split('\n').slice(-15).join('\n')
}

const Outage = suite<Context>('demo site :: Redis killed under load')
Outage.before(startDemo)
Outage.after(cleanUp)

Outage('Redis killed under load (autocannon against the demo): 0 failed requests', async (context) => {
  // Twice each: the first request renders and stores, the second is served from the cache.
  for (let round = 0; round < 2; round++) {
    for (const path of CACHED_PATHS) {
      const response = await fetch(context.base + path)
      assert.is(response.status, 200, `${path} while warming`)
      await response.arrayBuffer()
    }
  }
  let killedDuringRun = false
  let running = true
  const kill = setTimeout(() => {
    killedDuringRun = running
    void context.redis.stop()
  }, (RUN_SECONDS * 1000) / 2)
  const result = await autocannon({
    url: context.base,
    connections: CONNECTIONS,
    duration: RUN_SECONDS,
    requests: CACHED_PATHS.map((path) => ({ method: 'GET' as const, path })),
  })
  running = false
  clearTimeout(kill)
  const summary =
    `${result.requests.total} requests: ${result.errors} errors (${result.timeouts} timeouts), ${result.non2xx} non-2xx ` +
    `(statuses ${JSON.stringify(result.statusCodeStats ?? {})})\nserver stderr (last lines):\n${stderrTail(context)}`
  assert.ok(killedDuringRun, `Redis was not killed during the run\n${summary}`)
  assert.ok(result.requests.total > 0, summary)
  assert.is(result.errors, 0, `connection errors\n${summary}`)
  assert.is(result.timeouts, 0, `timeouts\n${summary}`)
  assert.is(result.non2xx, 0, `non-2xx responses\n${summary}`)
})

Outage('with its Redis still down, every cached page answers 200 after the run', async (context) => {
  await context.redis.stop() // already stopped, unless the run above failed before the kill
  for (const path of CACHED_PATHS) {
    const response = await fetch(context.base + path)
    assert.is(response.status, 200, `${path}: ${response.status}\n${stderrTail(context)}`)
    await response.arrayBuffer()
  }
})

Outage.run()

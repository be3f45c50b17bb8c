import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type TieredCache, createCache } from '../src/index.ts'
import { RedisServer, eventually, patientRedis } from './support/redis-server.ts'

const quiet = { warn: () => {}, error: () => {} }
const server = await RedisServer.start()
const open: TieredCache[] = []
let prefixes = 0

async function make(prefix: string): Promise<TieredCache> {
  const cache = createCache({ prefix, redis: server.url, ...patientRedis, logger: quiet })
  open.push(cache)
  await cache.ready()
  return cache
}

/** Runs `test/support/<script>` in a process of its own; resolves with its exit code. */
function runScript(script: string, args: string[]): Promise<number | null> {
  const child = fork(fileURLToPath(new URL(`./support/${script}`, import.meta.url)), args, { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

const bus = suite('Invalidation bus')
bus.after(async () => {
  for (const cache of open) await cache.close()
  await server.stop()
})

bus('a short-lived job that bumps, deletes and invalidates a path, then closes and exits, loses none of it', async () => {
  const prefix = `job${++prefixes}`
  const web = await make(prefix)
  let renders = 0
  const article = () => web.getOrSet('article:1:body', () => `body ${++renders}`, { deps: ['article:1'] })
  const page = () => web.getOrSet('page', () => `page ${++renders}`, { deps: ['path:/articles/'] })
  await web.set('greeting', 'hello')
  assert.is(await article(), 'body 1')
  assert.is(await page(), 'page 2')
  assert.is(await web.get('greeting'), 'hello', 'all three in the web process L1')

  assert.is(await runScript('short-job.ts', [server.url, prefix]), 0)

  // The job awaited its publishes before closing: the messages are on their way to this process already.
  await eventually(async () => (await web.get('greeting')) === undefined, 100, 'the delete to reach the web process')
  assert.is(await article(), 'body 3', 'the bump reached it')
  assert.is(await page(), 'page 4', 'the path invalidation reached it')
})

bus('flush() resolves once the publishes of writes have been answered; close() flushes first', async () => {
  const prefix = `flush${++prefixes}`
  const a = await make(prefix)
  const b = await make(prefix)
  await b.set('k', 'old')
  assert.is(await a.get('k'), 'old')
  await b.set('k', 'new') // its publish is not awaited by set()
  await b.flush()
  await eventually(async () => (await a.get('k')) === 'new', 100, 'the write to reach the other process')
})

bus.run()

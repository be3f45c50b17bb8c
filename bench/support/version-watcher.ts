/**
 * The other process of `bench/versions.ts`: a cache of its own on the same Redis, that reports over IPC the
 * moment its L1 stops trusting the version of a tag another process bumped.
 *
 * Method, through the public API only: after reading the tag's version (`versions.get`), this process knows it
 * in L1, and `versions.check({ [tag]: version })` answers `true` synchronously, without Redis. When the bus
 * delivers another process's bump, the version is dropped and `check` answers `undefined` ("must be read"): the
 * next read of any entry depending on the tag goes to Redis and sees the new version. The check runs on every
 * turn of the event loop (setImmediate), so the bus message is handled between two checks and the drop is seen
 * within one loop turn (microseconds) of its arrival.
 *
 * Run: `node --import tsx bench/support/version-watcher.ts <redis-url> <prefix> <tag>` with an IPC channel.
 */
import { createCache } from '../../src/index.ts'

/** Messages the parent sends. */
export type WatcherRequest = { type: 'arm' } | { type: 'ping'; n: number } | { type: 'stop' }

/** Messages this process sends back. */
export type WatcherReply =
  | { type: 'ready' }
  | { type: 'armed'; version: number }
  | { type: 'dropped'; check: string; at: number }
  | { type: 'timeout' }
  | { type: 'pong'; n: number }

/** How long one armed watch may last before it gives up (a bump that never arrives). */
const WATCH_LIMIT_MS = 5_000

const [url, prefix, tag] = process.argv.slice(2)
if (!url || !prefix || !tag || !process.send) {
  throw new Error('usage: node --import tsx bench/support/version-watcher.ts <redis-url> <prefix> <tag>, spawned with an IPC channel')
}
const send = (reply: WatcherReply) => process.send?.(reply)
const cache = createCache({ prefix, redis: url, logger: { warn: (m) => console.error(`[watcher] ${m}`), error: (m) => console.error(`[watcher] ${m}`) } })
await cache.ready()

process.on('message', (message: WatcherRequest) => {
  if (message.type === 'ping') send({ type: 'pong', n: message.n })
  else if (message.type === 'stop') void cache.close().then(() => process.exit(0))
  else void arm(tag)
})
send({ type: 'ready' })

async function arm(watched: string): Promise<void> {
  const version = (await cache.versions.get([watched]))[watched] as number
  const deps = { [watched]: version }
  if (cache.versions.check(deps) !== true) throw new Error(`the version of ${watched} was not kept in L1 after reading it`)
  send({ type: 'armed', version })
  const deadline = performance.now() + WATCH_LIMIT_MS
  const poll = () => {
    const judged = cache.versions.check(deps)
    if (judged !== true) send({ type: 'dropped', check: String(judged), at: performance.timeOrigin + performance.now() })
    else if (performance.now() > deadline) send({ type: 'timeout' })
    else setImmediate(poll)
  }
  setImmediate(poll)
}

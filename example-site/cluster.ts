// `npm run start:cluster`: several worker processes behind one port, sharing one Redis and one SQLite file, so
// that saving an article in one worker shows the change at once in every other.
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { DEFAULT_DB_FILE, openDatabase } from './db.ts'
import { startOptionsFromEnv, startSite } from './start.ts'
import { startUpstream } from './upstream.ts'

const options = (() => {
  try {
    return startOptionsFromEnv()
  } catch (error) {
    console.error(`fragcache demo cluster: ${(error as Error).message}`)
    process.exit(1)
  }
})()

if (cluster.isPrimary) {
  if (!options.redisUrl) {
    console.error(
      'fragcache demo cluster: REDIS_URL is required — the workers share their cache and data versions through Redis.\n' +
        '  e.g. REDIS_URL=redis://127.0.0.1:6379/0 npm run start:cluster   (or `npm start` for one process without Redis)',
    )
    process.exit(1)
  }
  const workers = Number(process.env.WORKERS || Math.min(4, availableParallelism()))
  if (!Number.isInteger(workers) || workers < 1) {
    console.error(`fragcache demo cluster: WORKERS must be a whole number of at least 1; got "${process.env.WORKERS}"`)
    process.exit(1)
  }
  // Create and seed the database once, before the workers race to do it.
  openDatabase(options.dbFile ?? DEFAULT_DB_FILE).close()
  const upstream = options.upstreamUrl ? undefined : await startUpstream({ delayMs: options.upstreamDelayMs })
  const env = { UPSTREAM_URL: options.upstreamUrl ?? upstream?.url ?? '' }
  for (let i = 0; i < workers; i++) cluster.fork(env)
  let online = 0
  cluster.on('listening', (_worker, address) => {
    online += 1
    if (online === workers) {
      // The workers share one port; with PORT=0 it is the one the first worker was given.
      const url = `http://${options.host}:${address.port}`
      console.log(`fragcache demo cluster: ${workers} workers on ${url}/ sharing Redis at ${options.redisUrl}`)
      console.log(`  each page's footer names the worker (pid) that rendered it, the X-Worker header the one that answered; /_cache counts per worker`)
    }
  })
  cluster.on('exit', (worker, code, signal) => {
    if (signal !== 'SIGTERM' && signal !== 'SIGINT' && code !== 0) console.error(`worker ${worker.process.pid} exited (${signal ?? code})`)
  })
  const stop = async () => {
    // Wait for the workers to close their caches and the database (bounded), so that nothing outlives the primary.
    const exits = Object.values(cluster.workers ?? {}).map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker === undefined || worker.isDead()) return resolve()
          worker.once('exit', () => resolve())
          worker.kill('SIGTERM')
        }),
    )
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 5000).unref())])
    await upstream?.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
} else {
  try {
    await startSite(options)
  } catch (error) {
    console.error(`fragcache demo worker ${process.pid}: ${(error as Error).message}`)
    process.exit(1)
  }
}

const root = process.argv[2]!
const { createCache } = await import(root + '/src/index.ts')
const { RedisServer } = await import(root + '/test/support/redis-server.ts')
const server = await RedisServer.start()
const cache = createCache({ prefix: 'fc', ttl: 300, redis: `redis://127.0.0.1:${server.port}`, l1: { max: 1 }, redisTimeoutMs: 1000 })
await cache.ready()
const value = 'x'.repeat(1024)
for (let i = 0; i < 100; i++) await cache.set(`k${i}`, value)
let n = 0
const run = async (ms: number) => { const end = performance.now() + ms; n = 0
  async function worker(w: number) { let i = w; while (performance.now() < end) { await cache.getOrSet(`k${i % 100}`, () => value); i += 7; n++ } }
  const c0 = process.cpuUsage(); await Promise.all(Array.from({ length: 100 }, (_, w) => worker(w))); const c = process.cpuUsage(c0)
  return { opsPerSec: Math.round(n / (ms / 1000)), cpuUsPerOp: +((c.user + c.system) / n).toFixed(2) } }
await run(1000)
console.log(root, await run(4000), await run(4000))
await cache.close(); await server.stop(); process.exit(0)

'use strict'
// What every consumer app runs, however it loaded fragcache (import, require, compiled TypeScript): a fragment in
// each engine, a page under cachePage, a versions.bump that invalidates them, and with a Redis URL a value that a
// second cache reads from Redis. It prints what it saw; test/package/pack.test.ts compares.
const { once } = require('node:events')

/** @param {import('./scenario.d.cts').Modules} m */
async function run(m, redisUrl) {
  // One prefix per run: the apps share one redis-server.
  const prefix = `consumer-${process.pid}`
  const cache = m.fragcache.createCache({ prefix, ...(redisUrl ? { redis: redisUrl } : {}) })
  await cache.ready()
  try {
    return {
      oneCopy: m.loadedTheOtherWay.TieredCache === m.fragcache.TieredCache,
      nunjucks: await nunjucksFragment(m, cache),
      eta: await etaFragment(m, cache),
      page: await pageVisits(m, cache),
      redis: redisUrl ? await readThroughRedis(m, redisUrl, `${prefix}-l2`) : null,
    }
  } finally {
    await cache.close()
  }
}

/** Renders one fragment three times: the body runs, then is served from the cache, then runs again after a bump. */
async function renderThrice(cache, tag, render) {
  const outputs = [await render(), await render()]
  await cache.versions.bump(tag)
  outputs.push(await render())
  return outputs
}

function nunjucksFragment(m, cache) {
  const env = new m.nunjucks.Environment(null, { autoescape: true })
  env.addExtension('FragmentCache', new m.fragcacheNunjucks.FragmentCacheExtension(cache))
  let runs = 0
  const context = { body: () => ++runs }
  const source = '{% cache 60 "greeting" deps=["nunjucks-greeting"] %}<b>{{ body() }}</b>{% endcache %}'
  const render = () => new Promise((resolve, reject) => env.renderString(source, context, (error, html) => (error ? reject(error) : resolve(html))))
  return renderThrice(cache, 'nunjucks-greeting', render)
}

function etaFragment(m, cache) {
  const eta = new m.Eta({ plugins: [m.fragcacheEta.fragmentCache(cache)] })
  let runs = 0
  const source = '<% cache 60 "greeting" deps=["eta-greeting"] %><i><%= it.body() %></i><% endcache %>'
  return renderThrice(cache, 'eta-greeting', () => eta.renderStringAsync(source, { body: () => ++runs }))
}

/** Three visits of a page under cachePage on port 0: `X-Cache` and the body of each. */
async function pageVisits(m, cache) {
  const app = m.express()
  let renders = 0
  app.get('/page', m.fragcacheExpress.cachePage(cache, { ttl: 60, deps: () => ['page'] }), (_req, res) => {
    res.send(`page ${++renders}`)
  })
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const url = `http://127.0.0.1:${server.address().port}/page`
    const visit = async () => {
      const response = await fetch(url)
      return `${response.headers.get('x-cache')} ${await response.text()}`
    }
    return await renderThrice(cache, 'page', visit)
  } finally {
    server.close()
  }
}

/** A value one cache stores, read by another cache with its own L1: only Redis can have carried it. */
async function readThroughRedis(m, redisUrl, prefix) {
  const writer = m.fragcache.createCache({ prefix, redis: redisUrl })
  const reader = m.fragcache.createCache({ prefix, redis: redisUrl })
  try {
    await Promise.all([writer.ready(), reader.ready()])
    await writer.set('shared', 'through Redis')
    await writer.flush()
    return await reader.get('shared', 'not found')
  } finally {
    await Promise.all([writer.close(), reader.close()])
  }
}

module.exports = { run }

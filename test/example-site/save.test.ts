import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createCache } from '../../src/index.ts'
import { createSite } from '../../example-site/site.ts'
import { between } from '../support/assertions.ts'
import { withServer } from '../support/http.ts'
import { RedisServer } from '../support/redis-server.ts'

const save = suite('demo site :: a save whose cache invalidation is not confirmed')

save('Redis frozen during the save: the editor is told it is saved and may show late, and once Redis is back it shows', async () => {
  const server = await RedisServer.start()
  const cache = createCache({ prefix: 'demo-save', redis: server.url, redisTimeoutMs: 50, redisBreaker: { threshold: 100, cooldownMs: 100 }, logger: { warn: () => {}, error: () => {} } })
  const site = await createSite({ cache, dbFile: ':memory:', upstreamDelayMs: 5 })
  try {
    await cache.ready()
    await withServer(site.app, async (base) => {
      await fetch(`${base}/nunjucks/article/5`) // its body fragment is cached
      server.pause()
      let response: Response
      try {
        response = await fetch(`${base}/nunjucks/article/5/edit`, {
          method: 'POST',
          body: new URLSearchParams({ title: 'Saved while frozen', summary: 's', body: 'A body written while Redis was frozen.' }),
          redirect: 'manual',
        })
      } finally {
        server.resume()
      }
      assert.is(response.status, 303, 'not a 400: the article was saved')
      assert.is(response.headers.get('location'), '/nunjucks/article/5?saved=unknown')
      const page = await (await fetch(`${base}/nunjucks/article/5?saved=unknown`)).text()
      assert.is(
        between(page, '<p class="notice">', '</p>'),
        '<p class="notice">Saved. The cache could not confirm it dropped the old version: some pages may show it for a few more seconds.</p>',
      )
      assert.is(between(page, '<div class="body">', '</div>'), '<div class="body">\n<p>A body written while Redis was frozen.</p>\n</div>')
    })
  } finally {
    await site.close()
    await cache.close()
    await server.stop()
  }
})

save.run()

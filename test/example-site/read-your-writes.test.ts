// The demo with four workers on one Redis: an edit saved through the form, then its redirect, then a read on every
// worker. A bump resolves only once every live worker has applied it, so none serves the old article afterwards.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { between } from '../support/assertions.ts'
import { DemoCluster } from '../support/demo-cluster.ts'
import { RedisServer } from '../support/redis-server.ts'

const EDITS = 100
const ENGINES = ['nunjucks', 'eta'] as const

const ryw = suite('demo site :: four workers, 100 edits, read on every worker')

ryw('no response after a save shows the article as it was before it', async () => {
  const redis = await RedisServer.start()
  const demo = await DemoCluster.start({ redisUrl: redis.url, workers: 4, upstreamDelayMs: 20 })
  try {
    const workers = await demo.workerPids()
    assert.is(workers.length, 4, `workers seen: ${workers.join(', ')}`)
    // Every worker has the article body fragment and the category page cached, in both engines.
    for (const worker of workers) {
      for (const engine of ENGINES) {
        await demo.getOn(worker, `/${engine}/article/8`)
        await demo.getOn(worker, `/${engine}/category/databases`)
      }
    }
    const stale: string[] = []
    for (let edit = 1; edit <= EDITS; edit++) {
      const engine = ENGINES[edit % 2] as (typeof ENGINES)[number]
      const title = `Edit number ${edit}`
      const saved = await demo.post(`/${engine}/article/8/edit`, { title, summary: `Summary ${edit}`, body: `Body of edit ${edit}.` })
      assert.is(saved.status, 303, saved.body)
      const expected = `<div class="body">\n<p>Body of edit ${edit}.</p>\n</div>`
      const redirect = await demo.get(String(saved.headers.location))
      if (between(redirect.body, '<div class="body">', '</div>') !== expected) stale.push(`edit ${edit}: the redirect on worker ${redirect.worker}`)
      for (const worker of workers) {
        const article = await demo.getOn(worker, `/${engine}/article/8`)
        if (between(article.body, '<div class="body">', '</div>') !== expected) stale.push(`edit ${edit}: the article on worker ${worker}`)
        const category = await demo.getOn(worker, `/${engine}/category/databases`)
        if (!category.body.includes(`<a href="/${engine}/article/8">${title}</a>`)) stale.push(`edit ${edit}: the category page on worker ${worker}`)
      }
    }
    assert.equal(stale, [], `${stale.length} stale responses`)
  } finally {
    await demo.stop()
    await redis.stop()
  }
})

ryw.run()

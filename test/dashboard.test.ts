// cacheDashboard through an app of its own: the options it requires, what it refuses, what it shows escaped.
import express from 'express'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { InvalidArgumentError, createCache } from '../src/index.ts'
import { type DashboardOptions, cacheDashboard, requestScope } from '../src/express/index.ts'
import { thrownMessage } from './support/assertions.ts'
import { call, withServer } from './support/http.ts'

const dashboard = suite('cacheDashboard')

dashboard('is exported; authorize is required and must be a function', () => {
  assert.type(cacheDashboard, 'function')
  const cache = createCache()
  assert.is(
    thrownMessage(() => cacheDashboard(cache, {} as DashboardOptions)),
    'fragcache: cacheDashboard: authorize must be a function telling who may see the dashboard; got undefined',
  )
  assert.is(
    thrownMessage(() => cacheDashboard(cache, undefined as unknown as DashboardOptions)),
    'fragcache: cacheDashboard needs options with authorize, a function telling who may see it; got undefined',
  )
  assert.is(
    thrownMessage(() => cacheDashboard(cache, { authorize: () => true, public: true } as DashboardOptions)),
    'fragcache: cacheDashboard: unknown option "public"; known options are authorize, largest',
  )
  try {
    cacheDashboard(cache, { authorize: true as unknown as DashboardOptions['authorize'] })
    assert.unreachable('should have thrown')
  } catch (error) {
    assert.instance(error, InvalidArgumentError)
  }
})

dashboard('refuses unless authorize returns true (false, "yes", a throw, a rejection); answers 404 beyond its pages', async () => {
  const cache = createCache()
  const app = express()
  const answers: Record<string, () => unknown> = {
    yes: () => true,
    no: () => false,
    truthy: () => 'yes',
    throws: () => {
      throw new Error('no session store')
    },
    rejects: () => Promise.reject(new Error('down')),
    later: () => Promise.resolve(true),
  }
  for (const [name, answer] of Object.entries(answers)) app.use(`/${name}`, cacheDashboard(cache, { authorize: answer as DashboardOptions['authorize'] }))
  await withServer(app, async (base) => {
    const statuses = await Promise.all(Object.keys(answers).map(async (name) => `${name} ${(await call(`${base}/${name}/`)).status}`))
    assert.equal(statuses, ['yes 200', 'no 403', 'truthy 403', 'throws 403', 'rejects 403', 'later 200'])
    const missing = await call(`${base}/yes/elsewhere`)
    assert.equal([missing.status, missing.body], [404, 'Not found\n'])
    const refused = await call(`${base}/no/invalidate`, { method: 'POST' })
    assert.equal([refused.status, refused.body], [403, 'Forbidden: the cache dashboard needs authorization.\n'])
  })
})

dashboard('every value is escaped: a fragment name, a tag, a notice', async () => {
  const cache = createCache()
  cache.lookupStats.record({ kind: 'frag', name: '<script>alert(1)</script>', state: 'miss', ms: 5 })
  await cache.versions.bump('tag"><img/src=x>')
  const app = express()
  app.use(requestScope(cache))
  app.use('/_cache', cacheDashboard(cache, { authorize: () => true }))
  await withServer(app, async (base) => {
    const page = await call(`${base}/_cache/?done=${encodeURIComponent('<b>done</b>')}`)
    assert.ok(page.body.includes('<th scope="row">&lt;script&gt;alert(1)&lt;/script&gt;</th>'), page.body)
    assert.ok(page.body.includes('<code data-figure="invalidation:0:target">tag&quot;&gt;&lt;img/src=x&gt;</code>'), page.body)
    assert.ok(page.body.includes('<p class="notice" role="status">&lt;b&gt;done&lt;/b&gt;</p>'), page.body)
    assert.not.ok(page.body.includes('<script>'))
    assert.is(page.headers.get('content-security-policy'), "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
  })
})

dashboard.run()

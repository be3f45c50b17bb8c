// Server-Timing per fragment and page lookup, added by requestScope: through an app over HTTP.
import express from 'express'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { FragmentCache, type FragmentCall, sourceDigest } from '../src/fragments.ts'
import { createCache } from '../src/index.ts'
import { cachePage, requestScope } from '../src/express/index.ts'
import { lookupTimings, timingName } from '../src/express/server-timing.ts'
import { thrownMessage } from './support/assertions.ts'
import { call, withServer } from './support/http.ts'

const masked = (value: string | null): string => (value ?? '').replace(/dur=\d+\.\d\d/g, 'dur=*')
const fragment = (name: string): FragmentCall => ({ name, ttl: 60, inputs: [], digest: sourceDigest(name), template: 't.njk', line: 1 })

const header = suite('Server-Timing :: value')

header('names are sanitized to the token grammar, durations have two decimals', () => {
  assert.is(timingName({ kind: 'frag', name: 'article body "x"/é', state: 'hit', ms: 0 }), 'frag.article_body__x___')
  assert.is(
    lookupTimings([
      { kind: 'frag', name: 'sidebar', state: 'miss', ms: 12.345 },
      { kind: 'view', name: '/articles/:id', state: 'stale', ms: 0.5 },
    ]),
    'frag.sidebar;desc=miss;dur=12.35, view._articles__id;desc=stale;dur=0.50',
  )
  assert.is(lookupTimings([]), undefined)
})

header('capped at 50 entries', () => {
  const lookups = Array.from({ length: 64 }, (_, i) => ({ kind: 'frag' as const, name: `f${i}`, state: 'hit' as const, ms: 1 }))
  const value = lookupTimings(lookups) ?? ''
  assert.is(value.split(', ').length, 50)
  assert.is(value.split(', ').at(-1), 'frag.f49;desc=hit;dur=1.00')
})

header.run()

const http = suite('Server-Timing :: requestScope')

function app(serverTiming?: boolean) {
  const cache = createCache()
  const fragments = new FragmentCache(cache)
  const server = express()
  server.use(requestScope(cache, serverTiming === undefined ? {} : { serverTiming }))
  server.get('/page', cachePage(cache), async (_req, res) => {
    const head = await fragments.render(fragments.prepare(fragment('head')), async () => '<h1>t</h1>')
    const side = await fragments.render(fragments.prepare(fragment('side bar')), async () => '<aside></aside>')
    res.send(head + side)
  })
  server.get('/plain', async (_req, res) => {
    const side = await fragments.render(fragments.prepare(fragment('side bar')), async () => '<aside></aside>')
    res.send(side)
  })
  return server
}

http('a page lists its lookups: on a miss the fragments and the page, on a hit the page; other routes their fragments', async () => {
  await withServer(app(), async (base) => {
    const miss = await call(`${base}/page`)
    const hit = await call(`${base}/page`)
    const plain = await call(`${base}/plain`)
    assert.is(masked(miss.headers.get('server-timing')), 'cache;desc=miss;dur=*, render;dur=*, frag.head;desc=miss;dur=*, frag.side_bar;desc=miss;dur=*, view._page;desc=miss;dur=*')
    assert.is(masked(hit.headers.get('server-timing')), 'cache;desc=hit;dur=*, view._page;desc=hit;dur=*')
    // /page stored "side bar" in L1 on its miss.
    assert.is(masked(plain.headers.get('server-timing')), 'frag.side_bar;desc=hit;dur=*')
  })
})

http('serverTiming: false adds nothing (the page cache keeps its own entries)', async () => {
  await withServer(app(false), async (base) => {
    const miss = await call(`${base}/page`)
    const plain = await call(`${base}/plain`)
    assert.is(masked(miss.headers.get('server-timing')), 'cache;desc=miss;dur=*, render;dur=*')
    assert.is(plain.headers.get('server-timing'), null)
  })
})

http('serverTiming must be a boolean', () => {
  const message = thrownMessage(() => requestScope(createCache(), { serverTiming: 'yes' as unknown as boolean }))
  assert.is(message, 'fragcache: requestScope: serverTiming must be true or false; got "yes"')
})

http.run()

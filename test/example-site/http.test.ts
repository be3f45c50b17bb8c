import type { AddressInfo } from 'node:net'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type Site, createSite } from '../../example-site/site.ts'
import { type TieredCache, createCache } from '../../src/index.ts'
import { between } from '../support/assertions.ts'

interface Context {
  cache: TieredCache
  site: Site
  base: string
}

/** The site on port 0 with a fresh in-memory database and a 50 ms upstream. */
async function start(context: Context): Promise<void> {
  context.cache = createCache({ prefix: 'site-http-test' })
  context.site = await createSite({ cache: context.cache, dbFile: ':memory:', upstreamDelayMs: 50 })
  const server = await context.site.listen(0)
  context.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function stop(context: Context): Promise<void> {
  await context.site.close()
  await context.cache.close()
}

async function get(context: Context, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(context.base + path, { headers, redirect: 'manual' })
  return { status: response.status, headers: response.headers, body: await response.text() }
}

const mainOf = (html: string) => between(html, '<main>', '</main>')
const headerOf = (html: string) => between(html, '<div class="who"', '</div>')
const asAlice = { cookie: 'demo_user=alice' }
const asChen = { cookie: 'demo_user=chen' }

// ---------------------------------------------------------------------------------------------------------------
const Pages = suite<Context>('demo site :: pages in both engines')
Pages.before(start)
Pages.after(stop)

Pages('createSite is exported and answers /', async (context) => {
  assert.type(createSite, 'function')
  const home = await get(context, '/')
  assert.is(home.status, 302)
  assert.is(home.headers.get('location'), '/nunjucks/')
})

for (const path of ['/', '/category/databases', '/article/8', '/article/8/edit', '/forecast', '/article/999']) {
  Pages(`render :: ${path} has the same main content in Nunjucks and Eta`, async (context) => {
    const nunjucks = await get(context, `/nunjucks${path}`)
    const eta = await get(context, `/eta${path}`)
    assert.is(nunjucks.status, eta.status)
    assert.is(nunjucks.headers.get('content-type'), 'text/html; charset=utf-8')
    // Links and form actions point into the engine that rendered them; everything else is identical.
    assert.is(mainOf(eta.body).replaceAll('="/eta/', '="/nunjucks/'), mainOf(nunjucks.body))
    assert.ok(eta.body.includes('Rendered by Eta'))
    assert.ok(nunjucks.body.includes('Rendered by Nunjucks'))
  })
}

Pages('render :: an article page, whole main content', async (context) => {
  const page = await get(context, '/eta/article/8')
  assert.is(
    mainOf(page.body),
    `<main>
<article>
<h1>SQLite is a fine demo database &lt;really&gt;</h1>
<p class="meta"><a href="/eta/category/databases">Databases</a> · alice · 2024-12-09</p>
<div class="body">
<p>better-sqlite3 runs queries synchronously, which keeps a model layer small.</p>
<p>The cache does not care where the data comes from; it cares when it changes.</p>
</div>
<p class="actions"><a class="button" href="/eta/article/8/edit">Edit</a></p>
</article>
</main>`,
  )
})

Pages('render :: the popular sidebar is per language (?lang= and Accept-Language)', async (context) => {
  const fr = await get(context, '/nunjucks/?lang=fr')
  const frByHeader = await get(context, '/eta/', { 'accept-language': 'fr-CA,fr;q=0.9' })
  const en = await get(context, '/nunjucks/')
  const popular = (html: string) => between(html, '<section class="popular">', '</ol>')
  assert.is(
    popular(fr.body),
    `<section class="popular">
<h2>Populaires en français</h2>
<ol>
<li><a href="/nunjucks/article/5">Pourquoi mettre une vue en cache ?</a> <small>880</small></li>
<li><a href="/nunjucks/article/6">Les versions plutôt que l&#39;effacement</a> <small>515</small></li>
<li><a href="/nunjucks/article/7">Une balise, deux moteurs</a> <small>270</small></li>
</ol>`,
  )
  assert.ok(popular(frByHeader.body).includes('<h2>Populaires en français</h2>'))
  assert.ok(popular(en.body).includes('<h2>Popular in English</h2>'))
})

Pages('render :: an unknown article is a 404 page in the engine', async (context) => {
  const missing = await get(context, '/eta/article/999')
  assert.is(missing.status, 404)
  assert.ok(mainOf(missing.body).includes('<h1>Not found</h1>'))
})

Pages.run()

// ---------------------------------------------------------------------------------------------------------------
const Caching = suite<Context>('demo site :: page and fragment caching')
Caching.before(start)
Caching.after(stop)

for (const engine of ['nunjucks', 'eta']) {
  Caching(`cachePage :: the second guest request of a category is a HIT with the same body (${engine})`, async (context) => {
    const first = await get(context, `/${engine}/category/caching`)
    const second = await get(context, `/${engine}/category/caching`)
    assert.is(first.headers.get('x-cache'), 'MISS')
    assert.is(second.headers.get('x-cache'), 'HIT')
    assert.is(second.body, first.body)
  })
}

Caching('cachePage :: a signed-in visitor BYPASSes the page cache and sees their own header', async (context) => {
  await get(context, '/nunjucks/category/templates') // a guest fills the entry
  const alice = await get(context, '/nunjucks/category/templates', asAlice)
  const guest = await get(context, '/nunjucks/category/templates')
  assert.is(alice.headers.get('x-cache'), 'BYPASS')
  assert.ok(headerOf(alice.body).includes('<strong>Alice Martin</strong>'))
  assert.is(guest.headers.get('x-cache'), 'HIT')
  assert.not.ok(guest.body.includes('Alice Martin'), 'the guest entry must not carry Alice')
})

Caching('fragment :: the forecast widget calls the slow upstream once, then comes from the cache', async (context) => {
  const before = context.site.upstreamCalls() ?? 0
  const first = await get(context, '/nunjucks/forecast')
  const second = await get(context, '/nunjucks/forecast')
  assert.is(context.site.upstreamCalls(), before + 1)
  const widget = (html: string) => between(html, '<section class="widget"', '</section>')
  assert.is(widget(second.body), widget(first.body))
  assert.ok(widget(first.body).includes('data-mode="cached"'))
})

Caching('fragment :: the live forecast page calls the upstream on every request', async (context) => {
  const before = context.site.upstreamCalls() ?? 0
  await get(context, '/eta/forecast/live')
  await get(context, '/eta/forecast/live')
  assert.is(context.site.upstreamCalls(), before + 2)
})

Caching('cachePage :: the per-view forecast page runs the upstream once', async (context) => {
  const before = context.site.upstreamCalls() ?? 0
  const first = await get(context, '/eta/forecast/page')
  const second = await get(context, '/eta/forecast/page')
  assert.is([first.headers.get('x-cache'), second.headers.get('x-cache')].join(' '), 'MISS HIT')
  assert.is(context.site.upstreamCalls(), before + 1)
})

Caching.run()

// ---------------------------------------------------------------------------------------------------------------
const Users = suite<Context>('demo site :: per-user header')
Users.before(start)
Users.after(stop)

Users('login :: sets the cookie and redirects to a local next', async (context) => {
  const login = await get(context, '/login/alice?next=/eta/article/1')
  assert.is(login.status, 303)
  assert.is(login.headers.get('location'), '/eta/article/1')
  assert.match(login.headers.get('set-cookie') ?? '', /^demo_user=alice; Path=\/; HttpOnly; SameSite=Lax$/)
  const offsite = await get(context, '/login/alice?next=//evil.example/')
  assert.is(offsite.headers.get('location'), '/nunjucks/')
})

Users('login :: an unknown user is a 404 naming the known ones', async (context) => {
  const login = await get(context, '/login/mallory')
  assert.is(login.status, 404)
  assert.is(login.body, 'No demo user "mallory"; try alice, bruno, chen')
})

for (const engine of ['nunjucks', 'eta']) {
  Users(`header :: never leaks between users, whatever the order (${engine})`, async (context) => {
    for (const path of ['/', '/article/1', '/forecast', '/category/caching']) {
      const alice = await get(context, `/${engine}${path}`, asAlice)
      const chen = await get(context, `/${engine}${path}`, asChen)
      const guest = await get(context, `/${engine}${path}`)
      const alice2 = await get(context, `/${engine}${path}`, asAlice)
      assert.is(
        headerOf(alice.body),
        '<div class="who" data-user="alice">Signed in as <strong>Alice Martin</strong> · 3 unread messages · Team · <a href="/logout">Log out</a></div>',
      )
      assert.is(
        headerOf(chen.body),
        '<div class="who" data-user="chen">Signed in as <strong>Chen Wei</strong> · 0 unread messages · Enterprise · <a href="/logout">Log out</a></div>',
      )
      assert.is(
        headerOf(guest.body),
        '<div class="who" data-user="">Guest · log in as <a href="/login/alice">alice</a> <a href="/login/bruno">bruno</a> <a href="/login/chen">chen</a></div>',
      )
      assert.is(headerOf(alice2.body), headerOf(alice.body))
      for (const other of [chen.body, guest.body]) assert.not.ok(other.includes('Alice Martin'), `${path}: Alice leaked`)
      assert.not.ok(alice.body.includes('Chen Wei'), `${path}: Chen leaked`)
    }
  })
}

Users('header :: a French user gets the French site', async (context) => {
  const bruno = await get(context, '/eta/', { cookie: 'demo_user=bruno' })
  assert.is(
    headerOf(bruno.body),
    '<div class="who" data-user="bruno">Connecté en tant que <strong>Bruno Lefèvre</strong> · 12 messages non lus · Free · <a href="/logout">Se déconnecter</a></div>',
  )
})

Users.run()

// ---------------------------------------------------------------------------------------------------------------
const Editing = suite<Context>('demo site :: edit through the model')
Editing.before(start)
Editing.after(stop)

async function post(context: Context, path: string, form: Record<string, string>) {
  const response = await fetch(context.base + path, { method: 'POST', body: new URLSearchParams(form), redirect: 'manual' })
  return { status: response.status, headers: response.headers, body: await response.text() }
}

Editing('edit :: saving shows the change at once in both engines and in the cached category page', async (context) => {
  const body = (html: string) => between(html, '<div class="body">', '</div>')
  // Fill every cache that shows article 3: its body fragment in both engines, its category page.
  for (const engine of ['nunjucks', 'eta']) {
    await get(context, `/${engine}/article/3`)
    await get(context, `/${engine}/category/databases`)
  }
  assert.is((await get(context, '/nunjucks/category/databases')).headers.get('x-cache'), 'HIT')

  const saved = await post(context, '/eta/article/3/edit', {
    title: 'Versions, not deletes',
    summary: 'Edited in a test.',
    body: 'First edited paragraph.\r\n\r\nSecond <edited> paragraph.',
  })
  assert.is(saved.status, 303)
  assert.is(saved.headers.get('location'), '/eta/article/3')

  for (const engine of ['eta', 'nunjucks']) {
    const page = await get(context, `/${engine}/article/3`)
    assert.is(body(page.body), '<div class="body">\n<p>First edited paragraph.</p>\n<p>Second &lt;edited&gt; paragraph.</p>\n</div>')
    assert.ok(mainOf(page.body).includes('<h1>Versions, not deletes</h1>'))
  }
  const category = await get(context, '/nunjucks/category/databases')
  assert.is(category.headers.get('x-cache'), 'MISS')
  assert.ok(category.body.includes('>Versions, not deletes</a>'))
})

Editing('edit :: an empty title is refused with the reason, and nothing is saved', async (context) => {
  const refused = await post(context, '/nunjucks/article/4/edit', { title: '  ', summary: 's', body: 'b' })
  assert.is(refused.status, 400)
  assert.ok(refused.body.includes('<p class="error">article title must not be empty</p>'))
  const page = await get(context, '/nunjucks/article/4')
  assert.ok(page.body.includes('<h1>One cache tag, two engines</h1>'))
})

Editing.run()

// ---------------------------------------------------------------------------------------------------------------
const Stats = suite<Context>('demo site :: /_cache (the mounted dashboard), Server-Timing and the footer')
Stats.before(start)
Stats.after(stop)

/** The text of the element marked `data-figure="name"` on the dashboard. */
function figure(html: string, name: string): string {
  const found = new RegExp(`data-figure="${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}">([^<]*)<`).exec(html)
  assert.ok(found, `no figure ${name} in:\n${html}`)
  return (found[1] as string).replaceAll('&#39;', "'")
}

Stats('Server-Timing :: a demo page lists each fragment lookup, and its footer counts them, in both engines', async (context) => {
  for (const engine of ['nunjucks', 'eta']) {
    const first = await get(context, `/${engine}/article/3`)
    const again = await get(context, `/${engine}/article/3`)
    const masked = (value: string | null) => (value ?? '').replace(/dur=\d+\.\d\d/g, 'dur=*')
    assert.is(
      masked(first.headers.get('server-timing')),
      // Each engine's fragments have keys of their own (the digest of their template's source).
      'frag.article_body;desc=miss;dur=*, frag.sidebar_for_you;desc=miss;dur=*, frag.popular_sidebar;desc=miss;dur=*',
      engine,
    )
    assert.is(masked(again.headers.get('server-timing')), 'frag.article_body;desc=hit;dur=*, frag.popular_sidebar;desc=hit;dur=*', engine)
    const footer = /<span class="cache-summary">([^<]*)<\/span>/.exec(again.body)?.[1] ?? ''
    assert.match(footer, /^2 fragments, 2 from cache, saved ≈ \d+ ms$/, engine)
  }
})

Stats('/_cache :: refused to guests and to non-staff, shown to staff with the figures of stats()', async (context) => {
  await get(context, '/nunjucks/article/1')
  await get(context, '/nunjucks/article/1')
  const guest = await get(context, '/_cache')
  const chen = await get(context, '/_cache', asChen)
  assert.equal([guest.status, guest.body, chen.status], [403, 'Forbidden: the cache dashboard needs authorization.\n', 403])
  const page = await get(context, '/_cache', asAlice)
  assert.is(page.status, 200)
  assert.is(page.headers.get('cache-control'), 'no-store')
  const stats = context.cache.stats()
  assert.equal(
    ['request-hits', 'request-misses', 'l1-hits', 'l1-misses', 'computes', 'l1-entries', 'l1-bytes'].map((name) => figure(page.body, name)),
    [stats.request.hits, stats.request.misses, stats.l1.hits, stats.l1.misses, stats.computes, stats.l1.entries, stats.l1.bytes].map(String),
  )
  assert.is(figure(page.body, 'redis-state'), "No Redis configured: this process's memory only.")
  const body = context.cache.lookupStats.list().find((n) => n.name === 'article_body') as { hits: number; misses: number }
  assert.equal([figure(page.body, 'frag:article_body:hits'), figure(page.body, 'frag:article_body:misses')], [String(body.hits), String(body.misses)])
})

Stats('/_cache/invalidate :: same-origin posts invalidate a path or bump a tag; cross-site and unidentified ones are refused', async (context) => {
  await get(context, '/nunjucks/category/templates')
  assert.is((await get(context, '/nunjucks/category/templates')).headers.get('x-cache'), 'HIT')
  const post = (form: Record<string, string>, headers: Record<string, string>) =>
    fetch(`${context.base}/_cache/invalidate`, {
      method: 'POST',
      body: new URLSearchParams(form),
      headers: { ...asAlice, 'content-type': 'application/x-www-form-urlencoded', ...headers },
      redirect: 'manual',
    }).then(async (r) => ({ status: r.status, location: r.headers.get('location'), body: await r.text() }))
  const crossSite = await post({ kind: 'path', target: '/nunjucks/category/' }, { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' })
  const otherOrigin = await post({ kind: 'path', target: '/nunjucks/category/' }, { origin: 'https://evil.example' })
  const neither = await post({ kind: 'path', target: '/nunjucks/category/' }, {})
  assert.equal(
    [crossSite, otherOrigin, neither].map((r) => `${r.status} ${r.body}`),
    [
      '403 Forbidden: a cross-site request may not change the cache.\n',
      '403 Forbidden: a request from https://evil.example may not change the cache.\n',
      '403 Forbidden: a request that says neither Sec-Fetch-Site nor Origin may not change the cache.\n',
    ],
  )
  assert.is((await get(context, '/nunjucks/category/templates')).headers.get('x-cache'), 'HIT')
  const done = await post({ kind: 'path', target: '/nunjucks/category/' }, { origin: context.base })
  assert.equal([done.status, done.location], [303, `/_cache/?done=${encodeURIComponent('Invalidated every page at or under /nunjucks/category/')}`])
  assert.is((await get(context, '/nunjucks/category/templates')).headers.get('x-cache'), 'MISS')
  const bumped = await post({ kind: 'tag', target: 'article:1' }, { 'sec-fetch-site': 'same-origin' })
  assert.is(bumped.status, 303)
  const refused = await post({ kind: 'path', target: 'nunjucks' }, { 'sec-fetch-site': 'same-origin' })
  assert.equal(
    [refused.status, refused.body],
    [400, 'Bad request: fragcache: invalidatePath: a path prefix must be a string starting with "/", without "?" or "#"; got "nunjucks"\n'],
  )
  const page = await get(context, '/_cache', asAlice)
  assert.equal(
    [figure(page.body, 'invalidation:0:target'), figure(page.body, 'invalidation:1:target')],
    ['article:1', '/nunjucks/category/'],
  )
})

Stats.run()

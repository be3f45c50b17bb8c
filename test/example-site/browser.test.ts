import { existsSync, mkdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { type Browser, chromium } from 'playwright-core'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type Site, createSite } from '../../example-site/site.ts'
import { type TieredCache, createCache } from '../../src/index.ts'

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOTS = new URL('../../.tmp/', import.meta.url)

interface Context {
  cache: TieredCache
  site: Site
  base: string
  browser: Browser
}

const Browsing = suite<Context>('demo site :: in Chromium')

Browsing.before(async (context) => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (Debian's build; never a download)`)
  context.cache = createCache({ prefix: 'site-browser-test' })
  context.site = await createSite({ cache: context.cache, dbFile: ':memory:', upstreamDelayMs: 50 })
  const server = await context.site.listen(0)
  context.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  context.browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
})

Browsing.after(async (context) => {
  await context.browser?.close()
  await context.site?.close()
  await context.cache?.close()
})

Browsing('login :: two users in two browser contexts never see each other’s header', async ({ browser, base }) => {
  const alice = await browser.newContext()
  const chen = await browser.newContext()
  try {
    const a = await alice.newPage()
    const c = await chen.newPage()
    await a.goto(`${base}/login/alice?next=/nunjucks/`)
    await c.goto(`${base}/login/chen?next=/eta/`)
    // Interleave the two users on the same pages, so a shared cache entry would show the wrong name.
    for (const path of ['/nunjucks/', '/eta/', '/nunjucks/article/2', '/eta/article/2', '/nunjucks/category/caching']) {
      await a.goto(base + path)
      await c.goto(base + path)
      assert.is(await a.locator('.who').innerText(), 'Signed in as Alice Martin · 3 unread messages · Team · Log out', path)
      assert.is(await c.locator('.who').innerText(), 'Signed in as Chen Wei · 0 unread messages · Enterprise · Log out', path)
      assert.not.ok((await a.content()).includes('Chen Wei'), `${path}: Chen leaked into Alice's page`)
      assert.not.ok((await c.content()).includes('Alice Martin'), `${path}: Alice leaked into Chen's page`)
    }
    await a.click('text=Log out')
    assert.match(await a.locator('.who').innerText(), /^Guest · log in as alice bruno chen$/)
  } finally {
    await alice.close()
    await chen.close()
  }
})

Browsing('users and guests :: every page of the demo in both engines, visited in turn: nobody sees another visitor', async ({ browser, base }) => {
  const USERS = [
    { id: 'alice', name: 'Alice Martin' },
    { id: 'bruno', name: 'Bruno Lefèvre' },
    { id: 'chen', name: 'Chen Wei' },
  ]
  const paths = ['nunjucks', 'eta'].flatMap((engine) => [
    `/${engine}/`,
    ...[1, 2, 3, 4, 5, 6, 7, 8].map((id) => `/${engine}/article/${id}`),
    `/${engine}/article/1/edit`,
    ...['caching', 'databases', 'templates'].map((slug) => `/${engine}/category/${slug}`),
    `/${engine}/forecast`,
    `/${engine}/forecast/live`,
    `/${engine}/forecast/page`,
  ])
  const visitors = [...USERS.map((user) => ({ ...user })), { id: '', name: 'Guest' }, { id: '', name: 'Guest' }]
  const contexts = await Promise.all(visitors.map(() => browser.newContext()))
  try {
    const pages = await Promise.all(contexts.map((context) => context.newPage()))
    await Promise.all(visitors.map((visitor, i) => (visitor.id === '' ? undefined : pages[i]!.goto(`${base}/login/${visitor.id}?next=/nunjucks/`))))
    const leaks: string[] = []
    let pagesSeen = 0
    // Twice round, every visitor in turn on each page: whatever one of them fills in a shared cache, the next reads.
    for (let round = 0; round < 2; round++) {
      for (const path of paths) {
        for (const [i, visitor] of visitors.entries()) {
          const page = pages[i]!
          await page.goto(base + path)
          const html = await page.content()
          pagesSeen += 1
          for (const other of USERS) {
            if (other.id === visitor.id) continue
            if (html.includes(other.name) || html.includes(`data-user="${other.id}"`)) leaks.push(`${visitor.name || 'a guest'} saw ${other.name} on ${path}`)
          }
          const forYou = await page.locator('.for-you').first().getAttribute('data-user')
          if (forYou !== visitor.id) leaks.push(`${path}: the sidebar for ${visitor.name} was made for "${forYou}"`)
        }
      }
    }
    assert.ok(pagesSeen >= 200, `${pagesSeen} pages seen`)
    assert.equal(leaks, [], `${leaks.length} responses carried another visitor's marker`)
  } finally {
    for (const context of contexts) await context.close()
  }
})

Browsing('edit :: saving an article shows the change on the next view, in the other engine too', async ({ browser, base }) => {
  const context = await browser.newContext()
  try {
    const page = await context.newPage()
    await page.goto(`${base}/eta/article/4`)
    assert.is(await page.locator('main h1').innerText(), 'One cache tag, two engines')
    await page.goto(`${base}/nunjucks/article/4`) // the Nunjucks body fragment is cached now too
    await page.click('text=Edit')
    await page.fill('input[name=title]', 'One tag, two engines, one cache')
    await page.fill('textarea[name=body]', 'Edited in Chromium.\n\nA second paragraph.')
    await Promise.all([page.waitForURL(`${base}/nunjucks/article/4`), page.click('button[type=submit]')])
    assert.is(await page.locator('main h1').innerText(), 'One tag, two engines, one cache')
    assert.equal(await page.locator('main .body p').allInnerTexts(), ['Edited in Chromium.', 'A second paragraph.'])
    await page.goto(`${base}/eta/article/4`)
    assert.equal(await page.locator('main .body p').allInnerTexts(), ['Edited in Chromium.', 'A second paragraph.'])
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.setViewportSize({ width: 1200, height: 800 })
    await page.screenshot({ path: new URL('site-article.png', SCREENSHOTS).pathname, fullPage: true })
  } finally {
    await context.close()
  }
})

/** Where the dashboard's screenshots go (git-ignored). */
const TEST_OUTPUT = new URL('../../test-output/', import.meta.url)

Browsing('/_cache :: the mounted dashboard: refused to a guest, figures of stats() for staff, the invalidation form works', async ({ browser, base, cache }) => {
  mkdirSync(TEST_OUTPUT, { recursive: true })
  const guest = await browser.newContext()
  const staff = await browser.newContext({ viewport: { width: 1200, height: 900 } })
  try {
    const refused = await guest.newPage()
    const answer = await refused.goto(`${base}/_cache`)
    assert.is(answer?.status(), 403)
    assert.is(await refused.locator('body').innerText(), 'Forbidden: the cache dashboard needs authorization.\n')
    await refused.screenshot({ path: new URL('dashboard-refused.png', TEST_OUTPUT).pathname })

    const page = await staff.newPage()
    await page.goto(`${base}/login/alice?next=/nunjucks/`)
    for (let i = 0; i < 3; i++) {
      await page.goto(`${base}/nunjucks/forecast`)
      await page.goto(`${base}/eta/category/templates`)
    }
    assert.is((await page.goto(`${base}/_cache`))?.status(), 200)
    assert.is(await page.locator('h1').innerText(), 'fragcache')
    const shown = async (name: string) => page.locator(`[data-figure="${name}"]`).innerText()
    const stats = cache.stats()
    assert.equal(
      await Promise.all(['request-hits', 'request-misses', 'l1-hits', 'l1-misses', 'computes', 'stale-serves', 'lock-waits', 'l1-entries', 'l1-bytes'].map(shown)),
      [stats.request.hits, stats.request.misses, stats.l1.hits, stats.l1.misses, stats.computes, stats.staleServes, stats.lockWaits, stats.l1.entries, stats.l1.bytes].map(String),
    )
    const rate = (hits: number, misses: number) => `${((hits / (hits + misses)) * 100).toFixed(1)}%`
    assert.is(await shown('l1-rate'), rate(stats.l1.hits, stats.l1.misses))
    const widget = cache.lookupStats.list().find((n) => n.kind === 'frag' && n.name === 'forecast_widget')
    assert.ok(widget !== undefined && widget.hits >= 2, 'the widget was served from the cache')
    assert.equal([await shown('frag:forecast_widget:hits'), await shown('frag:forecast_widget:misses')], [String(widget.hits), String(widget.misses)])
    const categoryPage = cache.lookupStats.list().find((n) => n.kind === 'view' && n.name === '/eta/category/:slug')
    assert.equal(await shown('view:/eta/category/:slug:hits'), String(categoryPage?.hits))
    await page.screenshot({ path: new URL('dashboard.png', TEST_OUTPUT).pathname, fullPage: true })

    // The form, as a person uses it: the page under the path (as a guest gets it from the page cache) is rendered anew.
    const cacheState = async () => (await fetch(`${base}/eta/category/templates`)).headers.get('x-cache')
    await cacheState()
    assert.is(await cacheState(), 'HIT')
    await page.goto(`${base}/_cache`)
    await page.fill('input[name="target"][pattern]', '/eta/category/')
    await Promise.all([page.waitForURL(/\/_cache\/\?done=/), page.click('text=Invalidate path')])
    assert.is(await page.locator('.notice').innerText(), 'Invalidated every page at or under /eta/category/')
    assert.is(await shown('invalidation:0:target'), '/eta/category/')
    assert.is(await cacheState(), 'MISS')
    await page.screenshot({ path: new URL('dashboard-after-invalidation.png', TEST_OUTPUT).pathname, fullPage: true })
  } finally {
    await guest.close()
    await staff.close()
  }
})

Browsing.run()

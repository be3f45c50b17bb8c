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

Browsing('/_cache :: shows the hit rates as bars with widths', async ({ browser, base }) => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } })
  try {
    const page = await context.newPage()
    for (let i = 0; i < 3; i++) {
      await page.goto(`${base}/nunjucks/forecast`)
      await page.goto(`${base}/eta/category/templates`)
    }
    await page.goto(`${base}/_cache`)
    assert.is(await page.locator('h1').innerText(), 'Cache hit rates')
    assert.is(await page.locator('#tiers .bar').count(), 2)
    assert.ok((await page.locator('#fragments .bar').count()) >= 3)
    const row = page.locator('#fragments .row[data-name="forecast_widget"]').first()
    const [, hits, misses] = (await row.locator('.nums').innerText()).match(/(\d+) hits \/ (\d+) misses/) ?? []
    const rate = Number(hits) / (Number(hits) + Number(misses))
    assert.ok(Number(hits) >= 2, `the widget was served from the cache: ${hits} hits / ${misses} misses`)
    const fill = row.locator('.fill.hit')
    const drawn = await fill.evaluate((el) => el.getBoundingClientRect().width)
    const track = await fill.evaluate((el) => (el.parentElement as HTMLElement).getBoundingClientRect().width)
    assert.ok(Math.abs(drawn / track - rate) < 0.01, `the bar is drawn ${drawn}px of ${track}px for a ${rate} hit rate`)
    assert.ok((await page.locator('#pages .row .fill.hit').count()) >= 1)
    await page.screenshot({ path: new URL('site-cache-stats.png', SCREENSHOTS).pathname, fullPage: true })
  } finally {
    await context.close()
  }
})

Browsing.run()

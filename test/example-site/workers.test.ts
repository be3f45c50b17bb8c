// `npm run start:cluster` for real: example-site/cluster.ts in its own process, forking two workers that share one
// port, one private redis-server and one SQLite file. A save through the edit form on one worker must show on the
// other on its next views: the article body fragment, the per-view cached category page, the sidebar fragment.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { between } from '../support/assertions.ts'
import { DemoCluster } from '../support/demo-cluster.ts'
import { RedisServer, eventually } from '../support/redis-server.ts'

const ENGINES = ['nunjucks', 'eta'] as const

interface Context {
  redis: RedisServer
  demo: DemoCluster
  workers: number[]
}

const bodyFragmentOf = (html: string) => between(html, '<div class="body">', '</div>')
const articleListOf = (html: string) => between(html, '<ul class="articles">', '</ul>')
const sidebarOf = (html: string) => between(html, '<section class="popular">', '</section>')

/** Hits of one fragment (both engines together), from a worker's dashboard at `/_cache`. */
function fragmentHits(statsHtml: string, name: string): number {
  const row = new RegExp(`data-figure="frag:${name}:hits">(\\d+)<`).exec(statsHtml)
  assert.ok(row, `no ${name} row in /_cache:\n${statsHtml}`)
  return Number(row[1])
}

/** The dashboard is for staff: alice is. */
const asStaff = { cookie: 'demo_user=alice' }

const OLD = {
  title: 'SQLite is a fine demo database &lt;really&gt;',
  body: `<div class="body">
<p>better-sqlite3 runs queries synchronously, which keeps a model layer small.</p>
<p>The cache does not care where the data comes from; it cares when it changes.</p>
</div>`,
}
const EDIT = {
  title: 'Saved on one worker, read on the other',
  summary: 'Edited through the form while two workers had the old page cached.',
  body: 'First paragraph, saved on the writer.\r\n\r\nSecond paragraph & a <tag>.',
}
const NEW = {
  title: 'Saved on one worker, read on the other',
  body: `<div class="body">
<p>First paragraph, saved on the writer.</p>
<p>Second paragraph &amp; a &lt;tag&gt;.</p>
</div>`,
}

/** What one worker shows of article 8 now, in one engine: the article page and the per-view category page. */
async function viewOn(context: Context, worker: number, engine: string) {
  const article = await context.demo.getOn(worker, `/${engine}/article/8`)
  const category = await context.demo.getOn(worker, `/${engine}/category/databases`)
  return {
    h1: between(article.body, '<h1>', '</h1>'),
    fragment: bodyFragmentOf(article.body),
    sidebar: sidebarOf(article.body),
    list: articleListOf(category.body),
    categoryCache: category.headers['x-cache'],
  }
}

const showsEdit = (view: Awaited<ReturnType<typeof viewOn>>, engine: string) =>
  view.h1 === `<h1>${NEW.title}</h1>` &&
  view.fragment === NEW.body &&
  view.list.includes(`<a href="/${engine}/article/8">${NEW.title}</a>`) &&
  view.list.includes(`<p>${EDIT.summary}</p>`) &&
  view.sidebar.includes(`<a href="/${engine}/article/8">${NEW.title}</a>`)

/** Starts cluster.ts as `npm run start:cluster` does, with two workers on a private Redis. */
async function startCluster(context: Context): Promise<void> {
  context.redis = await RedisServer.start()
  context.demo = await DemoCluster.start({ redisUrl: context.redis.url, workers: 2, upstreamDelayMs: 20 })
  context.workers = await context.demo.workerPids()
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function cleanUp(context: Context): Promise<void> {
  try {
    await context.demo?.stop()
  } finally {
    await context.redis?.stop()
  }
}

// ---------------------------------------------------------------------------------------------------------------
const Cluster = suite<Context>('demo site :: start:cluster, two workers on one Redis')
Cluster.before(startCluster)
Cluster.after(cleanUp)

Cluster('start :: two worker processes answer on one port, each naming itself in X-Worker', (context) => {
  assert.is(context.workers.length, 2, `workers seen: ${context.workers.join(', ')}\n${context.demo.stderr}`)
  for (const worker of context.workers) {
    assert.ok(Number.isInteger(worker) && worker > 0)
    assert.is.not(worker, context.demo.primary.pid)
  }
})

Cluster('/_cache :: each worker’s dashboard shows its Redis tier up and its bus connected', async (context) => {
  for (const worker of context.workers) {
    const page = await context.demo.getOn(worker, '/_cache', asStaff)
    assert.ok(page.body.includes('<dd data-figure="redis-state">up</dd>'), page.body)
    assert.ok(page.body.includes('<dd data-figure="bus-state">connected</dd>'), page.body)
  }
})

Cluster('save :: an article edited on one worker shows on the other at its next views, fragments and per-view page', async (context) => {
  const [first, second] = context.workers as [number, number]
  // Warm both workers in both engines, twice: the article body fragment and the per-view category page are cached.
  for (let round = 0; round < 2; round++) {
    for (const worker of [first, second]) {
      for (const engine of ENGINES) await viewOn(context, worker, engine)
    }
  }
  for (const worker of [first, second]) {
    const stats = (await context.demo.getOn(worker, '/_cache', asStaff)).body
    for (const engine of ENGINES) {
      const view = await viewOn(context, worker, engine)
      assert.is(view.h1, `<h1>${OLD.title}</h1>`)
      assert.is(view.fragment, OLD.body)
      assert.ok(view.list.includes(`<a href="/${engine}/article/8">${OLD.title}</a>`))
      assert.is(view.categoryCache, 'HIT', `${engine} category on worker ${worker}`)
      assert.ok(fragmentHits(stats, 'article_body') >= 1, `article_body hits on worker ${worker}`)
    }
  }

  // The save lands on whichever worker the round robin picks: that one is the writer, the other the reader.
  const saved = await context.demo.post('/eta/article/8/edit', EDIT)
  assert.is(saved.status, 303, saved.body)
  assert.is(saved.headers.location, '/eta/article/8')
  const writer = saved.worker
  const reader = writer === first ? second : first
  assert.ok(context.workers.includes(writer), `the save was answered by ${writer}`)

  // The writer applies its own bump at once (read-your-writes): no waiting.
  for (const engine of ENGINES) {
    const view = await viewOn(context, writer, engine)
    assert.is(view.fragment, NEW.body)
    assert.ok(showsEdit(view, engine), `writer ${writer} (${engine}):\n${JSON.stringify(view, null, 2)}`)
  }
  // The reader had everything cached; it shows the edit once the bus has told it (a generous bound, not a timing).
  let last: unknown
  await eventually(
    async () => {
      const views = await Promise.all(ENGINES.map(async (engine) => ({ engine, view: await viewOn(context, reader, engine) })))
      last = views
      return views.every(({ engine, view }) => showsEdit(view, engine))
    },
    10_000,
    `worker ${reader} to show the article saved on worker ${writer}`,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${JSON.stringify(last, null, 2)}`)
  })
  for (const engine of ENGINES) {
    const view = await viewOn(context, reader, engine)
    assert.is(view.h1, `<h1>${NEW.title}</h1>`)
    assert.is(view.fragment, NEW.body)
    assert.not.ok(view.list.includes(OLD.title))
    assert.not.ok(view.sidebar.includes(OLD.title))
  }
})

Cluster('stop :: SIGTERM to the primary stops every worker', async (context) => {
  await context.demo.stop()
  assert.is(context.demo.primary.exitCode, 0, context.demo.stderr)
  for (const worker of context.workers) assert.not.ok(alive(worker), `worker ${worker} still running`)
})

Cluster.run()

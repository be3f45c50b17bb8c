import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ArticleRepository } from '../../example-site/articles.ts'
import { openDatabase } from '../../example-site/db.ts'
import { createCache } from '../../src/index.ts'

const fresh = () => {
  const cache = createCache({ prefix: 'site-articles-test' })
  return { cache, articles: new ArticleRepository(openDatabase(':memory:'), cache) }
}

const Repository = suite('ArticleRepository')

Repository('is exported', () => {
  assert.type(ArticleRepository, 'function')
})

Repository('queries :: seeded from fixtures/site-seed', () => {
  const { articles } = fresh()
  assert.equal(
    articles.categories().map((c) => `${c.slug}:${c.count}`),
    ['caching:3', 'databases:3', 'templates:2'],
  )
  assert.equal(articles.popular('fr').map((a) => a.id), [5, 6, 7])
  assert.equal(articles.inCategory('templates').map((a) => a.id), [4, 7])
  assert.equal(articles.find(8), {
    id: 8,
    categoryId: 2,
    categorySlug: 'databases',
    categoryName: 'Databases',
    lang: 'en',
    title: 'SQLite is a fine demo database <really>',
    summary: 'One file, real SQL, no server: the demo\'s articles live in example-site/data/site.db.',
    body: 'better-sqlite3 runs queries synchronously, which keeps a model layer small.\n\nThe cache does not care where the data comes from; it cares when it changes.',
    author: 'alice',
    views: 150,
    updatedAt: '2024-12-09T13:00:00.000Z',
  })
  assert.is(articles.find(999), undefined)
})

Repository('save :: bumps the article version and the model version', async () => {
  const { cache, articles } = fresh()
  const before = await cache.versions.get(['article:2', 'article', 'article:3'])
  const saved = await articles.save({ ...articles.find(2)!, title: 'Renamed' })
  const after = await cache.versions.get(['article:2', 'article', 'article:3'])
  assert.is(saved.title, 'Renamed')
  assert.is(articles.find(2)?.title, 'Renamed')
  assert.ok(after['article:2']! > before['article:2']!)
  assert.ok(after.article! > before.article!)
  assert.is(after['article:3'], before['article:3'])
})

Repository('save :: an entry that depends on the article is recomputed after a save', async () => {
  const { cache, articles } = fresh()
  const title = () => cache.getOrSet('title:1', () => articles.find(1)!.title, { deps: ['article:1'] })
  assert.is(await title(), 'Why cache a view at all?')
  await articles.save({ ...articles.find(1)!, title: 'Changed' })
  assert.is(await title(), 'Changed')
})

Repository('save :: inserts a new article with its own id', async () => {
  const { articles } = fresh()
  const created = await articles.save({ categoryId: 3, lang: 'en', title: 'New', summary: 'S', body: 'B', author: 'chen' })
  assert.is(created.id, 9)
  assert.is(created.categorySlug, 'templates')
})

Repository('save :: refuses bad input with the field named', async () => {
  const { articles } = fresh()
  const article = articles.find(1)!
  for (const [edit, message] of [
    [{ title: ' ' }, 'article title must not be empty'],
    [{ summary: 'x'.repeat(501) }, 'article summary must be at most 500 characters; got 501'],
    [{ id: 404 }, 'article 404 does not exist'],
  ] as const) {
    try {
      await articles.save({ ...article, ...edit })
      assert.unreachable(`saved ${JSON.stringify(edit)}`)
    } catch (error) {
      assert.instance(error, Error)
      assert.is((error as Error).message, message)
    }
  }
})

Repository('delete :: removes the row and bumps the version; false when absent', async () => {
  const { cache, articles } = fresh()
  const before = await cache.versions.get(['article:7'])
  assert.is(await articles.delete(7), true)
  assert.is(articles.find(7), undefined)
  assert.ok((await cache.versions.get(['article:7']))['article:7']! > before['article:7']!)
  assert.is(await articles.delete(7), false)
})

Repository.run()

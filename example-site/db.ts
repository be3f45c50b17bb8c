import { mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'

/** The seed data directory: `fixtures/site-seed/` at the project root. */
export const SEED_DIR = fileURLToPath(new URL('../fixtures/site-seed/', import.meta.url))

/** Where `npm start` keeps its database (ignored by git; created and seeded on first start). */
export const DEFAULT_DB_FILE = fileURLToPath(new URL('./data/site.db', import.meta.url))

/** One row of `fixtures/site-seed/articles.json`. */
interface SeedArticle {
  id: number
  category: string
  lang: string
  views: number
  author: string
  updatedAt: string
  title: string
  summary: string
  body: string
}

interface SeedCategory {
  id: number
  slug: string
  name: string
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS categories (
  id   INTEGER PRIMARY KEY,
  slug TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS articles (
  id          INTEGER PRIMARY KEY,
  category_id INTEGER NOT NULL REFERENCES categories(id),
  lang        TEXT NOT NULL,
  title       TEXT NOT NULL,
  summary     TEXT NOT NULL,
  body        TEXT NOT NULL,
  author      TEXT NOT NULL,
  views       INTEGER NOT NULL DEFAULT 0,
  updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_by_category ON articles(category_id);
CREATE INDEX IF NOT EXISTS articles_by_popularity ON articles(lang, views DESC);
`

/**
 * Opens the demo's SQLite database, creating its tables and seeding them from `fixtures/site-seed/*.json` when
 * they are empty (the first start). `':memory:'` gives a fresh seeded database (for tests).
 *
 * @example
 * ```ts
 * const db = openDatabase('example-site/data/site.db')
 * db.prepare('SELECT count(*) AS n FROM articles').get() // { n: 8 }
 * ```
 */
export function openDatabase(file: string = DEFAULT_DB_FILE, seedDir: string = SEED_DIR): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true })
  const db = new Database(file)
  // WAL lets the cluster's workers read while one of them saves.
  if (file !== ':memory:') db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 5000')
  db.pragma('foreign_keys = ON')
  db.exec(SCHEMA)
  const { n } = db.prepare('SELECT count(*) AS n FROM categories').get() as { n: number }
  if (n === 0) seed(db, seedDir)
  return db
}

/** Inserts the seed rows, in one transaction. */
function seed(db: Database.Database, seedDir: string): void {
  const categories = readJson<SeedCategory[]>(join(seedDir, 'categories.json'))
  const articles = readJson<SeedArticle[]>(join(seedDir, 'articles.json'))
  const bySlug = new Map(categories.map((c) => [c.slug, c.id]))
  const insertCategory = db.prepare('INSERT INTO categories (id, slug, name) VALUES (@id, @slug, @name)')
  const insertArticle = db.prepare(
    `INSERT INTO articles (id, category_id, lang, title, summary, body, author, views, updated_at)
     VALUES (@id, @categoryId, @lang, @title, @summary, @body, @author, @views, @updatedAt)`,
  )
  db.transaction(() => {
    for (const category of categories) insertCategory.run(category)
    for (const article of articles) {
      const categoryId = bySlug.get(article.category)
      if (categoryId === undefined) {
        throw new Error(`site seed: article ${article.id} names category "${article.category}", which categories.json does not have`)
      }
      insertArticle.run({ ...article, categoryId })
    }
  })()
}

/** Reads one seed file, naming it in the error when it is missing or not JSON. */
export function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T
  } catch (error) {
    throw new Error(`site seed: cannot read ${file}: ${(error as Error).message}`, { cause: error })
  }
}

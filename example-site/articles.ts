import type Database from 'better-sqlite3'
import type { TieredCache } from '../src/index.ts'

/** An article as the site shows it. */
export interface Article {
  id: number
  categoryId: number
  categorySlug: string
  categoryName: string
  lang: string
  title: string
  summary: string
  body: string
  author: string
  views: number
  updatedAt: string
}

/** A category, with how many articles it has. */
export interface Category {
  id: number
  slug: string
  name: string
  count: number
}

/** What {@link ArticleRepository.save} needs: the editable fields, and the id of an existing article to update. */
export type ArticleInput = Pick<Article, 'categoryId' | 'lang' | 'title' | 'summary' | 'body' | 'author'> & { id?: number }

const COLUMNS = `a.id, a.category_id AS categoryId, c.slug AS categorySlug, c.name AS categoryName, a.lang, a.title,
  a.summary, a.body, a.author, a.views, a.updated_at AS updatedAt`

/**
 * The article model: queries over SQLite, and a save/delete that bump the article's data version
 * (`article:<id>`) and the model's (`article`), so every fragment and page that showed it is invalid at once,
 * in every process that shares the cache.
 *
 * @example
 * ```ts
 * const articles = new ArticleRepository(db, cache)
 * const a = articles.find(1)!
 * await articles.save({ ...a, title: 'New title' }) // bumps article:1 and article
 * ```
 */
export class ArticleRepository {
  readonly #cache: TieredCache
  readonly #find: Database.Statement<[number], Article>
  readonly #latest: Database.Statement<[number], Article>
  readonly #inCategory: Database.Statement<[string], Article>
  readonly #popular: Database.Statement<[string, number], Article>
  readonly #categories: Database.Statement<[], Category>
  readonly #category: Database.Statement<[string], Category>
  readonly #insert: Database.Statement<[Record<string, unknown>]>
  readonly #update: Database.Statement<[Record<string, unknown>]>
  readonly #delete: Database.Statement<[number]>

  constructor(db: Database.Database, cache: TieredCache) {
    this.#cache = cache
    const from = 'FROM articles a JOIN categories c ON c.id = a.category_id'
    this.#find = db.prepare(`SELECT ${COLUMNS} ${from} WHERE a.id = ?`)
    this.#latest = db.prepare(`SELECT ${COLUMNS} ${from} ORDER BY a.updated_at DESC, a.id LIMIT ?`)
    this.#inCategory = db.prepare(`SELECT ${COLUMNS} ${from} WHERE c.slug = ? ORDER BY a.updated_at DESC, a.id`)
    this.#popular = db.prepare(`SELECT ${COLUMNS} ${from} WHERE a.lang = ? ORDER BY a.views DESC, a.id LIMIT ?`)
    const categories = `SELECT c.id, c.slug, c.name, count(a.id) AS count FROM categories c
      LEFT JOIN articles a ON a.category_id = c.id`
    this.#categories = db.prepare(`${categories} GROUP BY c.id ORDER BY c.name`)
    this.#category = db.prepare(`${categories} WHERE c.slug = ? GROUP BY c.id`)
    this.#insert = db.prepare(
      `INSERT INTO articles (category_id, lang, title, summary, body, author, views, updated_at)
       VALUES (@categoryId, @lang, @title, @summary, @body, @author, 0, @updatedAt)`,
    )
    this.#update = db.prepare(
      `UPDATE articles SET category_id = @categoryId, lang = @lang, title = @title, summary = @summary,
       body = @body, author = @author, updated_at = @updatedAt WHERE id = @id`,
    )
    this.#delete = db.prepare('DELETE FROM articles WHERE id = ?')
  }

  /** The article with this id, or undefined. */
  find(id: number): Article | undefined {
    return this.#find.get(id)
  }

  /** The most recently updated articles. */
  latest(limit = 10): Article[] {
    return this.#latest.all(limit)
  }

  /** The articles of one category, newest first. */
  inCategory(slug: string): Article[] {
    return this.#inCategory.all(slug)
  }

  /** The most viewed articles in one language. */
  popular(lang: string, limit = 5): Article[] {
    return this.#popular.all(lang, limit)
  }

  /** Every category, by name, with its article count. */
  categories(): Category[] {
    return this.#categories.all()
  }

  /** One category by slug, or undefined. */
  category(slug: string): Category | undefined {
    return this.#category.get(slug)
  }

  /**
   * Inserts or updates an article, then bumps its data version: the model's save hook.
   * @throws Error naming the field when a field is empty or too long, or the id does not exist.
   */
  async save(input: ArticleInput): Promise<Article> {
    checkInput(input)
    const row = { ...input, updatedAt: new Date().toISOString() }
    let id: number
    if (input.id === undefined) {
      id = Number(this.#insert.run(row).lastInsertRowid)
    } else {
      if (this.#update.run(row).changes === 0) throw new Error(`article ${input.id} does not exist`)
      id = input.id
    }
    await this.#cache.versions.bump(`article:${id}`, 'article')
    return this.find(id) as Article
  }

  /** Deletes an article and bumps its data version; false when there was no such article. */
  async delete(id: number): Promise<boolean> {
    const deleted = this.#delete.run(id).changes > 0
    if (deleted) await this.#cache.versions.bump(`article:${id}`, 'article')
    return deleted
  }
}

const LIMITS: Record<'title' | 'summary' | 'body' | 'author' | 'lang', number> = {
  title: 200,
  summary: 500,
  body: 20_000,
  author: 64,
  lang: 8,
}

function checkInput(input: ArticleInput): void {
  for (const [field, max] of Object.entries(LIMITS) as Array<[keyof typeof LIMITS, number]>) {
    const value = input[field]
    if (typeof value !== 'string' || value.trim() === '') throw new Error(`article ${field} must not be empty`)
    if (value.length > max) throw new Error(`article ${field} must be at most ${max} characters; got ${value.length}`)
  }
  if (!Number.isInteger(input.categoryId)) throw new Error(`article categoryId must be an integer; got ${String(input.categoryId)}`)
}

import type { RequestHandler } from 'express'

/** How one view was served: the `X-Cache` answers the page cache gave. */
export interface PageCounts {
  HIT: number
  MISS: number
  BYPASS: number
}

/**
 * Counts, per view, how the page cache answered (`X-Cache: HIT|MISS|BYPASS`), for the `/_cache` page.
 * @example
 * ```ts
 * const pages = new PageCounters()
 * router.get('/category/:slug', pages.count('category'), cachePage(cache, { ttl: 300 }), handler)
 * pages.snapshot() // Map { 'category' => { HIT: 3, MISS: 1, BYPASS: 2 } }
 * ```
 */
export class PageCounters {
  readonly #counts = new Map<string, PageCounts>()

  /** Middleware that counts the `X-Cache` header of every response of the view called `label`. */
  count(label: string): RequestHandler {
    const counts = this.#counts
    return function countPage(_req, res, next) {
      res.once('finish', () => {
        const answer = String(res.getHeader('x-cache') ?? '').toUpperCase()
        if (answer !== 'HIT' && answer !== 'MISS' && answer !== 'BYPASS') return
        let view = counts.get(label)
        if (view === undefined) counts.set(label, (view = { HIT: 0, MISS: 0, BYPASS: 0 }))
        view[answer] += 1
      })
      next()
    }
  }

  /** A copy of the counts, by view label. */
  snapshot(): Map<string, PageCounts> {
    return new Map([...this.#counts].map(([label, counts]) => [label, { ...counts }]))
  }
}

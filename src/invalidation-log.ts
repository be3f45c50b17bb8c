/**
 * The latest invalidations this process saw (its own bumps and path invalidations, and those other processes announced
 * on the bus), with how many of this process's L1 entries each made unusable: what the dashboard lists.
 */
import type { Entry } from './entry.ts'

/** One invalidation. */
export interface Invalidation {
  /** When this process saw it (the cache's clock, ms since the epoch). */
  readonly at: number
  /** `path` for a path invalidation (`invalidatePath`), `tag` for any other version bump, `clear` for `clear()`. */
  readonly kind: 'tag' | 'path' | 'clear'
  /** The tag, or the path prefix (`/articles/`). */
  readonly target: string
  /** Whether this process made it, or heard it from another over the bus. */
  readonly origin: 'local' | 'remote'
  /**
   * Entries of this process's L1 that depended on it at that moment (a lower bound: entries in Redis and other
   * processes' memory are not counted).
   */
  readonly droppedL1: number
}

/** Invalidations kept. */
export const MAX_INVALIDATIONS = 50

/**
 * A ring of the latest {@link Invalidation}s.
 * @example
 * ```ts
 * const log = new InvalidationLog(); log.add({ at: Date.now(), kind: 'tag', target: 'article:42', origin: 'local', droppedL1: 3 })
 * log.latest() // newest first
 * ```
 */
export class InvalidationLog {
  readonly #items: Invalidation[] = []

  /**
   * Logs an invalidation seen at `at`: `tags` bumped (one item per tag), or null for a clear; `l1` is this process's L1
   * at that moment, to count the entries each one drops.
   */
  record(tags: readonly string[] | null, origin: Invalidation['origin'], at: number, l1: { readonly size: number; entries(): Iterable<[string, Entry]> }): void {
    if (tags === null) {
      this.add({ at, kind: 'clear', target: '*', origin, droppedL1: l1.size })
      return
    }
    for (const tag of tags) this.add({ at, ...describeTag(tag), origin, droppedL1: countDependents(l1.entries(), [tag]) })
  }

  add(item: Invalidation): void {
    this.#items.push(item)
    if (this.#items.length > MAX_INVALIDATIONS) this.#items.shift()
  }

  /** Newest first. */
  latest(): Invalidation[] {
    return [...this.#items].reverse()
  }
}

/** The kind and target an invalidated tag is shown as: path invalidations' tags are `path:/dir/`. */
export function describeTag(tag: string): { kind: 'tag' | 'path'; target: string } {
  return tag.startsWith('path:/') ? { kind: 'path', target: tag.slice('path:'.length) } : { kind: 'tag', target: tag }
}

/**
 * The entries of `entries` that depend on any of `tags` (all of them for `null`): what an invalidation makes unusable.
 * @example
 * ```ts
 * countDependents(l1.entries(), ['article:42'])
 * ```
 */
export function countDependents(entries: Iterable<[string, { readonly deps: Readonly<Record<string, number>> | null }]>, tags: readonly string[] | null): number {
  let count = 0
  for (const [, entry] of entries) {
    if (tags === null || (entry.deps !== null && tags.some((tag) => Object.hasOwn(entry.deps as object, tag)))) count += 1
  }
  return count
}

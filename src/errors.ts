/**
 * Every error fragcache throws on purpose is a {@link FragcacheError}, with a stable `code`
 * that callers can switch on and the offending key, template or line as fields.
 *
 * @example
 * ```ts
 * try { await cache.incr('views') } catch (err) {
 *   if (err instanceof FragcacheError && err.code === 'FRAGCACHE_KEY_NOT_FOUND') await cache.add('views', 1, null)
 * }
 * ```
 */
export class FragcacheError extends Error {
  /** A stable identifier, safe to compare against. */
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/**
 * An argument or option was not what the API accepts (a bad TTL, an empty key, a value JSON cannot carry).
 * Extends {@link FragcacheError}; also a `TypeError` in spirit, so its `name` says which.
 *
 * @example
 * ```ts
 * await cache.set('k', undefined) // throws InvalidArgumentError: fragcache: cannot store undefined under "k" …
 * ```
 */
export class InvalidArgumentError extends FragcacheError {
  constructor(message: string) {
    super('FRAGCACHE_INVALID_ARGUMENT', message)
  }
}

/**
 * `incr`/`decr` on a key that holds nothing (as Django's `ValueError`).
 *
 * @example
 * ```ts
 * await cache.incr('never-set') // throws KeyNotFoundError
 * ```
 */
export class KeyNotFoundError extends FragcacheError {
  readonly key: string
  constructor(key: string) {
    super('FRAGCACHE_KEY_NOT_FOUND', `fragcache: cannot increment "${key}": no value is stored under it (add() it first)`)
    this.key = key
  }
}

/**
 * `incr`/`decr` on a key whose value is not an integer.
 *
 * @example
 * ```ts
 * await cache.set('name', 'ada'); await cache.incr('name') // throws NotAnIntegerError
 * ```
 */
export class NotAnIntegerError extends FragcacheError {
  readonly key: string
  constructor(key: string) {
    super('FRAGCACHE_NOT_AN_INTEGER', `fragcache: cannot increment "${key}": the stored value is not an integer`)
    this.key = key
  }
}

/**
 * An operation that promises atomicity across processes (`add`, `incr`, `decr`, `versions.bump`)
 * could not reach Redis, so that promise cannot be kept. Everything else degrades to a miss instead.
 *
 * @example
 * ```ts
 * try { await cache.add('lock:job', 1, 30) } catch (err) {
 *   if (err instanceof AtomicityError) console.warn('Redis is down; not taking the lock', err.cause)
 * }
 * ```
 */
export class AtomicityError extends FragcacheError {
  readonly key: string
  constructor(operation: string, key: string, cause: unknown) {
    super(
      'FRAGCACHE_ATOMICITY_UNAVAILABLE',
      `fragcache: ${operation}("${key}") needs Redis to be atomic across processes, and Redis is unavailable: ${describe(cause)}`,
      { cause },
    )
    this.key = key
  }
}

/**
 * A template cache tag was used wrongly (bad syntax, a bad TTL, a construct the engine cannot run it in).
 * Carries the template name and the 1-based line of the tag.
 *
 * @example
 * ```ts
 * throw new TemplateTagError('views/page.njk', 12, 'the cache tag needs a fragment name')
 * ```
 */
export class TemplateTagError extends FragcacheError {
  readonly template: string
  readonly line: number
  constructor(template: string, line: number, message: string, options?: { cause?: unknown }) {
    super('FRAGCACHE_TEMPLATE_TAG', `${message} (${template}, line ${line})`, options)
    this.template = template
    this.line = line
  }
}

/** A short, single-line description of any thrown value, for log lines and error messages. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

/**
 * Every error fragcache throws on purpose: one base class to `instanceof`, a stable `code` per class, the offending key,
 * template or line as fields and the original error as `cause`; and {@link describe}/{@link describeValue}, the safe
 * one-line descriptions every message is built from.
 */

/** The stable codes of fragcache's errors: one per class. */
export type FragcacheErrorCode =
  | 'FRAGCACHE_INVALID_ARGUMENT'
  | 'FRAGCACHE_KEY_NOT_FOUND'
  | 'FRAGCACHE_NOT_AN_INTEGER'
  | 'FRAGCACHE_ATOMICITY_UNAVAILABLE'
  | 'FRAGCACHE_OUTCOME_UNKNOWN'
  | 'FRAGCACHE_VERSIONS_UNAVAILABLE'
  | 'FRAGCACHE_NOT_READY'
  | 'FRAGCACHE_TEMPLATE_TAG'
  | 'FRAGCACHE_PRIVATE_READ'
  | 'FRAGCACHE_UNSUPPORTED_ENGINE'

/** Marks fragcache's errors, so {@link InvalidArgumentError} (a `TypeError`) is a `FragcacheError` too. */
const BRAND = Symbol.for('fragcache.error')

function brand(error: Error, code: FragcacheErrorCode): void {
  Object.defineProperty(error, BRAND, { value: true })
  error.name = error.constructor.name
  ;(error as Error & { code?: FragcacheErrorCode }).code = code
}

/**
 * The base of every error fragcache throws on purpose, with a stable `code` that callers can switch on.
 * `instanceof FragcacheError` is true for all of them, {@link InvalidArgumentError} (a `TypeError`) included.
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
  declare readonly code: FragcacheErrorCode

  constructor(code: FragcacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    brand(this, code)
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses inherit this static method: for them, plain prototype-chain instanceof.
    if (this !== FragcacheError) return Function.prototype[Symbol.hasInstance].call(this, value)
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: true })[BRAND] === true
  }
}

/**
 * An argument or option was not what the API accepts (a bad TTL, an empty key, a value JSON cannot carry, an unknown
 * option). A `TypeError`, as Node's own `ERR_INVALID_ARG_TYPE`, and a {@link FragcacheError}.
 *
 * @example
 * ```ts
 * await cache.set('k', undefined) // throws InvalidArgumentError: fragcache: cannot store undefined under "k" …
 * ```
 */
export class InvalidArgumentError extends TypeError {
  declare readonly code: 'FRAGCACHE_INVALID_ARGUMENT'

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    brand(this, 'FRAGCACHE_INVALID_ARGUMENT')
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
 * An operation that promises atomicity across processes (`add`, `incr`, `decr`, `versions.bump`) could not reach Redis,
 * so that promise cannot be kept. Everything else degrades to a miss instead. `cause` is the Redis error itself.
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
  readonly operation: string
  constructor(operation: string, key: string, cause: unknown) {
    super(
      'FRAGCACHE_ATOMICITY_UNAVAILABLE',
      `fragcache: ${operation}("${key}") needs Redis to be atomic across processes, and Redis is unavailable: ${describe(cause)}`,
      { cause },
    )
    this.key = key
    this.operation = operation
  }
}

/**
 * A `versions.bump` was sent to Redis, and no answer came (it timed out, or the connection broke while waiting), even
 * after retrying: Redis may or may not have applied it. fragcache has told every process to drop the tags anyway
 * (dropping is always safe), so nothing stale is served where the bus reaches; the caller should say the change was
 * saved but may take a moment to show, rather than that it failed. An {@link AtomicityError}, with its own code.
 *
 * @example
 * ```ts
 * try { await cache.versions.bump('article:1') } catch (err) {
 *   if (err instanceof OutcomeUnknownError) flash('Saved; the page may take a few seconds to update')
 * }
 * ```
 */
export class OutcomeUnknownError extends AtomicityError {
  constructor(operation: string, key: string, cause: unknown) {
    super(operation, key, cause)
    ;(this as { code: FragcacheErrorCode }).code = 'FRAGCACHE_OUTCOME_UNKNOWN'
    this.message = `fragcache: ${operation}("${key}") was sent to Redis and no answer came: it may or may not have been applied (every process was told to drop what it holds): ${describe(cause)}`
  }
}

/**
 * `versions.get` could not read the versions of `tags`: Redis is unavailable and this process does not know them.
 *
 * @example
 * ```ts
 * try { await cache.versions.get(['article:1']) } catch (err) {
 *   if (err instanceof VersionsUnavailableError) renderWithoutCache()
 * }
 * ```
 */
export class VersionsUnavailableError extends FragcacheError {
  readonly tags: readonly string[]
  constructor(tags: readonly string[], cause: unknown) {
    super(
      'FRAGCACHE_VERSIONS_UNAVAILABLE',
      `fragcache: versions.get(${tags.join(', ')}): the versions could not be read, Redis is unavailable: ${describe(cause)}`,
      { cause },
    )
    this.tags = tags
  }
}

/**
 * `cache.ready()` gave up: Redis did not accept a connection (or the bus did not subscribe) within the time asked.
 *
 * @example
 * ```ts
 * await cache.ready(2000).catch((err: NotReadyError) => console.warn(err.message)) // start anyway: reads are misses
 * ```
 */
export class NotReadyError extends FragcacheError {
  readonly timeoutMs: number
  constructor(timeoutMs: number) {
    super('FRAGCACHE_NOT_READY', `fragcache: Redis was not ready within ${timeoutMs} ms`)
    this.timeoutMs = timeoutMs
  }
}

/**
 * A template cache tag was used wrongly (bad syntax, a bad TTL, a construct the engine cannot run it in), or the body of
 * a fragment failed (then `cause` is the body's error). Carries the template name and the 1-based line of the tag.
 *
 * @example
 * ```ts
 * throw new TemplateTagError('views/page.njk', 12, 'fragcache: the cache tag needs a fragment name')
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

/**
 * A value shared by every visitor read a value private to one (marked with `markPrivate`) while it was computed, and
 * the cache's `privateReads` is `'error'` (the default outside production): storing it would serve one visitor's data to
 * another. Vary the entry by the context, or read the value outside the cached part. A cache tag reports it as a
 * {@link TemplateTagError} naming the fragment, the template and the line.
 *
 * @example
 * ```ts
 * await cache.getOrSet('sidebar', () => `Hello ${user.name}`) // PrivateReadError: … read user.name …
 * await cache.getOrSet('sidebar', () => `Hello ${user.name}`, { vary: ['user'] }) // one entry per user
 * ```
 */
export class PrivateReadError extends FragcacheError {
  readonly key: string
  readonly context: string
  /** What was read: `user.name`. */
  readonly read: string
  constructor(key: string, context: string, read: string) {
    super(
      'FRAGCACHE_PRIVATE_READ',
      `fragcache: "${key}" read ${read}, private to the "${context}" context, while it was computed for every visitor; ` +
        `vary it by that context (vary: ['${context}'], or vary="${context}" on a cache tag), or read the value outside the cached part`,
    )
    this.key = key
    this.context = context
    this.read = read
  }
}

/**
 * The template engine is a version whose compiled code fragcache does not recognise, so it cannot hook into it safely.
 *
 * @example
 * ```ts
 * new Eta({ plugins: [fragmentCache(cache)] }) // with Eta 5: UnsupportedEngineError when a template is compiled
 * ```
 */
export class UnsupportedEngineError extends FragcacheError {
  constructor(message: string) {
    super('FRAGCACHE_UNSUPPORTED_ENGINE', message)
  }
}

/**
 * A short, single-line description of any thrown value, for log lines and error messages. Never throws, whatever it is
 * given (a getter that throws, a proxy, an object without a prototype).
 * @example
 * ```ts
 * describe(new Error('boom')) // 'boom'
 * ```
 */
export function describe(err: unknown): string {
  try {
    if (err instanceof Error) return err.message
    return typeof err === 'object' && err !== null ? describeValue(err) : String(err)
  } catch {
    return 'an error that cannot be described'
  }
}

/**
 * A short description of a value for error messages: its type, and the value itself when short. Never throws.
 * @example
 * ```ts
 * describeValue('x'.repeat(50)) // 'a string of 50 characters'
 * describeValue(new Date())      // 'an object (Date)'
 * ```
 */
export function describeValue(value: unknown): string {
  try {
    if (value === undefined) return 'undefined'
    if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value)
    if (typeof value === 'function') return 'a function'
    if (typeof value === 'symbol') return value.toString()
    if (value === null || typeof value !== 'object') return String(value)
    if (Array.isArray(value)) return 'an array'
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name
    return `an object (${typeof name === 'string' && name !== '' ? name : 'null prototype'})`
  } catch {
    return 'a value that cannot be described'
  }
}

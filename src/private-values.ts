/**
 * Private values: what belongs to one request's visitor (the signed-in user, the session, the cookies). Marked once,
 * they record every read made while a shared entry is computed, so such an entry varies by them, is not stored, or
 * fails in development with the value read named (the cache's `privateReads` option) — the automatic form of Rails'
 * `uncacheable!`.
 */
import { recordPrivateRead } from './dependency-recorder.ts'
import { InvalidArgumentError, describeValue } from './errors.ts'
import { checkContextNames } from './request-scope.ts'

const TARGET = Symbol('fragcache.privateTarget')
/** Proxies already made, by target and context, so that a value read twice is the same object twice. */
const proxies = new WeakMap<object, Map<string, object>>()

/**
 * Marks `value` as private to the request's `context` (`'user'`, `'session'`): reading any property of it (deeply)
 * while a shared entry is computed is recorded. Outside computes, reads cost a check and nothing else. Declare the
 * context on the request scope, and cache per visitor with `vary: ['user']` (the tags: `vary="user"`).
 * @throws InvalidArgumentError for a value that is not an object (a string cannot be watched: wrap it, `{ id }`).
 * @example
 * ```ts
 * res.locals.user = markPrivate('user', req.user)        // {{ user.name }} inside a shared fragment is caught
 * ```
 */
export function markPrivate<T extends object>(context: string, value: T): T {
  const [name] = checkContextNames(context, 'markPrivate')
  if (typeof value !== 'object' || value === null) {
    throw new InvalidArgumentError(`fragcache: markPrivate("${context}"): only an object can be watched; got ${describeValue(value)}`)
  }
  return watched(value, name as string, name as string)
}

/**
 * True when `value` was made by {@link markPrivate}.
 * @example
 * ```ts
 * isPrivate(res.locals.user) // true
 * ```
 */
export function isPrivate(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { [TARGET]?: object })[TARGET] !== undefined
}

function watched<T extends object>(target: T, context: string, path: string): T {
  let byContext = proxies.get(target)
  if (byContext === undefined) proxies.set(target, (byContext = new Map()))
  const known = byContext.get(context)
  if (known !== undefined) return known as T
  const proxy = new Proxy(target, {
    get(object, property, receiver) {
      if (property === TARGET) return object
      const read = Reflect.get(object, property, receiver) as unknown
      if (typeof property === 'symbol') return read
      const what = `${path}.${property}`
      recordPrivateRead(context, what)
      return typeof read === 'object' && read !== null ? watched(read, context, what) : read
    },
    has(object, property) {
      recordPrivateRead(context, path)
      return Reflect.has(object, property)
    },
    ownKeys(object) {
      recordPrivateRead(context, path)
      return Reflect.ownKeys(object)
    },
  })
  byContext.set(context, proxy)
  return proxy
}

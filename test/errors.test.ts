import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  AtomicityError,
  FragcacheError,
  InvalidArgumentError,
  KeyNotFoundError,
  NotAnIntegerError,
  TemplateTagError,
  VersionsUnavailableError,
  createCache,
} from '../src/index.ts'
import { describe as describeError, describeValue } from '../src/errors.ts'

const errors = suite('errors')

errors('every class is a FragcacheError with its own code and name', () => {
  const cause = new Error('connect ECONNREFUSED 127.0.0.1:1')
  const made: [FragcacheError | InvalidArgumentError, string, string][] = [
    [new InvalidArgumentError('bad'), 'FRAGCACHE_INVALID_ARGUMENT', 'InvalidArgumentError'],
    [new KeyNotFoundError('k'), 'FRAGCACHE_KEY_NOT_FOUND', 'KeyNotFoundError'],
    [new NotAnIntegerError('k'), 'FRAGCACHE_NOT_AN_INTEGER', 'NotAnIntegerError'],
    [new AtomicityError('add', 'k', cause), 'FRAGCACHE_ATOMICITY_UNAVAILABLE', 'AtomicityError'],
    [new VersionsUnavailableError(['a'], cause), 'FRAGCACHE_VERSIONS_UNAVAILABLE', 'VersionsUnavailableError'],
    [new TemplateTagError('page.njk', 3, 'fragcache: bad'), 'FRAGCACHE_TEMPLATE_TAG', 'TemplateTagError'],
  ]
  for (const [error, code, name] of made) {
    assert.ok(error instanceof FragcacheError, name)
    assert.is(error.code, code)
    assert.is(error.name, name)
  }
})

errors('InvalidArgumentError is a TypeError, and the subclasses do not match each other', () => {
  const error = new InvalidArgumentError('bad')
  assert.ok(error instanceof TypeError)
  assert.ok(!(new KeyNotFoundError('k') instanceof NotAnIntegerError))
  assert.ok(!(new Error('plain') instanceof FragcacheError))
  assert.ok(!((null as unknown) instanceof FragcacheError))
})

errors('storing undefined throws a TypeError, as the API says', async () => {
  const cache = createCache()
  try {
    await cache.set('k', undefined)
    assert.unreachable('should have thrown')
  } catch (error) {
    assert.instance(error, TypeError)
    assert.is((error as Error).message, 'fragcache: cannot store undefined under "fragcache:1:c:k"; store null to cache "nothing"')
  }
})

errors('AtomicityError keeps the Redis error as its cause', () => {
  const cause = new Error('connect ECONNREFUSED 127.0.0.1:1')
  const error = new AtomicityError('add', 'k', cause)
  assert.is(error.cause, cause)
  assert.is(error.message, 'fragcache: add("k") needs Redis to be atomic across processes, and Redis is unavailable: connect ECONNREFUSED 127.0.0.1:1')
})

errors('describeValue and describe never throw', () => {
  const hostile = new Proxy({}, { getPrototypeOf: () => { throw new Error('no') } })
  assert.is(describeValue(hostile), 'a value that cannot be described')
  assert.is(describeValue(Object.create(null)), 'an object (null prototype)')
  assert.is(describeValue('x'.repeat(50)), 'a string of 50 characters')
  assert.is(describeValue(Symbol('s')), 'Symbol(s)')
  const throwingMessage = Object.create(Error.prototype, { message: { get: () => { throw new Error('no') } } }) as Error
  assert.is(describeError(throwingMessage), 'an error that cannot be described')
})

errors.run()

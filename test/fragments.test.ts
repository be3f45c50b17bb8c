import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CACHE_TAG_KEYWORDS, FragmentCache, type FragmentCall, badTtl, cacheTagArguments, sourceDigest } from '../src/fragments.ts'
import { TemplateTagError, createCache } from '../src/index.ts'

const prepare = suite('FragmentCache.prepare')
const base: FragmentCall = { name: 'teaser', ttl: 300, inputs: [42, 'en'], deps: ['article:42'], digest: sourceDigest('<li>'), template: 't.njk', line: 3 }

prepare('is exported', () => {
  assert.type(FragmentCache, 'function')
})

prepare('the same call gives the same key; any change in the inputs, their types or order gives another', () => {
  const fragments = new FragmentCache(createCache())
  const key = (call: Partial<FragmentCall>) => fragments.prepare({ ...base, ...call }).key
  assert.is(key({}), key({}))
  const variants: Partial<FragmentCall>[] = [
    { inputs: ['42', 'en'] },
    { inputs: [42, 'fr'] },
    { inputs: ['en', 42] },
    { inputs: [42] },
    { inputs: [42, 'en', undefined] },
    { inputs: [42, 'en', null] },
    { inputs: [true, 'en'] },
    { inputs: ['a:b'] },
    { inputs: ['a', 'b'] },
    { name: 'other' },
    { digest: sourceDigest('<li class="x">') },
  ]
  const keys = new Set([key({}), ...variants.map(key)])
  assert.is(keys.size, variants.length + 1)
  // An object input is hashed by content every time (never memoized by identity): changing it changes the key.
  const filters = { tag: 'a' }
  const first = key({ inputs: [filters] })
  filters.tag = 'b'
  assert.is.not(key({ inputs: [filters] }), first)
})

prepare('a repeated call is checked once, but a bad one is always refused with the template and line', () => {
  const fragments = new FragmentCache(createCache())
  assert.is(fragments.prepare(base), fragments.prepare({ ...base, inputs: [42, 'en'], deps: ['article:42'] }))
  for (const [call, message] of [
    [{ ttl: '300' }, 'fragcache: the TTL of fragment "teaser" must be a number of seconds or null; got "300" (t.njk, line 3)'],
    [{ name: '' }, 'fragcache: the cache tag needs a fragment name; got "" (t.njk, line 3)'],
    [{ deps: ['has space'] }, 'fragcache: deps of fragment "teaser": a tag must be a non-empty string of at most 200 characters without whitespace; got "has space" (t.njk, line 3)'],
    [{ grace: -1 }, 'fragcache: the grace of fragment "teaser" must be a number of seconds of at least 0; got -1 (t.njk, line 3)'],
    [{ grace: '60' }, 'fragcache: the grace of fragment "teaser" must be a number of seconds of at least 0; got "60" (t.njk, line 3)'],
  ] as [Partial<FragmentCall>, string][]) {
    for (let i = 0; i < 2; i++) {
      try {
        fragments.prepare({ ...base, ...call })
        assert.unreachable()
      } catch (err) {
        assert.instance(err, TemplateTagError)
        assert.is((err as Error).message, message)
      }
    }
  }
})

prepare('grace reaches the entry; it is not part of the key', () => {
  const fragments = new FragmentCache(createCache())
  const graceful = fragments.prepare({ ...base, grace: 60 })
  assert.is(graceful.grace, 60)
  assert.is(fragments.prepare(base).grace, undefined)
  assert.is(graceful.key, fragments.prepare(base).key)
})

prepare('values that cannot be described are described safely: never a bare TypeError, always the template and line', () => {
  const fragments = new FragmentCache(createCache())
  const circular: unknown[] = []
  circular.push(circular)
  const looped: Record<string, unknown> = {}
  looped.self = looped
  const throwing = new Proxy([], {
    get() {
      throw new TypeError('no reading this')
    },
  })
  const opaque = new Proxy({}, {
    getPrototypeOf() {
      throw new TypeError('no looking')
    },
  })
  const revocable = Proxy.revocable([], {})
  revocable.revoke()
  const tagRule = 'a tag must be a non-empty string of at most 200 characters without whitespace'
  for (const [call, message] of [
    [{ deps: [circular] }, `fragcache: deps of fragment "teaser": ${tagRule}; got an array (t.njk, line 3)`],
    [{ deps: [looped] }, `fragcache: deps of fragment "teaser": ${tagRule}; got an object (Object) (t.njk, line 3)`],
    [{ deps: [10n] }, `fragcache: deps of fragment "teaser": ${tagRule}; got 10 (t.njk, line 3)`],
    [{ deps: looped }, 'fragcache: deps of fragment "teaser": tags must be an array of strings; got an object (Object) (t.njk, line 3)'],
    [{ deps: throwing }, 'fragcache: the deps of fragment "teaser" cannot be read: no reading this (t.njk, line 3)'],
    [{ deps: revocable.proxy }, 'fragcache: the deps of fragment "teaser" cannot be read: Cannot perform \'IsArray\' on a proxy that has been revoked (t.njk, line 3)'],
    [{ ttl: looped }, 'fragcache: the TTL of fragment "teaser" must be a number of seconds or null; got an object (Object) (t.njk, line 3)'],
    [{ name: opaque }, 'fragcache: the cache tag needs a fragment name; got a value that cannot be described (t.njk, line 3)'],
    [{ inputs: [looped] }, 'fragcache: fragment "teaser" cannot vary by its inputs: fragcache: a cache key input contains a cycle (t.njk, line 3)'],
    [{ inputs: throwing }, 'fragcache: fragment "teaser" cannot vary by its inputs: no reading this (t.njk, line 3)'],
  ] as [Partial<FragmentCall>, string][]) {
    assert.throws(
      () => fragments.prepare({ ...base, ...call }),
      (error: Error) => error instanceof TemplateTagError && error.message === message,
      message,
    )
  }
})

prepare.run()

const tagArguments = suite('cacheTagArguments')
const syntax = (keywordsLast: boolean) => ({ example: '{% cache 300 "sidebar" lang %}', keywordsLast })
const refuse = (reason: string): never => {
  throw new Error(reason)
}
const input = (value: string) => ({ value })
const keyword = (name: string, value: string) => ({ keyword: name, value })

tagArguments('is exported, with the one list of keywords', () => {
  assert.type(cacheTagArguments, 'function')
  assert.equal([...CACHE_TAG_KEYWORDS], ['deps', 'ttl', 'grace', 'vary', 'collection'])
})

tagArguments('TTL, name and inputs by position; ttl= takes the place of the first input', () => {
  assert.equal(cacheTagArguments([input('300'), input('"a"'), input('lang'), input('id')], syntax(true), refuse), {
    ttl: '300',
    name: '"a"',
    inputs: ['lang', 'id'],
    keywords: {},
  })
  assert.equal(cacheTagArguments([input('"a"'), input('lang'), keyword('ttl', '60'), keyword('deps', '["x"]')], syntax(true), refuse), {
    ttl: '60',
    name: '"a"',
    inputs: ['lang'],
    keywords: { deps: '["x"]' },
  })
})

tagArguments('inputs after a keyword: refused where the syntax puts keywords last, taken where it does not', () => {
  const items = [input('300'), keyword('deps', '[]'), input('"a"')]
  assert.throws(() => cacheTagArguments(items, syntax(true), refuse), /^the inputs of the cache tag must come before deps=, ttl=, grace=, vary= and collection=$/)
  assert.equal(cacheTagArguments(items, syntax(false), refuse), { ttl: '300', name: '"a"', inputs: [], keywords: { deps: '[]' } })
})

tagArguments('one wording for each mistake, with the engine\'s example', () => {
  for (const [items, reason] of [
    [[input('300')], 'the cache tag needs a TTL and a fragment name, as in {% cache 300 "sidebar" lang %} (or ttl=300 "sidebar")'],
    [[keyword('ttl', '300')], 'the cache tag needs a TTL and a fragment name, as in {% cache 300 "sidebar" lang %} (or ttl=300 "sidebar")'],
    [[input('300'), input('"a"'), keyword('expires', 'lang')], 'the cache tag takes only deps=, ttl=, grace=, vary= and collection= as keywords; got expires='],
    [[input('300'), input('"a"'), keyword('', 'lang')], 'the cache tag takes only deps=, ttl=, grace=, vary= and collection= as keywords; got an expression='],
    [[input('"a"'), keyword('ttl', '1'), keyword('ttl', '2')], 'ttl= is given twice in the cache tag'],
  ] as [{ keyword?: string; value: string }[], string][]) {
    for (const keywordsLast of [true, false]) {
      assert.throws(() => cacheTagArguments(items, syntax(keywordsLast), refuse), (error: Error) => error.message === reason)
    }
  }
})

tagArguments.run()

const ttlWording = suite('badTtl')

ttlWording('the same words with and without the fragment\'s name', () => {
  assert.is(badTtl('"soon"'), 'the TTL must be a number of seconds or null; got "soon"')
  assert.is(badTtl('"soon"', 'x'), 'the TTL of fragment "x" must be a number of seconds or null; got "soon"')
})

ttlWording.run()

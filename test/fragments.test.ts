import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { FragmentCache, type FragmentCall, sourceDigest } from '../src/fragments.ts'
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

prepare.run()

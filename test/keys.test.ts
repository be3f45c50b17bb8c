import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { KeyBuilder, MAX_KEY_BYTES, encodeStable, stableHash } from '../src/keys.ts'
import { slotOf } from './support/cluster-slots.ts'

const SAFE_KEY = /^[\x21-\x7e]+$/

const build = suite('KeyBuilder')

build('is exported', () => {
  assert.type(KeyBuilder, 'function')
})

build('keeps a short safe name readable', () => {
  assert.is(new KeyBuilder('site', 1).build('c', 'top_authors'), 'site:1:c:top_authors')
  assert.is(new KeyBuilder('site', 3).build('frag', 'article:42'), 'site:3:frag:article:42')
})

build('hashes inputs, keeping the name readable', () => {
  const key = new KeyBuilder('site', 1).build('frag', 'sidebar', ['en', 42])
  assert.match(key, /^site:1:frag:sidebar#[\w-]{27}$/)
})

build('every key is at most 250 bytes of printable ASCII, whatever the input', () => {
  const keys = new KeyBuilder('a-rather-long-prefix-for-a-shared-redis_instance.production', 123456789)
  const nasty = [
    'hello world',
    'line\nbreak\ttab\r\0nul',
    'ünïcødé 🚀 名前',
    'x'.repeat(10_000),
    '#hash',
    ' ',
  ]
  for (const name of nasty) {
    for (const inputs of [undefined, [name], [{ nested: { deep: [name, 1] } }]]) {
      const key = keys.build('frag', name, inputs)
      assert.ok(Buffer.byteLength(key) <= MAX_KEY_BYTES, `${key.length} bytes for ${JSON.stringify(name).slice(0, 30)}`)
      assert.ok(SAFE_KEY.test(key), `unsafe character in ${key}`)
    }
  }
})

build('distinct inputs give distinct keys', () => {
  const keys = new KeyBuilder('site', 1)
  const pairs: [unknown[], unknown[]][] = [
    [['a:b'], ['a', 'b']],
    [[1], ['1']],
    [[null], [undefined]],
    [[[]], [{}]],
    [['a,b'], ['a', 'b']],
    [[true], ['true']],
    [[new Date(0)], [new Date(0).toISOString()]],
  ]
  for (const [a, b] of pairs) {
    assert.is.not(keys.build('frag', 'f', a), keys.build('frag', 'f', b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`)
  }
  // A kept-whole name never collides with a shortened one.
  assert.is.not(keys.build('c', 'a b'), keys.build('c', 'a_b'))
  assert.is.not(keys.build('c', 'x'.repeat(300)), keys.build('c', `${'x'.repeat(299)}y`))
})

build('object key order does not matter', () => {
  const keys = new KeyBuilder('site', 1)
  assert.is(keys.build('frag', 'f', [{ a: 1, b: [2, { c: 3, d: 4 }] }]), keys.build('frag', 'f', [{ b: [2, { d: 4, c: 3 }] , a: 1 }]))
})

build('rejects bad prefixes, versions and names with exact messages', () => {
  assert.throws(() => new KeyBuilder('my site', 1), /prefix must be 1 to 64 characters of letters, digits, "_", "\." or "-"; got "my site"/)
  assert.throws(() => new KeyBuilder('', 1), /prefix must be 1 to 64 characters/)
  assert.throws(() => new KeyBuilder('site', -1), /version must be a non-negative integer; got -1/)
  assert.throws(() => new KeyBuilder('site', 1.5), /version must be a non-negative integer; got 1.5/)
  const keys = new KeyBuilder('site', 1)
  assert.throws(() => keys.build('c', ''), /a key must be a non-empty string; got ""/)
  assert.throws(() => keys.build('c', 42 as unknown as string), /a key must be a non-empty string; got 42/)
})

build('version keys of one cache share one Cluster slot, other keys spread, and stay within 250 bytes', () => {
  const keys = new KeyBuilder('site', 1)
  const tags = ['article:1', 'article:2', 'path:/', 'path:/articles/', 'user:7', 'x'.repeat(300)]
  const versionSlots = new Set(tags.map((tag) => slotOf(keys.build('ver', tag))))
  assert.is(versionSlots.size, 1)
  assert.ok(new Set(tags.map((tag) => slotOf(keys.build('c', tag)))).size > 1)
  assert.match(keys.build('ver', 'article:1'), /^site:1:ver:\{[\w-]{10}\}:article:1$/)
  // Another cache (prefix or version) has its own tag, so two caches do not crowd one slot.
  assert.is.not(slotOf(new KeyBuilder('site', 2).build('ver', 'a')), slotOf(keys.build('ver', 'a')))
  const long = new KeyBuilder('a-rather-long-prefix-for-a-shared-redis_instance.production', 123456789)
  for (const tag of ['t'.repeat(160), 'ünï 🚀', 'y'.repeat(5000)]) {
    const key = long.build('ver', tag)
    assert.ok(Buffer.byteLength(key) <= MAX_KEY_BYTES, `${key.length} bytes`)
    assert.ok(SAFE_KEY.test(key), `unsafe character in ${key}`)
  }
})

build.run()

const hashing = suite('stableHash')

hashing('is stable and type-tagged', () => {
  assert.is(stableHash({ b: 1, a: [2, '3'] }), stableHash({ a: [2, '3'], b: 1 }))
  assert.is(encodeStable([1, '1', null, undefined, true]), '[1,"1",null,undefined,true]')
  assert.is(encodeStable(new Map([['k', 1]])), 'Map{"k":1}')
  assert.is(encodeStable(new Set([1, 2])), 'Set[1,2]')
})

hashing('rejects functions, symbols and cycles', () => {
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  assert.throws(() => stableHash([() => 1]), /a function cannot be part of a cache key/)
  assert.throws(() => stableHash(Symbol('s')), /a symbol cannot be part of a cache key/)
  assert.throws(() => stableHash(cyclic), /a cache key input contains a cycle/)
})

hashing('a shared object seen twice is not a cycle', () => {
  const shared = { a: 1 }
  assert.is(encodeStable([shared, shared]), '[{"a":1},{"a":1}]')
})

hashing.run()

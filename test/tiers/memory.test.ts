import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type Entry, makeEntry } from '../../src/entry.ts'
import { MemoryTier } from '../../src/tiers/memory.ts'

const memory = suite('MemoryTier')

const entry = (value: string, expiresAt: number | null = null, graceUntil = expiresAt): Entry => makeEntry('k', value, { expiresAt, graceUntil }).entry

memory('MemoryTier is exported', () => {
  assert.type(MemoryTier, 'function')
})

memory('get :: what was set, until its expiry by the clock it is given, then nothing (and it is dropped)', () => {
  const l1 = new MemoryTier()
  l1.set('a', entry('x', 1000), 0)
  assert.is(l1.get('a', 999)?.value, 'x')
  assert.is(l1.get('a', 1000), undefined)
  assert.is(l1.size, 0, 'the expired entry was dropped on read')
})

memory('get :: a stale entry is kept until the end of its grace, then dropped', () => {
  const l1 = new MemoryTier()
  l1.set('a', entry('x', 1000, 5000), 0)
  assert.is(l1.get('a', 4999)?.value, 'x')
  assert.is(l1.get('a', 5000), undefined)
})

memory('getSlot :: says when this process stored the entry (for bounded trust while the bus is down)', () => {
  const l1 = new MemoryTier()
  l1.set('a', entry('x'), 123)
  assert.equal(l1.getSlot('a', 500), { entry: l1.get('a', 500), storedAt: 123 })
})

memory('bounded by count: the least recently used entry goes first', () => {
  const l1 = new MemoryTier({ max: 2 })
  l1.set('a', entry('1'), 0)
  l1.set('b', entry('2'), 0)
  l1.get('a', 0)
  l1.set('c', entry('3'), 0)
  assert.equal([l1.get('a', 0)?.value, l1.get('b', 0)?.value, l1.get('c', 0)?.value], ['1', undefined, '3'])
})

memory('bounded by bytes: entries are counted by their size', () => {
  const big = 'x'.repeat(1000)
  const l1 = new MemoryTier({ maxBytes: 2500 })
  l1.set('a', entry(big), 0)
  l1.set('b', entry(big), 0)
  assert.is(l1.size, 2)
  assert.is(l1.bytes, 2 * entry(big).size)
  l1.set('c', entry(big), 0)
  assert.is(l1.size, 2, 'one was evicted to stay under maxBytes')
  assert.is(l1.get('a', 0), undefined)
})

memory('delete and clear', () => {
  const l1 = new MemoryTier()
  l1.set('a', entry('1'), 0)
  l1.set('b', entry('2'), 0)
  assert.is(l1.delete('a'), true)
  assert.is(l1.delete('a'), false)
  l1.clear()
  assert.is(l1.size, 0)
  assert.is(l1.bytes, 0)
})

memory.run()

import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { REREAD_EVERY, turnClock } from '../src/turn-clock.ts'

const clock = suite('turnClock')

function counting(): { read: () => number; reads: () => number } {
  let reads = 0
  return { read: () => 1_000 + ++reads, reads: () => reads }
}

clock('one read per event-loop turn: every call in the turn gets the same time', () => {
  const source = counting()
  const now = turnClock(source.read)
  assert.equal([now(), now(), now()], [1_001, 1_001, 1_001])
  assert.is(source.reads(), 1)
})

clock('the next turn reads the clock again', async () => {
  const source = counting()
  const now = turnClock(source.read)
  assert.is(now(), 1_001)
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  assert.is(now(), 1_002)
  assert.is(source.reads(), 2)
})

clock(`a long turn re-reads it every ${REREAD_EVERY} calls, so a synchronous loop never freezes time`, () => {
  const source = counting()
  const now = turnClock(source.read)
  const seen = Array.from({ length: REREAD_EVERY * 3 }, () => now())
  assert.is(source.reads(), 3)
  assert.equal([...new Set(seen)], [1_001, 1_002, 1_003])
  assert.is(seen.filter((t) => t === 1_001).length, REREAD_EVERY)
})

clock('a chain of promise continuations is one turn: still one read until the count is reached', async () => {
  const source = counting()
  const now = turnClock(source.read)
  const seen: number[] = []
  for (let i = 0; i < 10; i++) seen.push(await Promise.resolve(now()))
  assert.equal([...new Set(seen)], [1_001])
})

clock.run()

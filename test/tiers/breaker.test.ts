import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CircuitBreaker } from '../../src/tiers/breaker.ts'

const breaker = suite('CircuitBreaker')

function make(threshold = 3, cooldownMs = 1000) {
  const perf = { now: 0 }
  return { perf, breaker: new CircuitBreaker({ threshold, cooldownMs, perf: { now: () => perf.now } }) }
}

breaker('CircuitBreaker is exported', () => {
  assert.type(CircuitBreaker, 'function')
})

breaker('stays closed until `threshold` consecutive failures; a success in between resets the count', () => {
  const { breaker: b } = make(3)
  assert.is(b.failure(), false)
  assert.is(b.failure(), false)
  b.success()
  assert.is(b.failure(), false)
  assert.is(b.failure(), false)
  assert.is(b.isOpen, false)
  assert.is(b.allow(), true)
  assert.is(b.failure(), true, 'the third failure in a row opens it (and says so once)')
  assert.is(b.isOpen, true)
  assert.is(b.allow(), false)
})

breaker('an open circuit lets one probe through after the cooldown; its success closes it', () => {
  const { breaker: b, perf } = make(1, 1000)
  b.failure()
  perf.now += 999
  assert.is(b.allow(), false, 'still cooling down')
  perf.now += 1
  assert.is(b.allow(), true, 'the probe')
  assert.is(b.allow(), false, 'only one probe at a time')
  assert.is(b.success(), true, 'the probe closed an open circuit')
  assert.is(b.isOpen, false)
  assert.is(b.allow(), true)
})

breaker('a failed probe opens the circuit for another cooldown, without reporting a new outage', () => {
  const { breaker: b, perf } = make(1, 1000)
  assert.is(b.failure(), true)
  perf.now += 1000
  assert.is(b.allow(), true)
  assert.is(b.failure(), false, 'still the same outage')
  assert.is(b.allow(), false)
  perf.now += 1000
  assert.is(b.allow(), true)
})

breaker.run()

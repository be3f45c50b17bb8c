import * as assert from 'uvu/assert'

/**
 * The message of the error `fn` throws synchronously; fails the test when it throws nothing, so an error test
 * cannot pass by accident.
 */
export function thrownMessage(fn: () => unknown, expectation = 'should have thrown'): string {
  try {
    fn()
  } catch (error) {
    return (error as Error).message
  }
  assert.unreachable(expectation)
  return ''
}

/** The part of `html` from `open` to the end of the next `close`; fails the test when either is missing. */
export function between(html: string, open: string, close: string): string {
  const start = html.indexOf(open)
  const end = html.indexOf(close, start)
  assert.ok(start >= 0 && end > start, `expected ${open}…${close} in:\n${html}`)
  return html.slice(start, end + close.length)
}

import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { startSite } from '../../example-site/start.ts'

const Start = suite<{ holder: Server }>('demo site :: npm start')

Start.before(async (context) => {
  context.holder = createServer()
  await new Promise<void>((resolve) => context.holder.listen(0, '127.0.0.1', resolve))
})

Start.after(async (context) => {
  await new Promise((resolve) => context.holder.close(resolve))
})

Start('startSite is exported', () => {
  assert.type(startSite, 'function')
})

Start('a busy port :: the error names the port and the fix (PORT=0 or another port), not a bare EADDRINUSE', async (context) => {
  const port = (context.holder.address() as AddressInfo).port
  const options = { port, host: '127.0.0.1', redisUrl: undefined, dbFile: ':memory:', upstreamUrl: undefined, upstreamDelayMs: 0 }
  try {
    await startSite(options)
    assert.unreachable('startSite should have failed on a busy port')
  } catch (error) {
    assert.instance(error, Error)
    const { message, cause } = error as Error
    assert.match(message, `port ${port} on 127.0.0.1 is already in use`)
    assert.match(message, 'PORT=0')
    assert.is((cause as NodeJS.ErrnoException).code, 'EADDRINUSE')
  }
})

Start.run()

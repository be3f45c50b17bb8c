// Talking HTTP to an app under test: a server on a free loopback port for the length of one test, and requests
// whose status, headers and body the test reads.
import { type IncomingHttpHeaders, type OutgoingHttpHeaders, type RequestListener, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * Runs `fn` with the base URL (`http://127.0.0.1:<port>`) of `app` listening on a free loopback port, and closes the
 * server whatever `fn` does, open keep-alive connections included.
 */
export async function withServer<T>(app: RequestListener, fn: (baseUrl: string) => Promise<T>): Promise<T> {
  const server = createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  try {
    return await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  } finally {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** A response as a test reads it. */
export interface Reply {
  status: number
  headers: Headers
  body: string
  bytes: Buffer
  /** `X-Cache`. */
  cache: string | null
}

/** A request through `fetch`, its body read whole. */
export async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, init)
  const bytes = Buffer.from(await res.arrayBuffer())
  return { status: res.status, headers: res.headers, body: bytes.toString('utf8'), bytes, cache: res.headers.get('x-cache') }
}

/** A response to {@link callWithHeaders}. */
export interface RawReply {
  status: number
  headers: IncomingHttpHeaders
  body: string
  cache: string | undefined
}

/** A GET with headers `fetch` will not send as given (`Host`), on a connection of its own. */
export function callWithHeaders(url: string, headers: OutgoingHttpHeaders): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          cache: res.headers['x-cache'] as string | undefined,
        }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

/** A GET with a `Host` header of the test's choosing. */
export function callWithHost(url: string, host: string): Promise<RawReply> {
  return callWithHeaders(url, { host })
}

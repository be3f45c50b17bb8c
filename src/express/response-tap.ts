// Holding back what a view writes until it ends, so the whole response can be judged, stored and replayed.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'

/** What a handler wrote, held back from the client. */
export interface CapturedResponse {
  readonly status: number
  readonly statusMessage: string | undefined
  readonly headers: OutgoingHttpHeaders
  readonly body: Buffer
}

/** Why a response could not be captured whole. */
export type TapFailure = 'too-large' | 'closed'

type Callback = (error?: Error | null) => void

/** The response's own methods, as they were before the tap (for replaying onto it). */
export interface ResponseMethods {
  writeHead(this: ServerResponse, status: number, statusMessage?: string): ServerResponse
  write(this: ServerResponse, chunk: Buffer, callback?: Callback): boolean
  end(this: ServerResponse, chunk?: Buffer | Callback, callback?: Callback): ServerResponse
}

/** The methods `res` writes with now. */
export function methodsOf(res: ServerResponse): ResponseMethods {
  return {
    writeHead: res.writeHead as ResponseMethods['writeHead'],
    write: res.write as ResponseMethods['write'],
    end: res.end as ResponseMethods['end'],
  }
}

/** A response whose output is held back until it ends. */
export interface ResponseTap {
  /** Resolves when the handler ends the response; rejects with a {@link TapFailure} when it cannot be held whole. */
  readonly done: Promise<CapturedResponse>
  /** The methods to write to the client with. */
  readonly original: ResponseMethods
}

/**
 * Holds back everything a handler writes to `res` (writeHead, write, end, in any encoding, Buffers included)
 * until it ends the response, so the whole response can be judged, stored and replayed. Past `maxBodyBytes` the
 * held-back part is flushed and the rest streams straight through (`beforeStreaming` runs just before, to set
 * headers); the tap then rejects with `'too-large'`. A client that goes away first rejects it with `'closed'`.
 * The patched methods stay in place (a middleware further in may hold on to them) and forward once done.
 */
export function tapResponse(res: ServerResponse, maxBodyBytes: number, beforeStreaming: () => void): ResponseTap {
  const original = methodsOf(res)
  const flushHeaders = res.flushHeaders
  let holding = true
  const chunks: Buffer[] = []
  let size = 0
  let resolve: (captured: CapturedResponse) => void = () => {}
  let reject: (failure: TapFailure) => void = () => {}
  const done = new Promise<CapturedResponse>((ok, fail) => {
    resolve = ok
    reject = fail
  })
  // An unobserved failure must not become an unhandled rejection: the caller may only look at success.
  done.catch(() => {})

  /** Holds `chunk`, or starts streaming when it would pass the limit; false once streaming. */
  const hold = (chunk: Buffer): boolean => {
    if (size + chunk.length <= maxBodyBytes) {
      chunks.push(chunk)
      size += chunk.length
      return true
    }
    holding = false
    beforeStreaming()
    original.writeHead.call(res, res.statusCode)
    for (const held of chunks) original.write.call(res, held)
    chunks.length = 0
    reject('too-large')
    return false
  }

  res.writeHead = function fragcacheWriteHead(this: ServerResponse, status: number, ...rest: unknown[]) {
    if (!holding) return (original.writeHead as (...args: unknown[]) => ServerResponse).call(this, status, ...rest)
    res.statusCode = status
    if (typeof rest[0] === 'string') res.statusMessage = rest.shift() as string
    setHeaders(res, rest[0])
    return this
  } as ServerResponse['writeHead']

  res.write = function fragcacheWrite(this: ServerResponse, chunk: unknown, encoding?: unknown, callback?: unknown) {
    if (!holding) return (original.write as (...args: unknown[]) => boolean).call(this, chunk, encoding, callback)
    const cb = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined
    const data = toBuffer(chunk, encoding)
    if (hold(data)) {
      if (cb) process.nextTick(cb)
      return true
    }
    return original.write.call(this, data, cb)
  } as ServerResponse['write']

  res.end = function fragcacheEnd(this: ServerResponse, chunk?: unknown, encoding?: unknown, callback?: unknown) {
    if (!holding) return (original.end as (...args: unknown[]) => ServerResponse).call(this, chunk, encoding, callback)
    const cb = [chunk, encoding, callback].find((arg) => typeof arg === 'function') as Callback | undefined
    const data = typeof chunk === 'function' || chunk === undefined || chunk === null ? undefined : toBuffer(chunk, encoding)
    if (data !== undefined && !hold(data)) return original.end.call(this, data, cb)
    holding = false
    if (cb) res.once('finish', cb)
    resolve({ status: res.statusCode, statusMessage: res.statusMessage || undefined, headers: res.getHeaders(), body: Buffer.concat(chunks) })
    return this
  } as ServerResponse['end']

  res.flushHeaders = function fragcacheFlushHeaders(this: ServerResponse) {
    if (!holding) flushHeaders.call(this)
  }

  res.once('close', () => {
    if (holding) {
      holding = false
      reject('closed')
    }
  })
  return { done, original }
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
  if (chunk instanceof Uint8Array) return Buffer.from(chunk) // a copy: the caller may reuse its buffer
  throw new TypeError(`The "chunk" argument must be of type string or an instance of Buffer or Uint8Array; got ${typeof chunk}`)
}

function setHeaders(res: ServerResponse, headers: unknown): void {
  if (Array.isArray(headers)) {
    // Raw form: [name, value, name, value] or [[name, value], …].
    if (Array.isArray(headers[0])) for (const [name, value] of headers as [string, string][]) res.setHeader(name, value)
    else for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(String(headers[i]), headers[i + 1] as string)
  } else if (typeof headers === 'object' && headers !== null) {
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value as string)
  }
}

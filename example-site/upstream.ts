import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/** What the slow upstream answers: a made-up forecast, stamped with when it was made. */
export interface Forecast {
  city: string
  summary: string
  temperatureC: number
  generatedAt: string
}

/** A running slow upstream. */
export interface Upstream {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** How many requests it has answered (each one cost `delayMs`). */
  readonly calls: () => number
  close(): Promise<void>
}

const SUMMARIES = ['Sunny', 'Light rain', 'Overcast', 'Windy', 'Snow showers', 'Fog until noon']

/**
 * Starts the stand-in for the seeds' slow third-party API (httpbin's `/delay/2`) on 127.0.0.1 and a free port:
 * `GET /forecast?city=Paris` answers JSON after `delayMs` (default 2000 ms).
 *
 * @example
 * ```ts
 * const upstream = await startUpstream({ delayMs: 50 })
 * await fetchForecast(upstream.url, 'Paris') // { city: 'Paris', summary: …, generatedAt: … } after 50 ms
 * await upstream.close()
 * ```
 */
export async function startUpstream({ delayMs = 2000, port = 0 }: { delayMs?: number; port?: number } = {}): Promise<Upstream> {
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new Error(`upstream delayMs must be a number of at least 0; got ${delayMs}`)
  let calls = 0
  const timers = new Set<NodeJS.Timeout>()
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream')
    if (url.pathname !== '/forecast') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    calls += 1
    const city = url.searchParams.get('city') ?? 'Paris'
    const timer = setTimeout(() => {
      timers.delete(timer)
      const seed = [...city].reduce((n, ch) => n + ch.charCodeAt(0), 0) + new Date().getUTCHours()
      const forecast: Forecast = {
        city,
        summary: SUMMARIES[seed % SUMMARIES.length] as string,
        temperatureC: (seed % 25) - 3,
        generatedAt: new Date().toISOString(),
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(forecast))
    }, delayMs)
    timers.add(timer)
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const { port: bound } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${bound}`,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer)
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * Asks the upstream for a city's forecast (what the widget shows). Throws with the status on a non-200 answer.
 * @example
 * ```ts
 * const forecast = await fetchForecast('http://127.0.0.1:4000', 'Lyon')
 * ```
 */
export async function fetchForecast(upstreamUrl: string, city: string): Promise<Forecast> {
  const response = await fetch(`${upstreamUrl}/forecast?city=${encodeURIComponent(city)}`)
  if (!response.ok) throw new Error(`upstream answered ${response.status} for the forecast of ${city}`)
  return (await response.json()) as Forecast
}

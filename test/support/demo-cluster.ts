/**
 * `example-site/cluster.ts` run as `npm run start:cluster` runs it, for tests and benchmarks: its own process group, a
 * private Redis, a temporary SQLite file; requests on connections of their own (so the round robin picks the worker),
 * to any worker or to one given worker; and, with the bench endpoint on (FRAGCACHE_BENCH=1), every worker's counters.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IncomingHttpHeaders } from 'node:http'
import type { BenchCounters } from '../../example-site/bench-counters.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Options of {@link DemoCluster.start}. */
export interface DemoClusterOptions {
  readonly redisUrl: string
  readonly workers: number
  readonly upstreamDelayMs: number
  /** Extra environment (a benchmark's CACHE_LOCK, CACHE_GRACE, FRAGCACHE_BENCH). */
  readonly env?: Readonly<Record<string, string>>
}

/** One answer, on a connection of its own. */
export interface Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
  /** The pid in `X-Worker`: the worker that answered. */
  readonly worker: number
}

/**
 * A running demo cluster.
 * @example
 * ```ts
 * const demo = await DemoCluster.start({ redisUrl: redis.url, workers: 4, upstreamDelayMs: 20, env: {} })
 * const before = await demo.counters()
 * await demo.stop()
 * ```
 */
export class DemoCluster {
  readonly base: string
  readonly workers: number
  readonly #primary: ChildProcess
  readonly #dir: string
  readonly #output: { stdout: string; stderr: string }

  private constructor(base: string, workers: number, primary: ChildProcess, dir: string, output: { stdout: string; stderr: string }) {
    this.base = base
    this.workers = workers
    this.#primary = primary
    this.#dir = dir
    this.#output = output
  }

  static async start(options: DemoClusterOptions): Promise<DemoCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'fragcache-demo-'))
    const output = { stdout: '', stderr: '' }
    const primary = spawn(process.execPath, ['--import', 'tsx', 'example-site/cluster.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...options.env,
        REDIS_URL: options.redisUrl,
        PORT: '0',
        HOST: '127.0.0.1',
        WORKERS: String(options.workers),
        DB_FILE: join(dir, 'site.db'),
        UPSTREAM_URL: '',
        UPSTREAM_DELAY_MS: String(options.upstreamDelayMs),
        // Round robin is Node's default outside Windows; said here so that an inherited setting cannot change it.
        NODE_CLUSTER_SCHED_POLICY: 'rr',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: if it must be killed, its workers go with it.
      detached: true,
    })
    primary.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk))
    primary.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk))
    const killOnExit = () => killGroup(primary)
    process.once('exit', killOnExit)
    primary.once('exit', () => process.off('exit', killOnExit))

    const listening = new RegExp(`${options.workers} workers on (http://127\\.0\\.0\\.1:\\d+)/`)
    const deadline = Date.now() + 90_000
    let match: RegExpExecArray | null = null
    while ((match = listening.exec(output.stdout)) === null) {
      if (primary.exitCode !== null || Date.now() > deadline) {
        killGroup(primary)
        rmSync(dir, { recursive: true, force: true })
        throw new Error(`example-site/cluster.ts did not start:\nstdout:\n${output.stdout}\nstderr:\n${output.stderr}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return new DemoCluster(match[1] as string, options.workers, primary, dir, output)
  }

  /** What the cluster wrote on stderr so far (outage warnings, errors). */
  get stderr(): string {
    return this.#output.stderr
  }

  /** The primary's pid, and its exit code once it stopped. */
  get primary(): { pid: number | undefined; exitCode: number | null } {
    return { pid: this.#primary.pid, exitCode: this.#primary.exitCode }
  }

  /** One GET on a connection of its own, so that the cluster's round robin picks the worker. */
  get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return this.#send(path, undefined, headers)
  }

  /** One form POST on a connection of its own. */
  post(path: string, form: Record<string, string>): Promise<Answer> {
    return this.#send(path, new URLSearchParams(form).toString())
  }

  /** A GET answered by `worker`: asks again (a new connection each time) until that worker is the one. */
  async getOn(worker: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
    for (let attempt = 0; attempt < this.workers * 25; attempt++) {
      const answer = await this.get(path, headers)
      if (answer.worker === worker) return answer
    }
    throw new Error(`worker ${worker} did not answer GET ${path} in ${this.workers * 25} requests`)
  }

  /** The pids of the workers, found by asking until each has answered. */
  async workerPids(): Promise<number[]> {
    const seen = new Set<number>()
    for (let attempt = 0; attempt < this.workers * 25 && seen.size < this.workers; attempt++) seen.add((await this.get('/nunjucks/')).worker)
    return [...seen].sort((a, b) => a - b)
  }

  #send(path: string, form: string | undefined, extra: Record<string, string> = {}): Promise<Answer> {
    const headers: Record<string, string | number> = { ...extra, connection: 'close' }
    if (form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      headers['content-length'] = Buffer.byteLength(form)
    }
    return new Promise((resolve, reject) => {
      const req = request(this.base + path, { method: form === undefined ? 'GET' : 'POST', agent: false, headers }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('error', reject)
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, worker: Number(res.headers['x-worker']) }))
      })
      req.on('error', reject)
      req.setTimeout(30_000, () => req.destroy(new Error(`${path}: no answer within 30 s`)))
      req.end(form)
    })
  }

  /** Every worker's counters: asks on new connections until each worker has answered once. */
  async counters(): Promise<BenchCounters[]> {
    const seen = new Map<number, BenchCounters>()
    for (let attempt = 0; attempt < this.workers * 20 && seen.size < this.workers; attempt++) {
      const answer = await this.get('/_bench/counters')
      if (answer.status !== 200) throw new Error(`/_bench/counters answered ${answer.status}: ${answer.body}`)
      const counters = JSON.parse(answer.body) as BenchCounters
      seen.set(counters.pid, counters)
    }
    if (seen.size < this.workers) throw new Error(`only ${seen.size} of ${this.workers} workers answered /_bench/counters`)
    return [...seen.values()]
  }

  /** GETs `path` on enough new connections for every worker to have answered it `times` times (about). */
  async warm(path: string, times = 2): Promise<void> {
    for (let i = 0; i < this.workers * times; i++) {
      const answer = await this.get(path)
      if (answer.status !== 200) throw new Error(`warming ${path}: ${answer.status} ${answer.body.slice(0, 500)}`)
    }
  }

  /** SIGTERM to the primary (it stops its workers), SIGKILL to the group after 10 s; removes the SQLite file. */
  async stop(): Promise<void> {
    const primary = this.#primary
    if (primary.exitCode === null && primary.signalCode === null) {
      const exited = new Promise<void>((resolve) => primary.once('exit', () => resolve()))
      primary.kill('SIGTERM')
      const timer = setTimeout(() => killGroup(primary), 10_000)
      await exited
      clearTimeout(timer)
    }
    // Workers that outlived their primary (it gave up waiting on them) go with the group.
    killGroup(primary, true)
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

function killGroup(child: ChildProcess, evenIfExited = false): void {
  if (child.pid === undefined) return
  if (!evenIfExited && (child.exitCode !== null || child.signalCode !== null)) return
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

const INSTALL_HINT =
  'redis-server is not on the PATH. Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) and run the tests again.'

const running = new Set<ChildProcess>()
// A test that fails before its cleanup must not leave servers behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * Redis options for tests that are not about timeouts: the machine running them may be busy, and a 50 ms bound
 * would turn a slow answer into a miss (or an AtomicityError) the test did not ask for. Outage tests set their own.
 */
export const patientRedis = { redisTimeoutMs: 1000, redisBreaker: { threshold: 5, cooldownMs: 100 } } as const

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * A redis-server of the test's own, on a free loopback port, never the shared one on 6379: the test can stop it,
 * restart it on the same port, or freeze it (SIGSTOP) to play a slow Redis. Nothing is saved to disk.
 */
export class RedisServer {
  readonly port: number
  #process: ChildProcess | undefined

  private constructor(port: number) {
    this.port = port
  }

  /** Starts a server on a free port and waits until it answers PING. */
  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort())
    await server.#spawn()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** A plain client to this server, for the test to look at what is stored (close it with `.disconnect()`). */
  client(): Redis {
    return new Redis(this.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 })
  }

  /** Stops the server (its data is gone: nothing is saved). */
  async stop(): Promise<void> {
    const child = this.#process
    if (!child || child.exitCode !== null) return
    this.resume()
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await exited
    this.#process = undefined
  }

  /** Starts it again on the same port. */
  async restart(): Promise<void> {
    await this.stop()
    await this.#spawn()
  }

  /** Freezes the process: connections stay open but nothing answers (a slow Redis). */
  pause(): void {
    this.#process?.kill('SIGSTOP')
  }

  resume(): void {
    this.#process?.kill('SIGCONT')
  }

  async #spawn(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
      { stdio: 'ignore' },
    )
    this.#process = child
    running.add(child)
    child.once('exit', () => running.delete(child))
    await new Promise<void>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'ENOENT' ? new Error(INSTALL_HINT) : error),
      )
      child.once('spawn', () => resolve())
    })
    const deadline = Date.now() + 10_000
    for (;;) {
      const probe = new Redis(this.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
      probe.on('error', () => {})
      try {
        await probe.connect()
        if ((await probe.ping()) === 'PONG') return
      } catch {
        if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode} on port ${this.port}`)
        if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${this.port} within 10 s`)
        await new Promise((r) => setTimeout(r, 20))
      } finally {
        probe.disconnect()
      }
    }
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes (for what crosses processes; never for TTLs). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Cluster, type ClusterOptions, Redis } from 'ioredis'
import { type NodeView, SLOT_COUNT, ownerOfSlot, parseClusterNodes, parseInfo } from './cluster-slots.ts'
import { freePort } from './redis-server.ts'

const INSTALL_HINT =
  'redis-server and redis-cli must be on the PATH to start a Redis Cluster. Install them (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) and run the tests again.'

/** A node's cluster bus listens on its port + 10000 (Redis's fixed offset unless cluster-port is set). */
const BUS_PORT_OFFSET = 10_000
const HOST = '127.0.0.1'
const POLL_MS = 20

const running = new Set<ChildProcess>()
const tempDirs = new Set<string>()

function killEverything(): void {
  for (const child of running) child.kill('SIGKILL')
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
}

// A test that fails before its cleanup must not leave nodes (or their files) behind.
process.on('exit', killEverything)
// Nor a run stopped by Ctrl-C or a CI timeout, which end the process without 'exit'. The signal is raised again
// afterwards, so the process still ends as it would have (unless someone else listens for it too).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killEverything()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  })
}

/** One node of a {@link RedisCluster}. `id` is its cluster node id (stable across restarts: it is in nodes.conf). */
export interface ClusterNode {
  readonly host: string
  readonly port: number
  readonly url: string
  readonly id: string
}

/** Options of {@link RedisCluster.start}. */
export interface RedisClusterOptions {
  /** Masters sharing the 16384 slots (default 3, at least 3: Redis will not create a smaller cluster). */
  masters?: number
  /** Replicas of each master (default 0). A failover needs 1. */
  replicasPerMaster?: 0 | 1
  /**
   * How long a node may be silent before it is flagged as failing (default 1000 ms). It bounds failover time:
   * roughly this, plus the replica's election delay (0.5 to 1 s).
   */
  nodeTimeoutMs?: number
}

/** What {@link RedisCluster.waitForFailover} found. */
export interface Failover {
  /** From the kill (or pause) of the old master, or from the call when the harness did not stop it, to the cluster answering every slot. */
  readonly ms: number
  /** The replica promoted in its place. */
  readonly master: ClusterNode
}

interface ManagedNode {
  readonly port: number
  id: string
  process: ChildProcess | undefined
  paused: boolean
  /** performance.now() when the harness killed or paused it. */
  downSince: number | undefined
  /** The slots it served when it was killed or paused, if it was a master. */
  slotsWhenDown: readonly (readonly [number, number])[]
}

/**
 * A Redis Cluster of the test's own: `masters` masters (and their replicas) on free loopback ports, never the
 * shared Redis on 6379. The test can kill a node (SIGKILL), freeze it (SIGSTOP) and wait for the failover.
 * Nothing is saved but each node's cluster config, in a temporary directory removed by {@link stop}.
 *
 * @example
 * ```ts
 * const cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 1 })
 * const master = await cluster.masterForKey('article:42')
 * await cluster.kill(master)
 * const { ms } = await cluster.waitForFailover(master)
 * await cluster.stop()
 * ```
 */
export class RedisCluster {
  readonly masters: number
  readonly replicasPerMaster: 0 | 1
  readonly nodeTimeoutMs: number
  readonly #dir: string
  readonly #managed: ManagedNode[]
  #stopped = false

  private constructor(options: Required<RedisClusterOptions>, dir: string, ports: readonly number[]) {
    this.masters = options.masters
    this.replicasPerMaster = options.replicasPerMaster
    this.nodeTimeoutMs = options.nodeTimeoutMs
    this.#dir = dir
    this.#managed = ports.map((port) => ({ port, id: '', process: undefined, paused: false, downSince: undefined, slotsWhenDown: [] }))
  }

  /**
   * Starts the nodes, creates the cluster with `redis-cli --cluster create`, and waits until every node says
   * `cluster_state:ok` with all 16384 slots served and every replica in sync with its master (2 to 3 s).
   * @throws Error saying how to install Redis when redis-server or redis-cli is missing.
   */
  static async start({ masters = 3, replicasPerMaster = 0, nodeTimeoutMs = 1000 }: RedisClusterOptions = {}): Promise<RedisCluster> {
    if (!Number.isInteger(masters) || masters < 3) throw new RangeError(`a Redis Cluster needs at least 3 masters; got ${masters}`)
    const size = masters * (1 + replicasPerMaster)
    // A port can be taken between the check and the node's bind (by another test's connection): start afresh then.
    for (let attempt = 1; ; attempt++) {
      const dir = mkdtempSync(join(tmpdir(), 'fragcache-cluster-'))
      tempDirs.add(dir)
      const cluster = new RedisCluster({ masters, replicasPerMaster, nodeTimeoutMs }, dir, await freeNodePorts(size))
      try {
        await cluster.#create()
        return cluster
      } catch (error) {
        await cluster.stop()
        if (attempt >= 3 || !(error instanceof NodeExitedError)) throw error
      }
    }
  }

  /** Every node, masters and replicas, as started (roles change on failover: see {@link currentMasters}). */
  get nodes(): readonly ClusterNode[] {
    return this.#managed.map((m) => this.#public(m))
  }

  /** Every node's address, for `new Cluster(seeds)`: any live one is enough for ioredis to find the rest. */
  get seeds(): { host: string; port: number }[] {
    return this.#managed.map(({ port }) => ({ host: HOST, port }))
  }

  /** Every node's `redis://` URL. */
  get seedUrls(): string[] {
    return this.#managed.map(({ port }) => `redis://${HOST}:${port}`)
  }

  /**
   * An ioredis `Cluster` on this cluster for the test to look at what is stored (close it with `.disconnect()`).
   * It refreshes its slot map every second and pipelines on its own, so a test can fire one command per slot.
   * @example
   * ```ts
   * const redis = cluster.client()
   * await redis.set('k', 'v')
   * redis.disconnect()
   * ```
   */
  client(options: ClusterOptions = {}): Cluster {
    const client = new Cluster(this.seeds, {
      slotsRefreshInterval: 1000,
      enableAutoPipelining: true,
      ...options,
      redisOptions: { connectTimeout: 1000, ...options.redisOptions },
    })
    // A killed node makes ioredis emit errors the test sees anyway, as failed commands.
    client.on('error', () => {})
    return client
  }

  /** A plain connection to one node (CLUSTER and INFO commands, or what this node holds). Close it with `.disconnect()`. */
  nodeClient(node: Pick<ClusterNode, 'port'>): Redis {
    const client = new Redis(node.port, HOST, { maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: () => null })
    client.on('error', () => {})
    return client
  }

  /** The slot map as a live node sees it now (`CLUSTER NODES`). */
  async topology(): Promise<NodeView[]> {
    let lastError: unknown
    for (const managed of this.#live()) {
      try {
        return parseClusterNodes(await ask(managed.port, 'CLUSTER', 'NODES'))
      } catch (error) {
        lastError = error
      }
    }
    throw new Error(`no live node answered CLUSTER NODES: ${String(lastError)}`)
  }

  /** The nodes serving slots now, as a live node sees it. */
  async currentMasters(): Promise<ClusterNode[]> {
    const views = await this.topology()
    return views.filter((v) => v.role === 'master' && v.slots.length > 0 && !v.failing).map((v) => this.#byId(v.id))
  }

  /** The node serving `slot` now, as a live node sees it. */
  async masterForSlot(slot: number): Promise<ClusterNode> {
    const owner = ownerOfSlot(await this.topology(), slot)
    if (!owner) throw new Error(`no node serves slot ${slot}`)
    return this.#byId(owner.id)
  }

  /**
   * The node serving `key` now. The slot is Redis's own answer (`CLUSTER KEYSLOT`), which for a few odd keys is not
   * the slot ioredis computes (see {@link slotOf}).
   * @example
   * ```ts
   * const master = await cluster.masterForKey('fragcache:1:c:top')
   * ```
   */
  async masterForKey(key: string): Promise<ClusterNode> {
    return this.masterForSlot(await this.keySlot(key))
  }

  /** The slot Redis puts `key` in (`CLUSTER KEYSLOT` on a live node). */
  async keySlot(key: string): Promise<number> {
    const [managed] = this.#live()
    if (!managed) throw new Error('no live node to ask CLUSTER KEYSLOT')
    return Number(await ask(managed.port, 'CLUSTER', 'KEYSLOT', key))
  }

  /** The replicas of `master` now, as a live node sees it. */
  async replicasOf(master: Pick<ClusterNode, 'id'>): Promise<ClusterNode[]> {
    const views = await this.topology()
    return views.filter((v) => v.masterId === master.id).map((v) => this.#byId(v.id))
  }

  /** SIGKILLs a node and waits for the process to be gone. Its connections drop at once. */
  async kill(node: Pick<ClusterNode, 'port'>): Promise<void> {
    const managed = this.#managedNode(node)
    if (!isRunning(managed.process)) return
    await this.#markDown(managed)
    await terminate(managed)
  }

  /** Freezes a node (SIGSTOP): its connections stay open but nothing answers, as a node stuck in a long fork or swap. */
  async pause(node: Pick<ClusterNode, 'port'>): Promise<void> {
    const managed = this.#managedNode(node)
    if (!managed.process || managed.paused) return
    await this.#markDown(managed)
    managed.process.kill('SIGSTOP')
    managed.paused = true
  }

  /** Lets a paused node run again (SIGCONT). A master that was failed over comes back as a replica. */
  resume(node: Pick<ClusterNode, 'port'>): void {
    const managed = this.#managedNode(node)
    if (!managed.paused) return
    managed.process?.kill('SIGCONT')
    managed.paused = false
    managed.downSince = undefined
  }

  /** Starts a killed node again on its port with its nodes.conf: it rejoins (an old master as a replica). */
  async restart(node: Pick<ClusterNode, 'port'>): Promise<void> {
    const managed = this.#managedNode(node)
    await this.kill(managed)
    await this.#spawn(managed)
    managed.downSince = undefined
  }

  /**
   * Waits until a replica has taken over every slot `oldMaster` served and every live node says `cluster_state:ok`
   * with all slots served.
   * @throws Error naming what is still wrong after `timeoutMs`.
   * @example
   * ```ts
   * await cluster.kill(master)
   * const { ms, master: promoted } = await cluster.waitForFailover(master)
   * ```
   */
  async waitForFailover(oldMaster: Pick<ClusterNode, 'port'>, timeoutMs = 30_000): Promise<Failover> {
    if (this.replicasPerMaster === 0) throw new Error('no failover without replicas: start the cluster with replicasPerMaster: 1')
    const old = this.#managedNode(oldMaster)
    const from = old.downSince ?? performance.now()
    const [firstRange] = old.slotsWhenDown
    if (!firstRange) throw new Error(`node ${old.port} served no slots when it went down: there is nothing to fail over`)
    const oldId = old.id
    await this.#until(timeoutMs, `a replica of ${old.port} to take over its slots`, async () => {
      const problem = await this.#healthProblem(false)
      if (problem) return problem
      for (const managed of this.#live()) {
        const views = parseClusterNodes(await ask(managed.port, 'CLUSTER', 'NODES'))
        if (views.some((v) => v.id === oldId && v.slots.length > 0)) return `node ${managed.port} still has ${old.port} serving slots`
      }
      return undefined
    })
    return { ms: performance.now() - from, master: await this.masterForSlot(firstRange[0]) }
  }

  /**
   * Waits until every live master's replicas have acknowledged all it has written, so that a test can kill it
   * knowing no write is lost to asynchronous replication.
   */
  async waitForReplication(timeoutMs = 10_000): Promise<void> {
    await this.#until(timeoutMs, 'the replicas to catch up', async () => {
      for (const managed of this.#live()) {
        const info = parseInfo(await ask(managed.port, 'INFO', 'replication'))
        if (info.get('role') !== 'master') continue
        const offset = info.get('master_repl_offset')
        for (let n = 0; info.has(`slave${n}`); n++) {
          const replica = info.get(`slave${n}`) ?? ''
          if (!replica.split(',').includes(`offset=${offset}`)) return `master ${managed.port} at ${offset}, replica ${replica}`
        }
      }
      return undefined
    })
  }

  /**
   * Waits until every live node says `cluster_state:ok` with all 16384 slots served and flags no live node as
   * failing (after a restart or a resume).
   */
  async waitUntilHealthy(timeoutMs = 30_000): Promise<void> {
    await this.#until(timeoutMs, 'the cluster to be healthy', () => this.#healthProblem(false))
  }

  /** Kills every node and removes the temporary directory. */
  async stop(): Promise<void> {
    this.#stopped = true
    await Promise.all(this.#managed.map(terminate))
    rmSync(this.#dir, { recursive: true, force: true })
    tempDirs.delete(this.#dir)
  }

  /** The temporary directory holding every node's nodes.conf and log. */
  get directory(): string {
    return this.#dir
  }

  /** The process ids of the nodes still running (for a test that checks `stop()` leaves nothing). */
  get pids(): number[] {
    return this.#managed.flatMap((m) => (m.process?.pid === undefined ? [] : [m.process.pid]))
  }

  async #create(): Promise<void> {
    await Promise.all(this.#managed.map((managed) => this.#spawn(managed)))
    await redisCli([
      '--cluster',
      'create',
      ...this.#managed.map(({ port }) => `${HOST}:${port}`),
      '--cluster-replicas',
      String(this.replicasPerMaster),
      '--cluster-yes',
    ])
    await this.#until(20_000, 'the new cluster to be ready', () => this.#healthProblem(true))
    for (const managed of this.#managed) managed.id = await ask(managed.port, 'CLUSTER', 'MYID')
  }

  async #spawn(managed: ManagedNode): Promise<void> {
    if (this.#stopped) throw new Error('the cluster was stopped')
    const { port } = managed
    const child = spawn(
      'redis-server',
      [
        '--port', String(port),
        '--bind', HOST,
        '--protected-mode', 'yes',
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(this.#dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', String(this.nodeTimeoutMs),
        '--save', '',
        '--appendonly', 'no',
        '--dir', this.#dir,
        '--dbfilename', `dump-${port}.rdb`,
        '--logfile', this.#logFile(port),
        // Redis 7.0 waits 5 s by default before a full sync, for more replicas to share it: here that is 5 s of start-up.
        '--repl-diskless-sync-delay', '0',
      ],
      { stdio: 'ignore' },
    )
    managed.process = child
    running.add(child)
    child.once('exit', () => running.delete(child))
    await new Promise<void>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? new Error(INSTALL_HINT) : error))
      child.once('spawn', () => resolve())
    })
    await this.#until(10_000, `redis-server on port ${port} to answer`, async () => {
      if (child.exitCode !== null) throw new NodeExitedError(port, child.exitCode, this.#logTail(port))
      return (await ask(port, 'PING')) === 'PONG' ? undefined : 'no PONG'
    })
  }

  /** What keeps the cluster from being healthy, as the live nodes see it; undefined when nothing does. */
  async #healthProblem(starting: boolean): Promise<string | undefined> {
    const live = this.#live()
    const livePorts = new Set(live.map((m) => m.port))
    for (const managed of live) {
      const info = parseInfo(await ask(managed.port, 'CLUSTER', 'INFO'))
      if (info.get('cluster_state') !== 'ok') return `node ${managed.port}: cluster_state:${info.get('cluster_state')}`
      if (info.get('cluster_slots_ok') !== String(SLOT_COUNT)) return `node ${managed.port}: cluster_slots_ok:${info.get('cluster_slots_ok')}`
      const views = parseClusterNodes(await ask(managed.port, 'CLUSTER', 'NODES'))
      const flagged = views.find((v) => v.failing && livePorts.has(v.port))
      if (flagged) return `node ${managed.port} still flags ${flagged.port} as failing`
      // In this harness every master serves slots: one without is an old master not yet turned into a replica.
      const idle = views.find((v) => v.role === 'master' && v.slots.length === 0 && livePorts.has(v.port))
      if (idle) return `node ${managed.port} sees ${idle.port} as a master without slots`
      if (!starting) continue
      if (info.get('cluster_known_nodes') !== String(this.#managed.length)) {
        return `node ${managed.port}: cluster_known_nodes:${info.get('cluster_known_nodes')}`
      }
      const serving = views.filter((v) => v.role === 'master' && v.slots.length > 0)
      if (serving.length !== this.masters) return `node ${managed.port} sees ${serving.length} masters serving slots`
      for (const master of serving) {
        const replicas = views.filter((v) => v.masterId === master.id).length
        if (replicas !== this.replicasPerMaster) return `node ${managed.port} sees ${replicas} replicas of ${master.port}`
      }
      const me = views.find((v) => v.myself)
      if (me?.role === 'replica') {
        const link = parseInfo(await ask(managed.port, 'INFO', 'replication')).get('master_link_status')
        if (link !== 'up') return `replica ${managed.port}: master_link_status:${link}`
      }
    }
    return undefined
  }

  /** Polls `problem` until it returns undefined; an error thrown by a node counts as a problem, not a failure. */
  async #until(timeoutMs: number, what: string, problem: () => Promise<string | undefined>): Promise<void> {
    const deadline = performance.now() + timeoutMs
    let last: string | undefined = 'not checked yet'
    for (;;) {
      try {
        last = await problem()
        if (last === undefined) return
      } catch (error) {
        if (error instanceof NodeExitedError) throw error
        last = error instanceof Error ? error.message : String(error)
      }
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last}`)
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
  }

  /** Remembers when `managed` went down and which slots it served then, for {@link waitForFailover}. */
  async #markDown(managed: ManagedNode): Promise<void> {
    const me = (await this.topology()).find((v) => v.port === managed.port)
    managed.slotsWhenDown = me?.role === 'master' ? me.slots : []
    managed.downSince = performance.now()
  }

  #live(): ManagedNode[] {
    return this.#managed.filter((m) => isRunning(m.process) && !m.paused)
  }

  #managedNode(node: Pick<ClusterNode, 'port'>): ManagedNode {
    const managed = this.#managed.find((m) => m.port === node.port)
    if (!managed) throw new Error(`no node on port ${node.port} in this cluster`)
    return managed
  }

  #byId(id: string): ClusterNode {
    const managed = this.#managed.find((m) => m.id === id)
    if (!managed) throw new Error(`no node with id ${id} in this cluster`)
    return this.#public(managed)
  }

  #public({ port, id }: ManagedNode): ClusterNode {
    return { host: HOST, port, url: `redis://${HOST}:${port}`, id }
  }

  #logFile(port: number): string {
    return join(this.#dir, `redis-${port}.log`)
  }

  #logTail(port: number): string {
    try {
      return readFileSync(this.#logFile(port), 'utf8').trim().split('\n').slice(-5).join('\n')
    } catch {
      return '(no log)'
    }
  }
}

/** A node that exited while starting, most likely because its port (or its bus port) was taken meanwhile. */
class NodeExitedError extends Error {
  constructor(port: number, code: number, logTail: string) {
    super(`redis-server on port ${port} exited with code ${code} while starting:\n${logTail}`)
    this.name = 'NodeExitedError'
  }
}

function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null
}

/** SIGKILLs a node (paused or not) and waits for its process to be gone. */
async function terminate(managed: ManagedNode): Promise<void> {
  const child = managed.process
  managed.process = undefined
  managed.paused = false
  if (!isRunning(child)) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGKILL')
  await exited
}

/** `count` distinct free ports whose cluster bus port (+10000) is free too. */
async function freeNodePorts(count: number): Promise<number[]> {
  const ports: number[] = []
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 200) throw new Error('could not find free loopback ports for the cluster nodes')
    const port = await freePort()
    if (port + BUS_PORT_OFFSET > 65_535 || ports.includes(port) || ports.includes(port + BUS_PORT_OFFSET)) continue
    if (ports.some((p) => p + BUS_PORT_OFFSET === port)) continue
    if (await isFree(port + BUS_PORT_OFFSET)) ports.push(port)
  }
  return ports
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen(port, HOST, () => server.close(() => resolve(true)))
  })
}

/** One command to one node on a connection of its own, bounded in time: a frozen node must not hang the harness. */
async function ask(port: number, ...args: string[]): Promise<string> {
  const redis = new Redis(port, HOST, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
    commandTimeout: 1000,
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const [command = '', ...rest] = args
    return String(await redis.call(command, ...rest))
  } finally {
    redis.disconnect()
  }
}

function redisCli(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: 20_000 }, (error, stdout, stderr) => {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') reject(new Error(INSTALL_HINT))
      else if (error) reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

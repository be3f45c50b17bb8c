/**
 * Counting what a cache asks of Redis, two ways that check each other:
 * - on the client: every command the cache's ioredis client sends, and the round trips they cost (a round trip
 *   starts when a command is sent while none is waiting for its reply; commands pipelined together share one);
 * - on the server: `INFO commandstats` deltas (commands run inside Lua scripts are counted there too).
 */
import { Redis } from 'ioredis'

const BUS_COMMANDS = new Set(['publish', 'spublish'])

/** What the client sent. */
export interface ClientCounts {
  commands: number
  roundTrips: number
  byName: Map<string, number>
}

/** An ioredis client configured as fragcache configures its own, that counts what it sends. */
export interface CountingClient {
  readonly client: Redis
  /** The counts since the last call, and reset. */
  take(): ClientCounts
}

/**
 * @example
 * ```ts
 * const counting = countingClient(port)
 * const cache = createCache({ redis: counting.client })
 * await cache.get('k'); counting.take().roundTrips // 1
 * ```
 */
export function countingClient(port: number, host = '127.0.0.1'): CountingClient {
  // The options TieredCache uses for a client it creates from a URL.
  const client = new Redis(port, host, { enableOfflineQueue: false, enableAutoPipelining: true, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  let counts: ClientCounts = { commands: 0, roundTrips: 0, byName: new Map() }
  let waiting = 0
  const send = client.sendCommand.bind(client)
  // Every command goes through the instance's sendCommand, auto-pipelined ones included (Pipeline.exec calls it).
  client.sendCommand = ((command: { name: string; promise: Promise<unknown> }, ...rest: unknown[]) => {
    counts.commands += 1
    counts.byName.set(command.name, (counts.byName.get(command.name) ?? 0) + 1)
    // The bus's heartbeat (a PUBLISH every busHeartbeatMs) is nobody's read: listed by name, never a round trip.
    if (BUS_COMMANDS.has(command.name)) return (send as (...args: unknown[]) => unknown)(command, ...rest)
    if (waiting === 0) counts.roundTrips += 1
    waiting += 1
    const settled = () => {
      waiting -= 1
    }
    command.promise.then(settled, settled)
    return (send as (...args: unknown[]) => unknown)(command, ...rest)
  }) as typeof client.sendCommand
  return {
    client,
    take() {
      const taken = counts
      counts = { commands: 0, roundTrips: 0, byName: new Map() }
      return taken
    },
  }
}

/** Calls per command name, as the server counts them. */
export type CommandStats = Map<string, number>

/**
 * The server's per-command call counts (`INFO commandstats`).
 * @example
 * ```ts
 * const before = await commandStats(observer); …; const delta = commandDelta(before, await commandStats(observer))
 * ```
 */
export async function commandStats(observer: Redis): Promise<CommandStats> {
  const text = await observer.info('commandstats')
  const stats: CommandStats = new Map()
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats.set(match[1] as string, Number(match[2]))
  return stats
}

/** What ran between two snapshots, without the observer's own INFO calls. */
export function commandDelta(before: CommandStats, after: CommandStats): CommandStats {
  const delta: CommandStats = new Map()
  for (const [name, calls] of after) {
    const added = calls - (before.get(name) ?? 0)
    if (name !== 'info' && added > 0) delta.set(name, added)
  }
  return delta
}

/** `get 5, evalsha 1` style, per read when `per` is given. */
export function describeCounts(counts: ReadonlyMap<string, number>, per = 1): string {
  if (counts.size === 0) return 'none'
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([name, calls]) => `${name} ${Number.isInteger(calls / per) ? calls / per : (calls / per).toFixed(2)}`)
    .join(', ')
}

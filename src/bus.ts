/**
 * The invalidation bus: what one process tells the others (drop these keys, these tags' versions, or everything), with
 * a sequence number per publisher and a heartbeat, so that a lost message (a gap) or a silent bus is noticed; and
 * acknowledgements, so that an invalidation resolves only once every live process has applied it (read-your-writes).
 */
import { randomUUID } from 'node:crypto'
import { BusTransport } from './bus-transport.ts'
import { NotReadyError } from './errors.ts'
import type { RedisConnection } from './tiers/redis-client.ts'

/** What one process tells the others: drop these keys, drop these tags' versions, or drop everything. */
export type BusMessage = { kind: 'keys'; keys: string[] } | { kind: 'tags'; tags: string[] } | { kind: 'clear' }

/** Where the bus reports to its cache. */
export interface BusHandlers {
  /** A message from another process. */
  message(message: BusMessage): void
  /**
   * Messages may have been missed: the bus was down and is listening again, or a gap showed that one was lost. Nothing
   * this process holds can be trusted any more.
   */
  missed(): void
}

/** Options of {@link InvalidationBus}. */
export interface BusOptions {
  /** Every process says it is alive this often (ms); a bus that hears nothing of its own for 3 beats is down. */
  heartbeatMs: number
  /** An invalidation waits at most this long (ms) for the other processes to acknowledge it; 0: it does not wait. */
  ackTimeoutMs: number
  /** A monotonic clock. */
  perf: { now(): number }
}

/** What the bus counts, for `stats()`. */
export interface BusCounts {
  /** Messages from other processes found missing (gaps in their sequence). */
  gaps: number
  /** Invalidations a live process did not acknowledge in time. */
  unacknowledged: number
  /** Processes heard from recently. */
  peers: number
}

const PROTOCOL = 'fcb1'
const KINDS = { keys: 'k', tags: 't', clear: 'c' } as const
/** The kind letter in upper case: the publisher waits for acknowledgements. */
const ACKED = (kind: string): string => kind.toUpperCase()
const BEAT = 'b'
const ACK = 'a'
/** Beats without hearing its own before a bus counts as down. */
const SILENT_BEATS = 3

interface Peer {
  lastSeq: number
  lastHeard: number
}

interface AwaitingAcks {
  readonly from: Set<string>
  readonly done: () => void
}

/**
 * Cross-process invalidation: each process keeps an L1 and drops from it what another process changed. A process
 * ignores its own messages (it has applied its change already) but listens for them: hearing its own beats is how it
 * knows its subscription works.
 *
 * @example
 * ```ts
 * const bus = new InvalidationBus(connection, 'fragcache:site', { heartbeatMs: 500, ackTimeoutMs: 1000, perf: performance })
 * bus.listen(handlers)
 * await bus.publish({ kind: 'tags', tags: ['article:42'] }, true) // resolves once every live process applied it
 * ```
 */
export class InvalidationBus {
  readonly #id = randomUUID()
  readonly #options: BusOptions
  readonly #transport: BusTransport
  #handlers: BusHandlers = { message: () => {}, missed: () => {} }
  #seq = 0
  readonly #peers = new Map<string, Peer>()
  readonly #awaiting = new Map<number, AwaitingAcks>()
  /** Publishes and acknowledgement waits under way, for {@link settled}. */
  readonly #pending = new Set<Promise<void>>()
  readonly #counts: BusCounts = { gaps: 0, unacknowledged: 0, peers: 0 }
  #subscribed = false
  /** When this process last heard one of its own messages (monotonic ms), or null when it never has. */
  #heardSelf: number | null = null
  #healthy = false
  readonly #ready: Promise<void>
  #resolveReady: () => void = () => {}
  readonly #beat: NodeJS.Timeout
  #closed = false

  constructor(connection: RedisConnection, channel: string, options: BusOptions) {
    this.#options = options
    this.#ready = new Promise((resolve) => (this.#resolveReady = resolve))
    this.#transport = new BusTransport(connection, channel, {
      message: (text) => this.#receive(text),
      subscribed: (state) => {
        this.#subscribed = state
        if (state) void this.#send(BEAT, '') // heard back, it makes the bus healthy
        else this.#judgeHealth()
      },
    })
    this.#beat = setInterval(() => this.#tick(), options.heartbeatMs)
    this.#beat.unref()
  }

  /** Where messages from other processes and losses are reported from now on. */
  listen(handlers: BusHandlers): void {
    this.#handlers = handlers
  }

  /** Resolves once the bus first hears itself; rejects with {@link NotReadyError} after `timeoutMs`, if given. */
  async ready(timeoutMs?: number): Promise<void> {
    if (timeoutMs === undefined) return this.#ready
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([this.#ready, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new NotReadyError(timeoutMs)), timeoutMs)))])
    } finally {
      clearTimeout(timer)
    }
  }

  /** True while messages from other processes are reaching this one (subscribed, and its own beats come back). */
  get healthy(): boolean {
    return this.#healthy
  }

  /** What the bus counted so far. */
  counts(): BusCounts {
    return { ...this.#counts, peers: this.#livePeers().length }
  }

  /**
   * Sends a message to every other process; resolves once Redis answered (or could not) and, with `acknowledged`, once
   * every process heard from recently has applied it (or `ackTimeoutMs` passed). Never throws: a lost message is seen
   * as a gap by the others, and a process that does not acknowledge hears nothing and stops trusting its L1.
   */
  publish(message: BusMessage, acknowledged = false): Promise<void> {
    const payload = message.kind === 'clear' ? '' : JSON.stringify(message.kind === 'keys' ? message.keys : message.tags)
    const kind = KINDS[message.kind]
    const work = acknowledged && this.#options.ackTimeoutMs > 0 ? this.#sendAcknowledged(kind, payload) : this.#send(kind, payload)
    const tracked = work.finally(() => this.#pending.delete(tracked))
    this.#pending.add(tracked)
    return tracked
  }

  /** Resolves once every publish sent so far has been answered, and every acknowledgement wait is over. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending])
  }

  /** Stops beating and closes the subscription's connection. */
  close(): void {
    this.#closed = true
    clearInterval(this.#beat)
    this.#transport.close()
    for (const awaiting of this.#awaiting.values()) awaiting.done()
    this.#setHealthy(false)
  }

  /**
   * Sends one message; resolves when answered. Only invalidations take a new sequence number (beats and acknowledgements
   * carry the last one), so a lost beat costs nobody anything, while a lost invalidation shows as a gap at the next
   * message the others hear from this process.
   */
  async #send(kind: string, payload: string): Promise<void> {
    const seq = kind === BEAT || kind === ACK ? this.#seq : ++this.#seq
    await this.#transport.publish(`${PROTOCOL}|${this.#id}|${seq}|${kind}|${payload}`)
  }

  async #sendAcknowledged(kind: string, payload: string): Promise<void> {
    const from = new Set(this.#livePeers())
    if (from.size === 0) {
      await this.#send(kind, payload)
      return
    }
    let done: () => void = () => {}
    const acknowledged = new Promise<void>((resolve) => (done = resolve))
    // The sequence number is taken synchronously: the wait is registered before any acknowledgement can arrive.
    const sending = this.#send(ACKED(kind), payload)
    const seq = this.#seq
    this.#awaiting.set(seq, { from, done })
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#options.ackTimeoutMs)))
    try {
      await sending
      await Promise.race([acknowledged, timedOut])
    } finally {
      clearTimeout(timer)
      const left = this.#awaiting.get(seq)?.from.size ?? 0
      this.#counts.unacknowledged += left
      this.#awaiting.delete(seq)
    }
  }

  #receive(text: string): void {
    const parts = text.split('|')
    if (parts.length < 5 || parts[0] !== PROTOCOL) return // someone else's message on this channel
    const [, id, seqText, kind] = parts as [string, string, string, string]
    const payload = parts.slice(4).join('|')
    const seq = Number(seqText)
    if (!Number.isSafeInteger(seq)) return
    const now = this.#options.perf.now()
    if (id === this.#id) {
      this.#heardSelf = now
      this.#judgeHealth()
      return
    }
    this.#track(id, seq, kind === BEAT || kind === ACK, now)
    if (kind === BEAT) return
    if (kind === ACK) return this.#acknowledged(id, payload)
    const message = parse(kind.toLowerCase(), payload)
    if (message === undefined) return
    this.#handlers.message(message)
    if (kind !== kind.toLowerCase()) void this.#send(ACK, `${id}:${seq}`)
  }

  /**
   * Notes a message from another process. An invalidation must carry the next number; a beat or an acknowledgement
   * carries the last one sent: anything further means invalidations were lost.
   */
  #track(id: string, seq: number, carriesLast: boolean, now: number): void {
    const peer = this.#peers.get(id)
    if (peer === undefined) {
      this.#peers.set(id, { lastSeq: seq, lastHeard: now })
      return
    }
    if (seq > peer.lastSeq + (carriesLast ? 0 : 1)) {
      this.#counts.gaps += 1
      this.#handlers.missed()
    }
    peer.lastSeq = Math.max(peer.lastSeq, seq)
    peer.lastHeard = now
  }

  #acknowledged(from: string, payload: string): void {
    const [target, seqText] = payload.split(':')
    if (target !== this.#id) return
    const awaiting = this.#awaiting.get(Number(seqText))
    if (awaiting === undefined) return
    awaiting.from.delete(from)
    if (awaiting.from.size === 0) awaiting.done()
  }

  /** Every beat: say this process is alive, forget processes gone silent, and judge whether the bus still works. */
  #tick(): void {
    if (this.#closed) return
    if (this.#subscribed) void this.#send(BEAT, '')
    const silentSince = this.#options.perf.now() - SILENT_BEATS * this.#options.heartbeatMs
    for (const [id, peer] of this.#peers) if (peer.lastHeard < silentSince) this.#peers.delete(id)
    this.#judgeHealth()
  }

  #livePeers(): string[] {
    const silentSince = this.#options.perf.now() - SILENT_BEATS * this.#options.heartbeatMs
    return [...this.#peers].filter(([, peer]) => peer.lastHeard >= silentSince).map(([id]) => id)
  }

  #judgeHealth(): void {
    const now = this.#options.perf.now()
    const hearing = this.#heardSelf !== null && now - this.#heardSelf <= SILENT_BEATS * this.#options.heartbeatMs
    this.#setHealthy(this.#subscribed && hearing && !this.#closed)
  }

  #setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return
    this.#healthy = healthy
    if (!healthy) return
    this.#resolveReady()
    // Listening again: whatever was published meanwhile is lost.
    this.#handlers.missed()
  }
}

function parse(kind: string, payload: string): BusMessage | undefined {
  if (kind === KINDS.clear) return { kind: 'clear' }
  try {
    const list = JSON.parse(payload) as unknown
    if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) return undefined
    if (kind === KINDS.keys) return { kind: 'keys', keys: list }
    if (kind === KINDS.tags) return { kind: 'tags', tags: list }
  } catch {
    // Not valid: ignore it, as any message that is not ours.
  }
  return undefined
}

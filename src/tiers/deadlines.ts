/**
 * Timeouts that measure Redis, not the event loop: one timer for every call in flight on a connection (they share one
 * timeout, so their deadlines are in order), time the process spent blocked is not counted against a call, and a
 * deadline is only declared missed after the replies already waiting on the socket have been read.
 */

/** A call waiting for its reply. */
export interface PendingCall {
  /** When it was issued, on the monotonic clock. */
  issuedAt: number
  /** When it times out (moved later when the event loop was blocked). */
  deadline: number
  /** True once it has its reply or its error: the queue drops it. */
  settled: boolean
  /** Called when the deadline passes without a reply. */
  readonly timedOut: () => void
}

/** A timer that fired later than this (ms) means the event loop was blocked. */
const LAG_TOLERANCE_MS = 1
/** However blocked the process, a call times out at the latest this many timeouts after it was issued. */
const MAX_STRETCH = 4

/**
 * The deadlines of one connection's calls. A call is timed out only when Redis had a fair chance to answer it:
 * - the check runs in the check phase (`setImmediate`) after the timer, so replies that arrived while the process was
 *   busy are read (poll phase) before any deadline is judged;
 * - when the timer fires late, the event loop was blocked (a 60 ms synchronous render, say): a command issued before
 *   the block may only have been written after it, so every waiting call gets a fresh `timeoutMs` from now, up to
 *   `MAX_STRETCH` timeouts after it was issued (a frozen Redis under constant load still times out).
 * One timer, re-armed for the earliest deadline, instead of one per call: the calls share one timeout, so their
 * deadlines are in the order they were issued.
 *
 * @example
 * ```ts
 * const deadlines = new Deadlines(50, performance)
 * const call = { issuedAt: 0, deadline: 0, settled: false, timedOut: () => fail(new Error('no answer within 50 ms')) }
 * deadlines.add(call)   // … and on the reply: call.settled = true
 * ```
 */
export class Deadlines {
  readonly timeoutMs: number
  readonly #perf: { now(): number }
  #queue: PendingCall[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined
  /** When the armed timer should fire. */
  #armedFor = 0
  #sweeping = false

  constructor(timeoutMs: number, perf: { now(): number }) {
    this.timeoutMs = timeoutMs
    this.#perf = perf
  }

  /** Starts the clock on a call. */
  add(call: PendingCall): void {
    call.issuedAt = this.#perf.now()
    call.deadline = call.issuedAt + this.timeoutMs
    this.#queue.push(call)
    if (this.#timer === undefined && !this.#sweeping) this.#arm(call.deadline)
  }

  /** Calls still waiting (settled ones included until the next sweep). */
  get size(): number {
    return this.#queue.length - this.#head
  }

  #arm(at: number): void {
    this.#armedFor = at
    this.#timer = setTimeout(() => this.#fired(), Math.max(0, at - this.#perf.now()))
    // A pending call must not keep a process alive that has nothing else to do.
    this.#timer.unref()
  }

  #fired(): void {
    this.#timer = undefined
    this.#sweeping = true
    setImmediate(() => this.#sweep())
  }

  /** Drops settled calls from the head, times out those past their deadline, re-arms for the next. */
  #sweep(): void {
    this.#sweeping = false
    const now = this.#perf.now()
    // Late (the timer, or this sweep after it): the loop was blocked, and that time was not Redis's. min() of
    // increasing caps keeps the deadlines in order.
    if (now - this.#armedFor > LAG_TOLERANCE_MS) {
      for (let i = this.#head; i < this.#queue.length; i++) {
        const call = this.#queue[i] as PendingCall
        call.deadline = Math.max(call.deadline, Math.min(now + this.timeoutMs, call.issuedAt + MAX_STRETCH * this.timeoutMs))
      }
    }
    while (this.#head < this.#queue.length) {
      const call = this.#queue[this.#head] as PendingCall
      if (!call.settled && call.deadline > now) break
      this.#head += 1
      if (!call.settled) {
        call.settled = true
        call.timedOut()
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head)
      this.#head = 0
    }
    const next = this.#queue[this.#head]
    if (next === undefined) {
      this.#queue = []
      this.#head = 0
    } else {
      this.#arm(next.deadline)
    }
  }
}

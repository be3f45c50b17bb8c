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
  /** True once it has its reply, its error or its timeout. */
  settled: boolean
  /** Called when the deadline passes without a reply. */
  readonly timedOut: () => void
  /** Neighbours in the list of waiting calls (kept by {@link Deadlines}). */
  previous?: PendingCall | undefined
  next?: PendingCall | undefined
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
 * deadlines.add(call)   // … and on the reply: if (deadlines.settle(call)) use(reply)
 * ```
 */
export class Deadlines {
  readonly timeoutMs: number
  readonly #perf: { now(): number }
  // A doubly linked list in issue order: a call leaves it the moment it settles. Settled calls kept until their
  // deadline (an array swept by time) lived about a second under load, long enough to reach the old generation:
  // an L2 hit with 100 in flight cost about 5 µs more CPU, most of it garbage collection.
  #first: PendingCall | undefined
  #last: PendingCall | undefined
  #size = 0
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
    call.previous = this.#last
    call.next = undefined
    if (this.#last === undefined) this.#first = call
    else this.#last.next = call
    this.#last = call
    this.#size += 1
    if (this.#timer === undefined && !this.#sweeping) this.#arm(call.deadline)
  }

  /** Marks a call answered (or failed): it stops waiting. Returns false when it had settled already (timed out). */
  settle(call: PendingCall): boolean {
    if (call.settled) return false
    call.settled = true
    this.#unlink(call)
    return true
  }

  /** Calls still waiting. */
  get size(): number {
    return this.#size
  }

  #unlink(call: PendingCall): void {
    if (call.previous === undefined) this.#first = call.next
    else call.previous.next = call.next
    if (call.next === undefined) this.#last = call.previous
    else call.next.previous = call.previous
    call.previous = undefined
    call.next = undefined
    this.#size -= 1
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

  /** Times out the calls past their deadline, re-arms for the next. */
  #sweep(): void {
    this.#sweeping = false
    const now = this.#perf.now()
    // Late (the timer, or this sweep after it): the loop was blocked, and that time was not Redis's. min() of
    // increasing caps keeps the deadlines in order.
    if (now - this.#armedFor > LAG_TOLERANCE_MS) {
      for (let call = this.#first; call !== undefined; call = call.next) {
        call.deadline = Math.max(call.deadline, Math.min(now + this.timeoutMs, call.issuedAt + MAX_STRETCH * this.timeoutMs))
      }
    }
    let call = this.#first
    while (call !== undefined && call.deadline <= now) {
      const next = call.next
      call.settled = true
      this.#unlink(call)
      call.timedOut()
      call = next
    }
    if (this.#first !== undefined && this.#timer === undefined) this.#arm(this.#first.deadline)
  }
}

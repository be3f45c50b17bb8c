/**
 * Listening for "another process changed this key": how a compute waiting on another process's lock is woken when the
 * value lands (the bus says the key changed) instead of polling Redis.
 */

/** A listening started by {@link ChangeListeners.listen}. */
export interface Listening {
  /** Resolves when the key changes, after the time given, or on `cancel()`. */
  readonly changed: Promise<void>
  readonly cancel: () => void
}

/**
 * The listeners of one cache, by full key.
 * @example
 * ```ts
 * const listening = listeners.listen(key, 5000)   // listen first,
 * if (await look()) listening.cancel()           // then look,
 * else await listening.changed                   // then wait
 * ```
 */
export class ChangeListeners {
  readonly #byKey = new Map<string, Set<() => void>>()

  /**
   * Starts listening for a change of `fullKey`, for at most `ms`. Listen before looking: a value that lands between the
   * look and the listening would otherwise be missed.
   */
  listen(fullKey: string, ms: number): Listening {
    let listeners = this.#byKey.get(fullKey)
    if (listeners === undefined) this.#byKey.set(fullKey, (listeners = new Set()))
    const set = listeners
    let done: () => void = () => {}
    const changed = new Promise<void>((resolve) => {
      done = () => {
        clearTimeout(timer)
        set.delete(done)
        if (set.size === 0 && this.#byKey.get(fullKey) === set) this.#byKey.delete(fullKey)
        resolve()
      }
    })
    const timer = setTimeout(done, ms)
    set.add(done)
    return { changed, cancel: done }
  }

  /** `fullKey` changed: wakes those listening for it. */
  changed(fullKey: string): void {
    const listeners = this.#byKey.get(fullKey)
    if (listeners !== undefined) for (const done of [...listeners]) done()
  }

  /** Anything may have changed (messages were missed): wakes everyone. */
  changedAll(): void {
    for (const key of [...this.#byKey.keys()]) this.changed(key)
  }
}

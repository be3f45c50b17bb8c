/**
 * Recording what a compute depends on: the data versions every nested read sees, collected into the entry being computed.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Deps } from './entry.ts'

/**
 * Collects the data versions a computation saw, so that the entry it produces depends on them. Each
 * `getOrSet` compute runs in a recorder of its own (AsyncLocalStorage), so concurrent computes never mix,
 * and a nested `getOrSet` (hit or miss) or `versions.get` adds its tags to the computation around it:
 * an outer fragment is invalidated when an inner one's data changes, without naming it.
 */
class Recorder {
  readonly deps = new Map<string, number>()
  add(tag: string, version: number): void {
    this.deps.set(tag, version)
  }
}

const storage = new AsyncLocalStorage<Recorder>()

/** Adds `deps` to the computation running now, if any. */
export function recordDeps(deps: Deps | ReadonlyMap<string, number> | null): void {
  if (deps === null) return
  const recorder = storage.getStore()
  if (recorder === undefined) return
  if (deps instanceof Map) for (const [tag, version] of deps) recorder.add(tag, version)
  else for (const tag in deps) recorder.add(tag, (deps as Deps)[tag] as number)
}

/**
 * Runs `compute` in a fresh recorder seeded with `initial`, and returns its value with every dependency
 * it recorded (null when none).
 */
export async function runRecording<T>(
  compute: () => T | Promise<T>,
  initial: ReadonlyMap<string, number>,
): Promise<{ value: Awaited<T>; deps: Deps | null }> {
  const recorder = new Recorder()
  for (const [tag, version] of initial) recorder.add(tag, version)
  const value = await storage.run(recorder, compute)
  if (recorder.deps.size === 0) return { value, deps: null }
  return { value, deps: Object.fromEntries(recorder.deps) }
}

/**
 * Redis Cluster hash slots as ioredis routes commands: which slot a key is in, and keys grouped by slot so a multi-key
 * command never spans slots (Redis answers CROSSSLOT, and ioredis refuses such a pipeline outright).
 */
import { requireFromFragcache } from './redis-client.ts'

let calculateSlot: ((key: string) => number) | undefined

/**
 * The hash slot of `key`: CRC16 of the key, or of its `{hash tag}`, modulo 16384 (cluster-key-slot, the calculator
 * ioredis routes with).
 * @example
 * ```ts
 * slotOf('site:1:ver:{Ab3dE5fG7h}:article:1') === slotOf('site:1:ver:{Ab3dE5fG7h}:user:7') // true: one hash tag
 * ```
 */
export function slotOf(key: string): number {
  // Loaded on first use, as ioredis is: only a Cluster needs it.
  calculateSlot ??= requireFromFragcache('cluster-key-slot') as (key: string) => number
  return calculateSlot(key)
}

/**
 * The positions of `keys` grouped by slot, in first-seen order (a map's order), each group in the keys' order.
 * @example
 * ```ts
 * groupBySlot(['a', '{a}x', 'b'])   // Map { 15495 => [0, 1], 3300 => [2] }
 * ```
 */
export function groupBySlot(keys: readonly string[]): Map<number, number[]> {
  const groups = new Map<number, number[]>()
  keys.forEach((key, i) => {
    const slot = slotOf(key)
    const group = groups.get(slot)
    if (group === undefined) groups.set(slot, [i])
    else group.push(i)
  })
  return groups
}

/**
 * Hash slots and `CLUSTER NODES` as the test harness sees them: which slot a key is in, a key for any slot, and who
 * owns what according to one node.
 */
import { createRequire } from 'node:module'

/** Redis Cluster's number of hash slots. */
export const SLOT_COUNT = 16384

// cluster-key-slot is ioredis's own dependency: resolving it from ioredis's directory finds the copy ioredis uses,
// hoisted or nested, so the harness computes slots exactly as the client routes them.
const requireFromHere = createRequire(import.meta.url)
const requireFromIoredis = createRequire(requireFromHere.resolve('ioredis'))
const calculateSlot = requireFromIoredis('cluster-key-slot') as (key: string) => number

/**
 * The hash slot of `key` (CRC16 of the key, or of its `{hash tag}`, modulo 16384), as ioredis computes it to route a
 * command. Redis agrees for every key but those with an empty tag followed by another `}` (`foo{}{bar}`: Redis hashes
 * the whole key, cluster-key-slot 1.1.1 hashes `{bar`); fragcache's keys have no braces but hash tags.
 * @example
 * ```ts
 * slotOf('foo')            // 12182
 * slotOf('{user:1}:name')  // the slot of 'user:1'
 * ```
 */
export function slotOf(key: string): number {
  return calculateSlot(key)
}

let keyBySlot: string[] | undefined

/**
 * A short key (`slot-key:N`) whose slot is `slot`: a test that must touch every slot, or one given slot, needs no
 * hash tags. The table is built once, on first use (about 170,000 hashes, some tens of ms).
 * @example
 * ```ts
 * const keys = Array.from({ length: SLOT_COUNT }, (_, slot) => keyInSlot(slot))   // one key per slot
 * ```
 */
export function keyInSlot(slot: number): string {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new RangeError(`no slot ${slot}: slots are 0 to ${SLOT_COUNT - 1}`)
  if (keyBySlot === undefined) {
    const table: string[] = new Array<string>(SLOT_COUNT)
    let missing = SLOT_COUNT
    for (let n = 0; missing > 0; n++) {
      const key = `slot-key:${n}`
      const s = calculateSlot(key)
      if (table[s] === undefined) {
        table[s] = key
        missing--
      }
    }
    keyBySlot = table
  }
  return keyBySlot[slot] as string
}

/** One line of `CLUSTER NODES`: one node as the node that was asked sees it. */
export interface NodeView {
  readonly id: string
  readonly port: number
  readonly role: 'master' | 'replica'
  /** The id of its master, for a replica. */
  readonly masterId: string | undefined
  /** Flagged `fail` or `fail?` (PFAIL) by the node that was asked. */
  readonly failing: boolean
  /** The node that was asked. */
  readonly myself: boolean
  /** Slot ranges it serves, inclusive (migrating/importing markers are left out). */
  readonly slots: readonly (readonly [number, number])[]
}

/**
 * Parses the reply of `CLUSTER NODES`.
 * @example
 * ```ts
 * const views = parseClusterNodes(await node.call('CLUSTER', 'NODES') as string)
 * views.filter((v) => v.role === 'master' && v.slots.length > 0)
 * ```
 */
export function parseClusterNodes(reply: string): NodeView[] {
  return reply
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-', , , , , ...slotFields] = line.trim().split(' ')
      const flagList = flags.split(',')
      const port = Number(address.slice(address.lastIndexOf(':') + 1).split('@')[0])
      const slots = slotFields
        .filter((field) => !field.startsWith('['))
        .map((field): readonly [number, number] => {
          const [start, end = start] = field.split('-').map(Number) as [number, number?]
          return [start, end]
        })
      return {
        id,
        port,
        role: flagList.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        failing: flagList.includes('fail') || flagList.includes('fail?'),
        myself: flagList.includes('myself'),
        slots,
      }
    })
}

/**
 * The node serving `slot` in `views`, if any.
 * @example
 * ```ts
 * ownerOfSlot(parseClusterNodes(reply), slotOf('fragcache:1:c:top'))?.port
 * ```
 */
export function ownerOfSlot(views: readonly NodeView[], slot: number): NodeView | undefined {
  return views.find((view) => view.role === 'master' && view.slots.some(([start, end]) => slot >= start && slot <= end))
}

/**
 * Parses `CLUSTER INFO` or `INFO` (`field:value` lines).
 * @example
 * ```ts
 * parseInfo(await node.call('CLUSTER', 'INFO') as string).get('cluster_state')   // 'ok'
 * ```
 */
export function parseInfo(reply: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of reply.split('\r\n').join('\n').split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  return fields
}

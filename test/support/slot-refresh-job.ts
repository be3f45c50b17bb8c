/**
 * A process that opens an ioredis `Cluster` with a periodic slot refresh and disconnects while one of the loop's refreshes
 * is in flight, as a job closing its cache can (the interval is 5 ms here so that one is in flight soon). With `end` it then calls fragcache's `endSlotRefresh`; with `plain` it does
 * not (ioredis's own behaviour). Run by tests with `node --import tsx slot-refresh-job.ts SEED_URL end|plain`; prints
 * `closed` once disconnected, and exits only when nothing keeps it alive.
 */
import { Cluster } from 'ioredis'
import { endSlotRefresh } from '../../src/tiers/cluster-close.ts'

const [seed, mode] = process.argv.slice(2)
if (seed === undefined || (mode !== 'end' && mode !== 'plain')) throw new Error('usage: slot-refresh-job.ts SEED_URL end|plain')
const { hostname, port } = new URL(seed)
const cluster = new Cluster([{ host: hostname, port: Number(port) }], { slotsRefreshInterval: 5, enableOfflineQueue: false })
cluster.on('error', () => {})
await new Promise<void>((resolve) => cluster.once('ready', () => resolve()))
// Wait for a refresh of the loop to be under way (ioredis's `isRefreshing`, not in its types).
const refreshing = (): boolean => (cluster as unknown as { isRefreshing: boolean }).isRefreshing
while (!refreshing()) await new Promise((resolve) => setImmediate(resolve))
cluster.disconnect()
if (mode === 'end') endSlotRefresh(cluster)
console.log('closed')

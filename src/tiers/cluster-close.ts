/**
 * Ending an ioredis `Cluster` for good. In ioredis 5 (checked on 5.11.1), a slot refresh still in flight when a Cluster
 * is disconnected re-arms the `slotsRefreshInterval` timer from its callback, and each refresh of a closed Cluster
 * (no nodes left) fails at once and re-arms it again: a 1 s timer forever, so a job that bumps a version and closes
 * its cache never exits. fragcache opens its Clusters with that interval (without it a frozen master keeps its slots).
 */
import type { Cluster } from 'ioredis'

/** The ioredis internals the loop runs on (not in its types). */
interface SlotRefreshInternals {
  slotsTimer?: NodeJS.Timeout | null
  _refreshSlotsCacheCallbacks?: unknown[]
  refreshSlotsCache: (callback?: (error?: Error) => void) => void
}

/**
 * Stops a closed (or closing) Cluster's slot-refresh loop.
 * @example
 * ```ts
 * cluster.disconnect()
 * endSlotRefresh(cluster)
 * ```
 */
export function endSlotRefresh(cluster: Cluster): void {
  const internals = cluster as unknown as SlotRefreshInternals
  // The refresh in flight calls these when it ends: the loop's own callback is among them.
  if (Array.isArray(internals._refreshSlotsCacheCallbacks)) internals._refreshSlotsCacheCallbacks = []
  if (internals.slotsTimer) {
    clearTimeout(internals.slotsTimer)
    internals.slotsTimer = null
  }
  // A timer armed meanwhile finds nothing to refresh and no loop to continue.
  internals.refreshSlotsCache = () => {}
}

// bare.mts from CommonJS: fragcache's `require` declarations, without the optional peers.
import fragcache = require('fragcache')

const cache: fragcache.TieredCache = fragcache.createCache({ prefix: 'bare' })
export const visits: Promise<number> = cache.get('visits', 0)

// Only fragcache, as an app without ioredis, Nunjucks, Eta or Express has it: the declarations must compile.
import { type CacheOptions, type TieredCache, createCache } from 'fragcache'

const options: CacheOptions = { prefix: 'bare', ttl: 60 }
const cache: TieredCache = createCache(options)
export const visits: Promise<number> = cache.get('visits', 0)

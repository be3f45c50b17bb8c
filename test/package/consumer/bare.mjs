// fragcache imported where none of its optional peers is installed: memory only works, and a Redis URL says what
// is missing.
import { createCache } from 'fragcache'

const cache = createCache({ prefix: 'bare' })
await cache.set('greeting', 'hello')
let redis
try {
  createCache({ redis: 'redis://127.0.0.1:1' })
} catch (error) {
  redis = error.message
}
console.log(JSON.stringify({ value: await cache.get('greeting'), redis }))

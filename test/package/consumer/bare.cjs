'use strict'
// bare.mjs, required.
const { createCache } = require('fragcache')

async function main() {
  const cache = createCache({ prefix: 'bare' })
  await cache.set('greeting', 'hello')
  let redis
  try {
    createCache({ redis: 'redis://127.0.0.1:1' })
  } catch (error) {
    redis = error.message
  }
  console.log(JSON.stringify({ value: await cache.get('greeting'), redis }))
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})

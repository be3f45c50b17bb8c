/**
 * The fragcache the benchmarks measure: the built package (`dist/`, what users run) when `FRAGCACHE_BUILD=1`, which the
 * npm scripts set after `npm run build`; else the TypeScript sources through tsx, which wraps every function the library
 * creates per call in a naming helper and so slightly penalises fragcache against precompiled peers.
 */
import type * as Fragcache from '../../src/index.ts'

const built = process.env.FRAGCACHE_BUILD === '1'
const specifier = built ? '../../dist/esm/index.js' : '../../src/index.ts'
const library = (await import(specifier)) as typeof Fragcache

export const { createCache } = library
export const source = built ? 'the built package (dist/)' : 'the TypeScript sources through tsx'

import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { type Site, createSite } from '../../example-site/site.ts'
import { type TieredCache, createCache } from '../../src/index.ts'

const README = join(import.meta.dirname, '../../README.md')

/**
 * The paths the README's demo section names in backticks (`/eta/article/1`, `/_cache`), without patterns
 * (`/nunjucks/…`) or queries: each is a page a reader will type.
 */
function demoPaths(readme: string): string[] {
  const start = readme.indexOf('\n## The demo site')
  if (start === -1) throw new Error('README.md has no "## The demo site" section')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  const paths = [...section.matchAll(/`(\/[^`\s]*)`/g)].map((match) => match[1] as string).filter((path) => !path.includes('…'))
  return [...new Set(paths)]
}

interface Context {
  cache: TieredCache
  site: Site
  base: string
}

const Paths = suite<Context>('demo site :: the paths the README names')

Paths.before(async (context) => {
  context.cache = createCache({ prefix: 'readme-paths-test' })
  context.site = await createSite({ cache: context.cache, dbFile: ':memory:', upstreamDelayMs: 10 })
  const server = await context.site.listen(0)
  context.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

Paths.after(async (context) => {
  await context.site.close()
  await context.cache.close()
})

Paths('demoPaths :: finds the section and its paths, not patterns', () => {
  const paths = demoPaths(readFileSync(README, 'utf8'))
  assert.ok(paths.length >= 10, `only ${paths.length} paths found: ${paths.join(' ')}`)
  assert.ok(paths.includes('/eta/forecast/live'))
  assert.not.ok(paths.some((path) => path.includes('…')))
})

Paths('every path the demo section names answers, none with a 404 or an error', async (context) => {
  const failed: string[] = []
  for (const path of demoPaths(readFileSync(README, 'utf8'))) {
    const response = await fetch(context.base + path, { redirect: 'manual' })
    await response.arrayBuffer()
    if (response.status === 404 || response.status >= 500) failed.push(`${path} → ${response.status}`)
  }
  assert.equal(failed, [])
})

Paths.run()

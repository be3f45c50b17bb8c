/**
 * fragcache as its users get it. A fresh copy of the repository (tracked files, no dist/) is packed with `npm pack`,
 * whose prepack builds it; the tarball is installed into a throwaway app, first alone (none of the optional peers),
 * then with them. The app's consumers (test/package/consumer) run one scenario from an ES module, a CommonJS module,
 * and TypeScript compiled under node16 (ES module and CommonJS) and bundler resolution, with `skipLibCheck: false`.
 * About a minute: one pack, one install of the tarball, one of the peers (the npm cache first).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RedisServer } from '../support/redis-server.ts'
import { REPO, freshCheckout, install, pack, runScript, tsc } from './commands.ts'

interface Installed {
  root: string
  app: string
  /** Paths in the tarball, as npm pack listed them. */
  files: string[]
}

/** Set by the first suite, used by both: one pack and one app for every consumer. */
let installed: Installed | undefined

function theApp(): Installed {
  if (installed === undefined) throw new Error('the package was not packed and installed: see the first failure above')
  return installed
}

const PEERS = ['express', 'nunjucks', 'eta', 'ioredis', '@types/express', '@types/nunjucks']

/** `name@range` as the repository's own package.json asks for it, so the app runs what the tests run. */
function asTheRepositoryHasIt(name: string): string {
  const { devDependencies } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
  const range = devDependencies[name]
  if (range === undefined) throw new Error(`${name} is not a devDependency of the repository`)
  return `${name}@${range}`
}

const installedPackage = (app: string) => join(app, 'node_modules/fragcache')

/** Every `sources` entry of every source map in the installed package, with the map it is in, that is not there. */
function unresolvedSources(packageDir: string): string[] {
  const missing: string[] = []
  for (const file of readdirSync(packageDir, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.map')) continue
    const map = JSON.parse(readFileSync(join(packageDir, file), 'utf8')) as { sources: string[]; sourceRoot?: string }
    for (const source of map.sources) {
      if (!existsSync(join(packageDir, dirname(file), map.sourceRoot ?? '', source))) missing.push(`${file} → ${source}`)
    }
  }
  return missing
}

/** The targets of the exports map of the installed package.json. */
function exportTargets(packageDir: string): string[] {
  const { exports } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }
  const targets: string[] = []
  const walk = (value: unknown): void => {
    if (typeof value === 'string') targets.push(value.replace(/^\.\//, ''))
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk)
  }
  walk(exports)
  return targets
}

// ---------------------------------------------------------------------------------------------------------------
const Alone = suite('package :: packed from a fresh copy, installed without the optional peers')

Alone.before(async () => {
  const root = mkdtempSync(join(tmpdir(), 'fragcache-package-'))
  const checkout = join(root, 'checkout')
  await freshCheckout(checkout)
  const { tarball, files } = await pack(checkout, root)
  const app = join(root, 'app')
  cpSync(join(import.meta.dirname, 'consumer'), app, { recursive: true })
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'fragcache-consumer', private: true })}\n`)
  await install(app, [tarball, asTheRepositoryHasIt('@types/node')], 'installing the packed tarball into a throwaway app')
  installed = { root, app, files }
})

Alone('npm pack :: the build, its declarations, the sources its maps name, LICENSE and README; no tests', () => {
  const { app, files } = theApp()
  const packageDir = installedPackage(app)
  for (const file of ['LICENSE', 'README.md', 'package.json', 'dist/cjs/package.json', ...exportTargets(packageDir)]) {
    assert.ok(files.includes(file), `${file} is not in the tarball`)
  }
  assert.equal(files.filter((file) => /^(test|bench|example-site|fixtures)\//.test(file)), [])
  assert.equal(unresolvedSources(packageDir), [])
})

Alone('without peers :: import and require work from memory; a Redis URL says ioredis is missing', async () => {
  const { app } = theApp()
  for (const peer of PEERS) assert.not.ok(existsSync(join(app, 'node_modules', peer)), `${peer} should not be installed yet`)
  for (const script of ['bare.mjs', 'bare.cjs']) {
    const result = (await runScript(app, script)) as { value: string; redis: string }
    assert.is(result.value, 'hello', script)
    assert.match(result.redis, 'ioredis is not installed (npm install ioredis)', script)
  }
})

Alone('without peers :: the declarations compile (skipLibCheck false), node16 and bundler', async () => {
  const project = join(theApp().app, 'typescript/tsconfig.bare.json')
  await tsc(project)
  await tsc(project, ['--module', 'preserve', '--moduleResolution', 'bundler'])
})

Alone.run()

// ---------------------------------------------------------------------------------------------------------------
const WithPeers = suite<{ redis: RedisServer }>('package :: the same app with the peers: ESM, CommonJS, TypeScript')

WithPeers.before(async (context) => {
  await install(theApp().app, PEERS.map(asTheRepositoryHasIt), 'installing the optional peers into the app')
  context.redis = await RedisServer.start()
})

WithPeers.after(async (context) => {
  await context.redis?.stop()
  if (installed !== undefined) rmSync(installed.root, { recursive: true, force: true })
})

/** What scenario.cjs reports when fragcache works: fragments and a page cached, then invalidated by a bump. */
const expected = (redis: string | null) => ({
  oneCopy: true,
  nunjucks: ['<b>1</b>', '<b>1</b>', '<b>2</b>'],
  eta: ['<i>1</i>', '<i>1</i>', '<i>2</i>'],
  page: ['MISS page 1', 'HIT page 1', 'MISS page 2'],
  redis,
})

WithPeers('ES module app (.mjs) :: fragments, a page, a bump; a second cache reads through Redis', async (context) => {
  assert.equal(await runScript(theApp().app, 'app.mjs', { REDIS_URL: context.redis.url }), expected('through Redis'))
})

WithPeers('CommonJS app (.cjs) :: fragments, a page, a bump; a second cache reads through Redis', async (context) => {
  assert.equal(await runScript(theApp().app, 'app.cjs', { REDIS_URL: context.redis.url }), expected('through Redis'))
})

WithPeers('TypeScript, node16 :: .mts and .cts type-check, compile and run', async () => {
  const { app } = theApp()
  await tsc(join(app, 'typescript/tsconfig.node16.json'))
  assert.equal(await runScript(app, 'out-node16/app.mjs'), expected(null))
  assert.equal(await runScript(app, 'out-node16/app.cjs'), expected(null))
})

WithPeers('TypeScript, bundler :: type-checks, compiles and runs', async () => {
  const { app } = theApp()
  await tsc(join(app, 'typescript/tsconfig.bundler.json'))
  assert.equal(await runScript(app, 'out-bundler/app.mjs'), expected(null))
})

WithPeers.run()

/**
 * Builds the package into dist/ (`npm run build`; `npm pack` and `npm publish` run it first):
 * - dist/cjs: every source file as a CommonJS module with its source map and declarations (a package.json there
 *   says `"type": "commonjs"`, so Node and TypeScript read both as CommonJS);
 * - dist/esm: for each entry point of package.json's `exports`, an ES module that re-exports the CommonJS one.
 *
 * Why not a second, ES module build: fragcache keeps state in its modules (the request scope's and the Nunjucks
 * hooks' AsyncLocalStorage, the hooks' `Symbol.for` mark, `instanceof TieredCache` checks). An app that both
 * imports and requires it (its own code one way, a dependency the other) would get two copies that do not see each
 * other's request scope or cache, and fail quietly: Node's "dual package hazard". With wrappers there is one copy.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { compileCommonJs } from './compile-commonjs.ts'
import { writeEsmWrappers } from './esm-wrappers.ts'
import { type PackageEntry, packageEntries } from './package-entries.ts'

const COMMONJS_DIR = 'dist/cjs'

function emitDeclarations(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', COMMONJS_DIR], { stdio: 'inherit' })
}

/** Every file the exports map names must exist: an entry moved in the sources and not in package.json fails here. */
function checkTargets(entries: readonly PackageEntry[]): void {
  const missing = entries.flatMap((e) => [e.require.default, e.require.types].filter((file) => !existsSync(file)).map((file) => `${e.subpath}: ${file}`))
  if (missing.length > 0) {
    throw new Error(
      `the build made no file for these targets of package.json's exports (does each still match a source file, ` +
        `e.g. ./dist/cjs/src/express/index.js for src/express/index.ts?):\n  ${missing.join('\n  ')}`,
    )
  }
}

process.chdir(`${import.meta.dirname}/..`)
const entries = packageEntries()
rmSync('dist', { recursive: true, force: true })
compileCommonJs(COMMONJS_DIR)
emitDeclarations()
writeFileSync(`${COMMONJS_DIR}/package.json`, `${JSON.stringify({ type: 'commonjs' })}\n`)
checkTargets(entries)
writeEsmWrappers(entries)
console.log(`built ${entries.map((e) => e.subpath).join(', ')} into dist/ (CommonJS, with ES module wrappers)`)

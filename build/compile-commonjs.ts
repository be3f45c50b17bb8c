/**
 * Compiles every source file of the package to a CommonJS module of its own with tsc (no bundling: one module per source
 * file, so a class or an AsyncLocalStorage shared by two entry points exists once), with a source map that points at
 * the shipped TypeScript source. tsc's CommonJS reads another module's export as a plain property (`exports.x = x`),
 * where esbuild's per-file output reads it through a getter: on the hit path, every call across modules paid that.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

/** The one source line that reads `import.meta.url`, and what CommonJS has instead (see src/tiers/redis-client.ts). */
const IMPORT_META = { file: 'src/tiers/redis-client.js', from: 'import.meta.url', to: "require('node:url').pathToFileURL(__filename).href" }

/** Writes `outdir/<source path>.js` and `.js.map` for every source file. */
export function compileCommonJs(outdir: string): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(
    process.execPath,
    [
      tsc,
      ...['-p', 'tsconfig.build.json', '--outDir', outdir],
      ...['--module', 'commonjs', '--moduleResolution', 'node10', '--verbatimModuleSyntax', 'false'],
      ...['--declaration', 'false', '--declarationMap', 'false', '--emitDeclarationOnly', 'false', '--sourceMap', 'true'],
    ],
    { stdio: 'inherit' },
  )
  const file = `${outdir}/${IMPORT_META.file}`
  const code = readFileSync(file, 'utf8')
  if (code.split(IMPORT_META.from).length !== 2) throw new Error(`${file}: expected ${IMPORT_META.from} exactly once, to rewrite it for CommonJS`)
  writeFileSync(file, code.replace(IMPORT_META.from, IMPORT_META.to))
}

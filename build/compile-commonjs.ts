/**
 * Compiles every source file of the package to a CommonJS module of its own (no bundling: one module per source
 * file, so a class or an AsyncLocalStorage shared by two entry points exists once), with a source map that points at
 * the shipped TypeScript source.
 */
import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { type Plugin, build } from 'esbuild'

/** Folders whose TypeScript files make the package. */
export const SOURCE_DIRS = ['src', 'extensions']

/** Every `.ts` file under {@link SOURCE_DIRS}, relative to the package. */
export function sourceFiles(): string[] {
  return SOURCE_DIRS.flatMap((dir) =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => join(dir, file)),
  )
}

/**
 * esbuild bundles by default; this keeps each relative import as an import of the sibling output module
 * (`./keys.ts` → `./keys.js`), so the output mirrors the sources file for file.
 */
const siblingModules: Plugin = {
  name: 'sibling-modules',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.kind === 'entry-point') return undefined
      if (!args.path.endsWith('.ts')) {
        return { errors: [{ text: `relative imports name the .ts file they import (${args.path} in ${args.importer})` }] }
      }
      return { path: `${args.path.slice(0, -'.ts'.length)}.js`, external: true }
    })
  },
}

/** Writes `outdir/<source path>.js` and `.js.map` for every source file. */
export async function compileCommonJs(outdir: string): Promise<void> {
  await build({
    entryPoints: sourceFiles(),
    outbase: '.',
    outdir,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    bundle: true,
    packages: 'external',
    plugins: [siblingModules],
    // CommonJS has no import.meta; `createRequire(import.meta.url)` (loading the optional peer ioredis) needs the URL.
    inject: [resolve(import.meta.dirname, 'import-meta-url.ts')],
    define: { 'import.meta.url': 'importMetaUrl' },
    sourcemap: 'linked',
    // The sources ship beside dist/, at the paths the maps name.
    sourcesContent: false,
    logLevel: 'warning',
  })
}

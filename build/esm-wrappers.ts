/**
 * Writes each entry point's ES module: a wrapper that re-exports its CommonJS module, with declarations that do the
 * same, so that `import` and `require` of fragcache load the same modules.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, relative } from 'node:path'
import type { PackageEntry } from './package-entries.ts'

/** `export * from '<the CommonJS module>'`, written at the entry's `import` paths (JavaScript and declarations). */
export function writeEsmWrappers(entries: readonly PackageEntry[]): void {
  for (const entry of entries) {
    const reexport = (from: string) => `export * from '${specifier(from, entry.require.default)}'\n`
    write(entry.import.default, reexport(entry.import.default))
    write(entry.import.types, reexport(entry.import.types))
  }
}

/** The relative specifier that imports `target` from the file `from` (both relative to the package). */
function specifier(from: string, target: string): string {
  const path = relative(dirname(from), target).replaceAll('\\', '/')
  return path.startsWith('.') ? path : `./${path}`
}

function write(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
}

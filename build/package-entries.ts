/**
 * The package's public entry points, read from the `exports` map of package.json: the one place they are listed.
 * Each entry names its CommonJS module (`require`), which the build compiles from the source file at the same path,
 * and its ES module wrapper (`import`), which the build writes.
 */
import { readFileSync } from 'node:fs'

interface Target {
  readonly types: string
  readonly default: string
}

/** One subpath of the package (`.`, `./nunjucks`, …) and the files its conditions point at, relative to the package. */
export interface PackageEntry {
  readonly subpath: string
  readonly import: Target
  readonly require: Target
}

/** The entries of `packageJson`'s exports map that have `import` and `require` conditions (not `./package.json`). */
export function packageEntries(packageJson = 'package.json'): PackageEntry[] {
  const exportsMap = (JSON.parse(readFileSync(packageJson, 'utf8')) as { exports: Record<string, unknown> }).exports
  const entries: PackageEntry[] = []
  for (const [subpath, conditions] of Object.entries(exportsMap)) {
    if (typeof conditions === 'string') continue
    const { import: esm, require: cjs } = conditions as { import?: Target; require?: Target }
    if (!isTarget(esm) || !isTarget(cjs)) {
      throw new Error(`package.json exports "${subpath}" needs "import" and "require", each with "types" and "default"`)
    }
    entries.push({ subpath, import: esm, require: cjs })
  }
  return entries
}

function isTarget(value: unknown): value is Target {
  return typeof value === 'object' && value !== null && typeof (value as Target).types === 'string' && typeof (value as Target).default === 'string'
}

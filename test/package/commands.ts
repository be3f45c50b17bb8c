/**
 * The commands the package test runs (git, npm, node, tsc), each bounded in time and failing with what it was doing,
 * the command line and the end of its output.
 */
import { execFile } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, realpathSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'

export const REPO = realpathSync(join(import.meta.dirname, '../..'))

interface RunOptions {
  cwd: string
  /** What the command is for, to start the error message with. */
  what: string
  timeoutMs: number
  env?: Record<string, string>
}

/** Runs a command and resolves to its standard output; rejects with a message that says what failed and why. */
export function run(command: string, args: readonly string[], options: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = { ...withoutNpmConfig(process.env), ...options.env }
    execFile(command, args, { cwd: options.cwd, env, timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) return resolve(stdout)
      const why = error.killed ? `no end within ${options.timeoutMs / 1000} s` : `exit code ${String(error.code ?? error.signal)}`
      const output = `${stderr}\n${stdout}`.trim().split('\n').slice(-40).join('\n')
      reject(new Error(`${options.what} failed (${why}): ${command} ${args.join(' ')}\n  in ${options.cwd}\n${output}`))
    })
  })
}

/**
 * The environment without the `npm_*` variables `npm test` sets: an npm started from a test must read its own
 * project's configuration, not the one of the `npm test` around it.
 */
function withoutNpmConfig(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) if (value !== undefined && !/^npm_/i.test(name)) out[name] = value
  return out
}

/**
 * Copies what a fresh clone of the repository would have (tracked files, and new ones not ignored: no dist/) into
 * `dir`, with the repository's node_modules linked for the build tools.
 */
export async function freshCheckout(dir: string): Promise<void> {
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO,
    what: 'listing the files of the repository',
    timeoutMs: 30_000,
  })
  for (const file of listed.split('\0')) {
    if (file === '' || file === 'node_modules' || !existsSync(join(REPO, file))) continue
    mkdirSync(dirname(join(dir, file)), { recursive: true })
    cpSync(join(REPO, file), join(dir, file))
  }
  symlinkSync(realpathSync(join(REPO, 'node_modules')), join(dir, 'node_modules'))
}

/** `npm pack` in `checkout` (its prepack builds the package) into `destination`; the tarball's path and file list. */
export async function pack(checkout: string, destination: string): Promise<{ tarball: string; files: string[] }> {
  const stdout = await run('npm', ['pack', '--json', '--pack-destination', destination], {
    cwd: checkout,
    what: 'npm pack (with its prepack build) in a fresh copy of the repository',
    timeoutMs: 180_000,
  })
  // The build's own output comes first; the JSON report is last.
  const report = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as { filename: string; files: { path: string }[] }[]
  const packed = report[0]
  if (packed === undefined) throw new Error(`npm pack reported no package:\n${stdout}`)
  return { tarball: join(destination, packed.filename), files: packed.files.map((f) => f.path) }
}

/** `npm install` of `specs` into the app at `cwd`: no audit, no lock file, the npm cache before the registry. */
export function install(cwd: string, specs: readonly string[], what: string): Promise<string> {
  const flags = ['--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--no-package-lock', '--loglevel=error']
  return run('npm', ['install', ...flags, ...specs], { cwd, what, timeoutMs: 300_000 })
}

/** The project's own TypeScript compiler on a consumer's tsconfig. */
export function tsc(project: string, extraArgs: readonly string[] = []): Promise<string> {
  const compiler = join(REPO, 'node_modules/typescript/bin/tsc')
  return run(process.execPath, [compiler, '-p', project, ...extraArgs], {
    cwd: dirname(project),
    what: `type-checking ${project} ${extraArgs.join(' ')}`.trim(),
    timeoutMs: 120_000,
  })
}

/** Runs a consumer script with Node and parses the JSON line it prints. */
export async function runScript(cwd: string, script: string, env: Record<string, string> = {}): Promise<unknown> {
  const stdout = await run(process.execPath, [script], { cwd, what: `running ${script}`, timeoutMs: 60_000, env })
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '')
}

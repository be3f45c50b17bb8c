/**
 * The test runner behind `npm test`: uvu's own parse and run, with two guarantees uvu's CLI lacks.
 *
 * - The run ends when the suites end. A failed test can leave a server, a child process or a Redis
 *   connection open; uvu's CLI then waits on it forever (a CI run once hung for 90 minutes after a
 *   failure). Once the summary is printed we wait a moment for clean shutdown, then exit.
 * - A suite whose tests never ran fails the run. uvu swallows an error thrown by a `before` hook (its runner
 *   returns from `finally`), prints `(0 / 4)` and exits 0: a missing Chromium once passed that way. We read the
 *   per-suite counts uvu prints and fail the run, naming the suites, when fewer tests ran than were declared.
 * - A test that never settles cannot hold the run hostage: past `FRAGCACHE_TEST_TIMEOUT_S` (default
 *   20 minutes) the run stops with a failure.
 *
 * Usage: `node --import tsx test/run.ts [dir] [pattern]` (defaults: `test`, files ending `.test.ts`).
 */
import { parse } from 'uvu/parse';
import { run } from 'uvu/run';

const dir = process.argv[2] ?? 'test';
const pattern = new RegExp(process.argv[3] ?? '\\.test\\.ts$');
const limitSeconds = Number(process.env.FRAGCACHE_TEST_TIMEOUT_S ?? 1200);
const SHUTDOWN_GRACE_MS = 3000;

process.env.FORCE_COLOR ??= '1';
const { suites } = await parse(dir, pattern, { cwd: process.cwd() });

const watchdog = setTimeout(() => {
  // uvu prints each file's name as it starts it: the last one printed is the one that hung.
  console.error(`\ntest run: still running after ${limitSeconds} s; stopping (the hung file is the last one named above).`);
  process.exit(1);
}, limitSeconds * 1000);
watchdog.unref();

// uvu prints ` <suite name>  • • ×  (ran / total)` per suite; a suite with fewer passed than declared and no
// failure mark had its tests skipped by a failing hook.
const unrun: string[] = []
let line = ''
const write = process.stdout.write.bind(process.stdout)
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
  line += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()
  let newline = line.indexOf('\n')
  while (newline !== -1) {
    noteSuiteLine(line.slice(0, newline))
    line = line.slice(newline + 1)
    newline = line.indexOf('\n')
  }
  return (write as (...args: unknown[]) => boolean)(chunk, ...rest)
}) as typeof process.stdout.write

function noteSuiteLine(raw: string): void {
  const text = raw.replace(/\x1b\[[0-9;]*m/g, '')
  const counts = /^ (.+?) {2}.*\((\d+) \/ (\d+)\)\s*$/.exec(text)
  if (!counts) return
  const [, name = '', ran, declared] = counts
  if (Number(ran) < Number(declared) && !text.includes('✘')) unrun.push(`${name.trim()} (${ran} of ${declared} ran)`)
}

await run(suites, { bail: false })
if (unrun.length > 0) {
  console.error(`\ntest run: tests never ran in ${unrun.length} suite(s), most likely because a before hook threw (uvu does not print that error):`)
  for (const name of unrun) console.error(`  - ${name}`)
  process.exitCode = 1
}
clearTimeout(watchdog);
const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
setTimeout(() => {
  // Minus this timer; stdout and stderr are pipes or TTYs of their own and listed too.
  const open = process.getActiveResourcesInfo()
  open.splice(open.indexOf('Timeout'), 1)
  console.error(`test run: still open ${SHUTDOWN_GRACE_MS} ms after the last suite (${open.join(', ')}); exiting with ${code}.`);
  process.exit(code);
}, SHUTDOWN_GRACE_MS).unref();

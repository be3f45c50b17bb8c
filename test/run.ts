/**
 * The test runner behind `npm test`: uvu's own parse and run, with two guarantees uvu's CLI lacks.
 *
 * - The run ends when the suites end. A failed test can leave a server, a child process or a Redis
 *   connection open; uvu's CLI then waits on it forever (a CI run once hung for 90 minutes after a
 *   failure). Once the summary is printed we wait a moment for clean shutdown, then exit.
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

await run(suites, { bail: false });
clearTimeout(watchdog);
const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
setTimeout(() => {
  console.error(`test run: handles still open ${SHUTDOWN_GRACE_MS} ms after the last suite; exiting with ${code}.`);
  process.exit(code);
}, SHUTDOWN_GRACE_MS).unref();

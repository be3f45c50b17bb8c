import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { TOPOLOGIES, type TestRedis, startRedis } from '../support/redis-topology.ts'

const JOB = fileURLToPath(new URL('../support/slot-refresh-job.ts', import.meta.url))

/** Runs the job; resolves to whether it exited on its own within `ms` of saying `closed` (it is killed otherwise). */
function exitsWithin(seed: string, mode: 'end' | 'plain', ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', JOB, seed, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
    let timer: NodeJS.Timeout | undefined
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('closed') && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), ms)
    })
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (timer === undefined) reject(new Error(`the job ended before closing its Cluster (code ${code}, signal ${signal})`))
      else resolve(signal === null && code === 0)
    })
  })
}

if (TOPOLOGIES.includes('cluster')) {
  const closing = suite('endSlotRefresh :: a closed Cluster lets its process exit')
  let redis!: TestRedis
  closing.before(async () => {
    redis = await startRedis('cluster')
  })
  closing.after(async () => {
    await redis?.stop()
  })

  closing('ioredis alone: a slot refresh in flight at disconnect keeps re-arming its timer (the process never exits)', async () => {
    assert.is(await exitsWithin(redis.urls[0] as string, 'plain', 4000), false, 'ioredis fixed this: endSlotRefresh may go')
  })

  closing('with endSlotRefresh (what fragcache does on close): the process exits on its own', async () => {
    assert.is(await exitsWithin(redis.urls[0] as string, 'end', 4000), true)
  })

  closing.run()
}

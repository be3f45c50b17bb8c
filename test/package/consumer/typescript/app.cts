// The CommonJS app in TypeScript (node16 resolution reads fragcache's `require` types): compiled, then run.
import { Eta } from 'eta'
import express = require('express')
import fragcache = require('fragcache')
import fragcacheEta = require('fragcache/eta')
import fragcacheExpress = require('fragcache/express')
import fragcacheNunjucks = require('fragcache/nunjucks')
import nunjucks = require('nunjucks')
import { type Modules, run } from '../scenario.cjs'

async function main(): Promise<void> {
  const loadedTheOtherWay = await import('fragcache')
  const modules: Modules = { fragcache, loadedTheOtherWay, fragcacheNunjucks, fragcacheEta, fragcacheExpress, nunjucks, Eta, express }
  console.log(JSON.stringify(await run(modules, process.env['REDIS_URL'])))
}
main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})

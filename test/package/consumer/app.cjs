'use strict'
const { Eta } = require('eta')
const express = require('express')
const fragcache = require('fragcache')
const fragcacheEta = require('fragcache/eta')
const fragcacheExpress = require('fragcache/express')
const fragcacheNunjucks = require('fragcache/nunjucks')
const nunjucks = require('nunjucks')
const { run } = require('./scenario.cjs')

async function main() {
  const loadedTheOtherWay = await import('fragcache')
  const modules = { fragcache, loadedTheOtherWay, fragcacheNunjucks, fragcacheEta, fragcacheExpress, nunjucks, Eta, express }
  console.log(JSON.stringify(await run(modules, process.env.REDIS_URL)))
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})

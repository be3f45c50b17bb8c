import { createRequire } from 'node:module'
import { Eta } from 'eta'
import express from 'express'
import * as fragcache from 'fragcache'
import * as fragcacheEta from 'fragcache/eta'
import * as fragcacheExpress from 'fragcache/express'
import * as fragcacheNunjucks from 'fragcache/nunjucks'
import nunjucks from 'nunjucks'
import { run } from './scenario.cjs'

const loadedTheOtherWay = createRequire(import.meta.url)('fragcache')
const modules = { fragcache, loadedTheOtherWay, fragcacheNunjucks, fragcacheEta, fragcacheExpress, nunjucks, Eta, express }
console.log(JSON.stringify(await run(modules, process.env.REDIS_URL)))

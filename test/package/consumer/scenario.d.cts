// The types of scenario.cjs, for the TypeScript apps: the modules as the app loaded them.
import type * as fragcache from 'fragcache'
import type * as fragcacheNunjucks from 'fragcache/nunjucks'
import type * as fragcacheEta from 'fragcache/eta'
import type * as fragcacheExpress from 'fragcache/express'
import type nunjucks = require('nunjucks')
import type express = require('express')

export interface Modules {
  fragcache: typeof fragcache
  /** fragcache as the app's other module system loads it: import for a CommonJS app, require for an ES one. */
  loadedTheOtherWay: typeof fragcache
  fragcacheNunjucks: typeof fragcacheNunjucks
  fragcacheEta: typeof fragcacheEta
  fragcacheExpress: typeof fragcacheExpress
  nunjucks: typeof nunjucks
  /**
   * Eta's class, by the members the scenario uses: Eta ships separate declarations for import and require, and an
   * app's `import { Eta }` is not the type this CommonJS file would name.
   */
  Eta: new (config: { plugins: object[] }) => { renderStringAsync(source: string, data: object): Promise<string> }
  express: typeof express
}

export interface Report {
  oneCopy: boolean
  nunjucks: string[]
  eta: string[]
  page: string[]
  redis: string | null
}

export function run(modules: Modules, redisUrl: string | undefined): Promise<Report>

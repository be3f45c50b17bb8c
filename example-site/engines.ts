import { fileURLToPath } from 'node:url'
import { Eta } from 'eta'
import nunjucks from 'nunjucks'
import { fragmentCache } from '../extensions/eta/index.ts'
import { FragmentCacheExtension } from '../extensions/nunjucks/index.ts'
import { FragmentCache } from '../src/fragments.ts'
import type { TieredCache } from '../src/index.ts'
import { fetchForecast } from './upstream.ts'

/** The two template engines the demo renders every page with. */
export const ENGINES = ['nunjucks', 'eta'] as const
export type EngineName = (typeof ENGINES)[number]

/** Hits and misses of one fragment name in one engine. */
export interface FragmentCountRow {
  engine: EngineName
  name: string
  hits: number
  misses: number
}

/** Renders a named page (`home`, `article`, …) with the same data in either engine. */
export interface Renderers {
  render(engine: EngineName, page: string, data: Record<string, unknown>): Promise<string>
  /** Hits and misses per fragment and engine, since start. */
  fragmentCounts(): FragmentCountRow[]
}

const VIEWS = fileURLToPath(new URL('./views/', import.meta.url))

/**
 * Sets up Nunjucks and Eta on `example-site/views/`, each with fragcache's cache tag, and the one thing the
 * templates fetch themselves: the slow upstream's forecast (an async filter in Nunjucks, an awaited function in
 * Eta), so that a cached widget fragment never calls the upstream.
 *
 * @example
 * ```ts
 * const renderers = createRenderers(cache, upstream.url)
 * await renderers.render('eta', 'home', data)
 * ```
 */
export function createRenderers(cache: TieredCache, upstreamUrl: string): Renderers {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(`${VIEWS}nunjucks`), {
    autoescape: true,
    trimBlocks: true,
    lstripBlocks: true,
  })
  // One FragmentCache per engine over the same cache, so /_cache can tell the engines' counts apart.
  const fragments: Record<EngineName, FragmentCache> = { nunjucks: new FragmentCache(cache), eta: new FragmentCache(cache) }
  env.addExtension('FragmentCache', new FragmentCacheExtension(fragments.nunjucks))
  env.addFilter(
    'forecast',
    (city: string, done: (error: Error | null, value?: unknown) => void) => {
      fetchForecast(upstreamUrl, city).then((forecast) => done(null, forecast), done)
    },
    true,
  )
  const eta = new Eta({ views: `${VIEWS}eta`, cache: true, autoTrim: false, plugins: [fragmentCache(fragments.eta)] })
  const forecast = (city: string) => fetchForecast(upstreamUrl, city)

  return {
    render(engine, page, data) {
      if (engine === 'eta') return eta.renderAsync(`./${page}`, { ...data, forecast })
      return new Promise((resolve, reject) => {
        env.render(`${page}.njk`, data, (error, html) => (error ? reject(error) : resolve(html ?? '')))
      })
    },
    fragmentCounts() {
      return ENGINES.flatMap((engine) =>
        [...fragments[engine].counts()].map(([name, counts]) => ({ engine, name, ...counts })),
      ).sort((a, b) => a.name.localeCompare(b.name) || a.engine.localeCompare(b.engine))
    },
  }
}

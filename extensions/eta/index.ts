/**
 * The `<% cache %>` tag for Eta 4 (`fragcache/eta`): the plugin, whose hooks find each `cache`…`endcache` pair in a
 * parsed template and rewrite it into a call of the runtime. Keys, lookups, deps and single-flight renders are the
 * core's (`src/fragments.ts`).
 */
import type { EtaConfig } from 'eta'
import { InvalidArgumentError } from '../../src/errors.ts'
import { FragmentCache } from '../../src/fragments.ts'
import { TieredCache } from '../../src/tiered-cache.ts'
import type { AstNode } from './ast.ts'
import { type CompileState, type CompiledEtaTag, type Problem, finishCode, rewriteFragments } from './compile.ts'
import { etaParseError } from './locate.ts'
import { EtaFragmentRuntime } from './runtime.ts'

export type { EtaPlugin } from './ast.ts'
export type { CompiledEtaTag } from './compile.ts'
export { compiledFragments, deleteFragment, fragmentDependencies, fragmentKey, type FragmentAddress } from './keys.ts'
export { EtaFragmentRuntime } from './runtime.ts'

let nextId = 1

/**
 * The `<% cache %>` tag for Eta 4: `<% cache 300 "sidebar" it.lang %> … <% endcache %>` renders the body once per
 * key and emits the stored HTML afterwards without running the body. All caching decisions (key, tiers, deps,
 * single-flight, force refresh, outages) are {@link FragmentCache}'s; this plugin only parses the tag and rewrites
 * it into a call whose body is an async closure writing to a buffer of its own; only a miss is awaited.
 *
 * - Inputs are JavaScript expressions separated by spaces or commas: `TTL NAME input…`, plus the keyword inputs
 *   `deps=[…]` (data-version tags) and `ttl=…` (then the first positional input is the name); any other `name=` is
 *   refused, as in Nunjucks. `null` TTL: no expiry.
 * - Where JavaScript would join two inputs across a space, `"a" [x]` (member access) and `` x `y` `` (tagged
 *   template) are an error rather than a guess: a comma makes two inputs, parentheses one (`("a" [x])`).
 *   A `(` after a space always starts a new input (a call is written without the space). Operators join as in
 *   JavaScript: `it.page -1` is one input.
 * - Templates with cache tags render only asynchronously (`renderAsync`, `renderStringAsync`,
 *   `await includeAsync(…)`); a sync render fails with a {@link TemplateTagError} naming the template and line.
 * - A fragment's body is a function of its own: a `let`/`const` declared inside is not visible after `endcache`,
 *   and on a hit the body does not run at all, so it must only produce output.
 *
 * @example
 * ```ts
 * import { Eta } from 'eta'
 * import { createCache } from 'fragcache'
 * import { fragmentCache } from 'fragcache/eta'
 * const eta = new Eta({ views: 'views', cache: true, plugins: [fragmentCache(createCache())] })
 * const html = await eta.renderAsync('page', { lang: 'en' })
 * // views/page.eta:  <% cache 300 "sidebar" it.lang %> … <% endcache %>
 * ```
 */
export function fragmentCache(cache: TieredCache | FragmentCache): EtaFragmentPlugin {
  if (cache instanceof FragmentCache) return new EtaFragmentPlugin(cache)
  if (cache instanceof TieredCache) return new EtaFragmentPlugin(new FragmentCache(cache))
  throw new InvalidArgumentError('fragcache: fragmentCache() needs the cache from createCache() or a FragmentCache')
}


/**
 * The plugin object {@link fragmentCache} returns. `fragments` gives the per-name hit and miss counts.
 * @example
 * ```ts
 * const plugin = fragmentCache(cache)
 * new Eta({ views, plugins: [plugin] })
 * plugin.fragments.counts().get('sidebar') // { hits: 3, misses: 1 }
 * ```
 */
export class EtaFragmentPlugin {
  readonly fragments: FragmentCache
  /** Found by compiled templates through `this.config.plugins` (compiled code cannot close over objects). */
  readonly fragcacheEtaId = nextId++
  readonly fragcacheEtaRuntime: EtaFragmentRuntime
  #source: string | undefined
  #state: CompileState | undefined
  #parseProblem: Problem | undefined
  /** Whether the source being compiled has something that reads as a cache tag. */
  #mentionsCacheTag = false
  #compiled: CompiledEtaTag[] = []

  constructor(fragments: FragmentCache) {
    this.fragments = fragments
    this.fragcacheEtaRuntime = new EtaFragmentRuntime(fragments)
  }

  /**
   * Eta hook: remembers the template source, to give each tag its line. A template with cache tags that Eta cannot
   * parse (an unclosed tag or string) is replaced by an empty one, whose compiled function throws Eta's parse error at
   * render time with the template's name, known only then.
   */
  processTemplate(source: string, config?: EtaConfig): string {
    this.#state = undefined
    this.#compiled = []
    this.#parseProblem = undefined
    const open = config?.tags?.[0] ?? '<%'
    const hasCacheTag = new RegExp(`${open.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[-_]?\\s*(?:end)?cache\\b`).test(source)
    this.#mentionsCacheTag = hasCacheTag
    const broken = hasCacheTag ? etaParseError(source, config) : undefined
    if (broken !== undefined) {
      this.#source = config?.rmWhitespace ? source.replace(/[\r\n]+/g, '\n').replace(/^\s+|\s+$/gm, '') : source
      this.#parseProblem = { kind: 'syntax', position: broken.position, message: `Bad template syntax: ${broken.reason}` }
      return ''
    }
    this.#source = source
    return source
  }

  /** The cache tags the last template compiled has (for `fragmentKey` and the dependency listing). */
  lastCompiled(): readonly CompiledEtaTag[] {
    return this.#compiled
  }

  /** Eta hook: rewrites each `cache`…`endcache` pair into a call of the runtime (see `rewriteFragments`). */
  processAST(ast: AstNode[], config?: EtaConfig): AstNode[] {
    const source = this.#source ?? ''
    this.#source = undefined
    if (this.#parseProblem !== undefined) {
      // Eta parsed the stand-in: report the real template's parse error with its name, at render time.
      this.#state = { pluginId: this.fragcacheEtaId, source, tags: [], declared: [], collections: [], nodes: [], positions: new Map(), written: new Set(), problem: this.#parseProblem }
      this.#parseProblem = undefined
      return []
    }
    this.#state = rewriteFragments(ast, source, config, this.fragcacheEtaId, this.#compiled, this.#mentionsCacheTag)
    return this.#state?.nodes ?? ast
  }

  /** Eta hook: completes the compiled function of a template with cache tags (see `finishCode`). */
  processFnString(fn: string, config?: EtaConfig): string {
    const state = this.#state
    this.#state = undefined
    return state === undefined ? fn : finishCode(fn, state, config)
  }
}

/**
 * The `<% cache %>` tag for Eta 4 (`fragcache/eta`): the plugin, whose hooks find each `cache`…`endcache` pair in a
 * parsed template and rewrite it into a call of the runtime. Keys, lookups, deps and single-flight renders are the
 * core's (`src/fragments.ts`).
 */
import type { EtaConfig } from 'eta'
import { InvalidArgumentError, describe } from '../../src/errors.ts'
import { FragmentCache, sourceDigest } from '../../src/fragments.ts'
import { codeOf, referencesInCode } from './dependencies.ts'
import { TieredCache } from '../../src/tiered-cache.ts'
import { type AstNode, CLOSE, type TagNode, isCacheTag, tagLines } from './ast.ts'
import { analyseBody } from './body-analysis.ts'
import { type TagInfo, closeCode, compiledAs, explainedCode, openCode, preludeCode, tagInSyncFunction, throwCode, withItemValues } from './codegen.ts'
import { EtaFragmentRuntime } from './runtime.ts'
import { type ParsedTag, literalName, parseTag } from './tag-grammar.ts'

export type { EtaPlugin } from './ast.ts'
export { compiledFragments, deleteFragment, fragmentDependencies, fragmentKey, type FragmentAddress } from './keys.ts'
export { EtaFragmentRuntime } from './runtime.ts'

let nextId = 1
/** Counts compiles, so that each compiled template reads its fragments' dependencies afresh. */
let compiles = 0

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

/** One cache tag of a compiled template, as `fragmentKey` needs it (see `etaFragmentDigest` for `own` and `references`). */
export interface CompiledEtaTag {
  readonly line: number
  readonly text: string
  readonly name: string | undefined
  readonly own: string
  readonly references: string
}

/** What `processAST` learned about one template, for `processFnString` (Eta calls them in turn, synchronously). */
interface CompileState {
  tags: TagInfo[]
  problem?: { line: number; message: string }
  /** Names declared at the top of a fragment body, with the fragment's line and tag: `[name, line, text]`. */
  declared: [string, number, string][]
  /** The `collection=` tags, whose loop `processFnString` finds. */
  collections: { id: number; info: TagInfo; parsed: ParsedTag }[]
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
  #compiled: CompiledEtaTag[] = []

  constructor(fragments: FragmentCache) {
    this.fragments = fragments
    this.fragcacheEtaRuntime = new EtaFragmentRuntime(fragments)
  }

  /** Eta hook: remembers the template source, to give each tag its line. */
  processTemplate(source: string): string {
    this.#source = source
    this.#state = undefined
    this.#compiled = []
    return source
  }

  /** The cache tags the last template compiled has (for `fragmentKey` and the dependency listing). */
  lastCompiled(): readonly CompiledEtaTag[] {
    return this.#compiled
  }

  /** Eta hook: rewrites each `cache`…`endcache` pair into a call with an async closure body (see {@link openCode}). */
  processAST(ast: AstNode[], config?: EtaConfig): AstNode[] {
    const source = this.#source ?? ''
    this.#source = undefined
    this.#state = undefined
    if (!ast.some(isCacheTag)) return ast
    const state: CompileState = { tags: [], declared: [], collections: [] }
    this.#state = state
    const delimiters = config?.tags ?? ['<%', '%>']
    const lines = tagLines(config?.rmWhitespace ? source.replace(/[\r\n]+/g, '\n').replace(/^\s+|\s+$/gm, '') : source, ast, delimiters[0])
    const out: AstNode[] = []
    const open: { index: number; info: TagInfo; node: TagNode; parsed: ParsedTag; id: number }[] = []
    for (let i = 0; i < ast.length; i++) {
      const node = ast[i] as AstNode
      if (!isCacheTag(node)) {
        out.push(node)
        continue
      }
      const info: TagInfo = { line: node.lineNo ?? lines.get(i) ?? 0, text: `${delimiters[0]} ${node.val} ${delimiters[1]}` }
      if (node.val === CLOSE) {
        const frame = open.pop()
        if (frame === undefined) {
          state.problem = { line: info.line, message: `fragcache: ${info.text} has no open ${delimiters[0]} cache … ${delimiters[1]} before it` }
          return ast
        }
        const body = ast.slice(frame.index + 1, i)
        const site = { key: `${this.fragcacheEtaId}:${++compiles}:${frame.id}`, own: sourceDigest(JSON.stringify(body)), references: JSON.stringify(referencesInCode(codeOf(body))) }
        frame.node.val = openCode(frame.id, frame.info, frame.parsed, site)
        this.#compiled.push({ line: frame.info.line, text: frame.info.text, name: literalName(frame.parsed.name), own: site.own, references: site.references })
        const analysis = analyseBody(body)
        if (analysis.problem !== undefined) {
          state.problem = { line: frame.info.line, message: `fragcache: ${frame.info.text} ${analysis.problem}` }
          return ast
        }
        for (const name of analysis.declared) state.declared.push([name, frame.info.line, frame.info.text])
        out.push({ t: 'e', val: closeCode(frame.id), lineNo: node.lineNo })
        continue
      }
      let parsed: ParsedTag
      try {
        parsed = parseTag(node.val.slice('cache'.length))
      } catch (error) {
        state.problem = { line: info.line, message: `fragcache: ${info.text}: ${describe(error)}` }
        return ast
      }
      const replacement: TagNode = { t: 'e', val: '', lineNo: node.lineNo }
      state.tags.push(info)
      open.push({ index: i, info, node: replacement, parsed, id: state.tags.length })
      if (parsed.collection !== undefined) state.collections.push({ id: state.tags.length, info, parsed })
      out.push(replacement)
    }
    const unclosed = open.pop()
    if (unclosed !== undefined) {
      state.problem = {
        line: unclosed.info.line,
        message: `fragcache: ${unclosed.info.text} is never closed: add ${delimiters[0]} endcache ${delimiters[1]} after its body`,
      }
      return ast
    }
    return out
  }

  /** Eta hook: adds the runtime lookup, and turns what cannot run (sync render, a tag in a sync callback) into a clear error. */
  processFnString(fn: string, config?: EtaConfig): string {
    const state = this.#state
    this.#state = undefined
    if (state === undefined) return fn
    const prelude = preludeCode(this.fragcacheEtaId)
    const fail = (line: number, message: string): string => prelude + throwCode(line, message)
    if (state.problem) return fail(state.problem.line, state.problem.message)
    const first = state.tags[0] as TagInfo
    const compiled = compiledAs(fn)
    if (compiled === 'sync') {
      return fail(
        first.line,
        `fragcache: ${first.text} needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %>`,
      )
    }
    if (compiled === 'unknown') {
      throw new Error('fragcache: this version of Eta compiles templates in a way the fragcache plugin does not know (it supports Eta 4)')
    }
    const code = prelude + (state.declared.length === 0 ? fn : explainedCode(fn, state.declared))
    const misplaced = tagInSyncFunction(code, config?.varName ?? 'it', state.tags)
    if (misplaced !== undefined) {
      return fail(
        misplaced.line,
        `fragcache: ${misplaced.text} is inside a function that is not async (a forEach or map callback?), so it cannot wait for the cache: use a for…of loop, or an async function whose result is awaited`,
      )
    }
    let withItems = code
    for (const { id, info, parsed } of state.collections) {
      const rewritten = withItemValues(withItems, config?.varName ?? 'it', id, parsed)
      if (rewritten === undefined) return fail(info.line, `fragcache: ${info.text}: collection= needs the cache tag inside the for…of loop over that collection`)
      withItems = rewritten
    }
    return withItems
  }
}

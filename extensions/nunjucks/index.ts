/**
 * The `{% cache %}` tag for Nunjucks (`fragcache/nunjucks`): the extension class Nunjucks calls to parse a tag and,
 * at render time, to run it. Keys, lookups, deps and single-flight renders are the core's (`src/fragments.ts`).
 */
import nunjucks from 'nunjucks'
import { describe } from '../../src/errors.ts'
import { type CacheTagItem, type CacheTagSyntax, FragmentCache, type FragmentCall, type PreparedFragment, cacheTagArguments } from '../../src/fragments.ts'
import type { TieredCache } from '../../src/tiered-cache.ts'
import { type ItemCall, ItemCallCollector, itemCallNode } from './collection.ts'
import { UNCOMPILABLE, WAITLESS, enclosingCapture, enclosingLoop } from './constructs.ts'
import { lexSetup, nunjucksFragmentDigest } from './dependencies.ts'
import { sourceExcerpt } from '../../src/fragment-errors.ts'
import { NunjucksTagError, type TagLocation, afterError, keepTagErrors, reportAtTag, syncRenderError, tagError, unhookedError, waitlessError } from './errors.ts'
import {
  type PendingFragment,
  type RenderSession,
  currentSession,
  installRenderTracking,
  isSyncRender,
  templateBeingCompiled,
  trackPending,
} from './render-tracking.ts'
import type { Body, Continuation, Lexer, Nodes, NunjucksTemplateError, Parser, RenderContext, TemplateNode, Token } from './shapes.ts'

export { compiledFragments, deleteFragment, fragmentDependencies, fragmentKey, type FragmentAddress } from './keys.ts'

const { runtime } = nunjucks
const SYNTAX: CacheTagSyntax = { example: '{% cache 300 "sidebar" lang %}', keywordsLast: true }

/**
 * The `{% cache %}` tag for Nunjucks. It only parses and glues: keys, lookups, deps and single-flight renders
 * are {@link FragmentCache}'s.
 *
 * `{% cache TTL NAME input… [deps=[…]] [ttl=…] [grace=…] %}…{% endcache %}` — TTL in seconds or `null` (no expiry); NAME a
 * bare word (taken literally, as in Django) or any expression; inputs separated by spaces or commas. The key
 * includes a digest of the fragment's own source, so editing its markup changes it.
 *
 * Where Nunjucks cannot wait for an asynchronous tag (macros, `{% set %}…{% endset %}`, `{% filter %}` and
 * `{% call %}` blocks, includes inside a plain `{% if %}`/`{% for %}`, and `render()` without a callback) the
 * tag answers from memory (request scope or L1) when it can, and otherwise fails the render with an error that
 * names the template, the line and the construct. A fragment is never silently missing.
 *
 * @example
 * ```ts
 * import nunjucks from 'nunjucks'
 * import { createCache } from 'fragcache'
 * import { FragmentCacheExtension } from 'fragcache/nunjucks'
 *
 * const cache = createCache({ redis: process.env.REDIS_URL })
 * const env = new nunjucks.Environment(new nunjucks.FileSystemLoader('views'), { autoescape: true })
 * env.addExtension('FragmentCache', new FragmentCacheExtension(cache))
 * // views/page.njk: {% cache 300 sidebar lang %}…{% endcache %}
 * env.render('page.njk', { lang: 'en' }, (err, html) => { … })
 * ```
 */
export class FragmentCacheExtension {
  readonly tags = ['cache']
  /** The fragment core this tag delegates to (its `counts()` tell hits and misses per fragment name). */
  readonly fragments: FragmentCache
  readonly #items = new ItemCallCollector()

  constructor(cache: TieredCache | FragmentCache) {
    this.fragments = cache instanceof FragmentCache ? cache : new FragmentCache(cache)
    installRenderTracking()
    keepTagErrors()
  }

  /** Called by the Nunjucks parser at `{% cache`; returns the node that calls {@link run} at render time. */
  parse(parser: Parser, nodes: Nodes, lexer: Lexer): TemplateNode {
    const tag = parser.nextToken() as Token
    const compile = templateBeingCompiled()
    const at: TagLocation = {
      template: compile.name,
      line: tag.lineno + 1,
      column: tag.colno + 1,
      excerpt: sourceExcerpt(parser.tokens.str, tag.lineno + 1, tag.colno + 1),
    }
    const fail: (reason: string) => never = (reason) => {
      throw new NunjucksTagError(at, `fragcache: ${reason}`)
    }
    const tokens = parser.tokens
    const tagStart = tokens.str.lastIndexOf(tokens.tags.BLOCK_START, tokens.index)

    const items: CacheTagItem<TemplateNode>[] = []
    for (;;) {
      const next = parser.peekToken()
      if (next === null) fail('the {% cache %} tag is not closed with %}')
      if (next.type === lexer.TOKEN_BLOCK_END) break
      if (next.type === lexer.TOKEN_COMMA) {
        parser.nextToken()
        continue
      }
      const expression = parser.parseExpression()
      if (parser.skipValue(lexer.TOKEN_OPERATOR, '=')) {
        items.push({ keyword: expression.typename === 'Symbol' ? String(expression.value) : '', value: parser.parseExpression() })
      } else {
        items.push({ value: expression })
      }
    }
    parser.advanceAfterBlockEnd(tag.value)
    const { ttl, name: nameNode, inputs, keywords, collection } = cacheTagArguments(items, SYNTAX, fail)
    // Django style: a bare word is the name itself, not a variable.
    const name = nameNode.typename === 'Symbol' ? new nodes.Literal(nameNode.lineno, nameNode.colno, String(nameNode.value)) : nameNode

    const bodyStart = tokens.index
    let body: TemplateNode
    try {
      body = parser.parseUntilBlocks('endcache')
    } catch (error) {
      const found = /^unknown block tag: (end\w+)/.exec((error as Error).message)
      if (found === null) throw error
      return fail(`the {% cache %} tag has no {% endcache %}: found {% ${found[1]} %} first`)
    }
    if (parser.peekToken() === null) fail('the {% cache %} tag has no {% endcache %} before the end of the template')
    const bodyEnd = tokens.str.lastIndexOf(tokens.tags.BLOCK_START, tokens.index)
    parser.advanceAfterBlockEnd()

    const enclosing = enclosingCapture(tokens, lexer, tagStart)
    const uncompilable = UNCOMPILABLE[enclosing]
    if (uncompilable !== undefined) {
      fail(`the {% cache %} tag cannot be used inside a ${uncompilable}: Nunjucks cannot compile an asynchronous tag there; put the cache tag around the block instead`)
    }
    const { digest, dependencies } = nunjucksFragmentDigest(tokens.str, bodyStart, bodyEnd, compile.name, compile.env, lexSetup(tokens, lexer), compile.memo)
    compile.tags.push({
      template: compile.name,
      line: at.line,
      text: tokens.str.slice(tagStart, bodyStart).trim(),
      name: name.typename === 'Literal' && ['string', 'number'].includes(typeof name.value) ? String(name.value) : undefined,
      digest,
      dependencies,
    })
    const literal = (value: unknown) => new nodes.Literal(tag.lineno, tag.colno, value)
    // The FragmentCall itself, as an object literal of the compiled template: handed to the core as it is.
    const fields = (): Record<string, TemplateNode> => ({
      ttl,
      name,
      inputs: new nodes.Array(tag.lineno, tag.colno, inputs),
      ...keywords,
      digest: literal(digest),
      template: literal(at.template),
      line: literal(at.line),
    })
    const call = () => new nodes.Dict(tag.lineno, tag.colno, Object.entries(fields()).map(([field, value]) => new nodes.Pair(tag.lineno, tag.colno, literal(field), value)))
    let itemCall = literal(null)
    if (collection !== undefined) {
      const loop = enclosingLoop(tokens, lexer, tagStart)
      if (loop === undefined) fail('collection= needs the cache tag inside the {% for %} loop over that collection')
      if (loop.length !== 1) fail(`collection= needs a loop over one variable; this one has ${loop.join(', ')}`)
      itemCall = itemCallNode(nodes, this, tag, loop[0] as string, call())
    }
    const args = new nodes.NodeList(tag.lineno, tag.colno, [call(), literal(at.column), literal(at.excerpt), literal(enclosing), collection ?? literal(null), itemCall])
    return new nodes.CallExtensionAsync(this, 'run', args, [body])
  }

  /** Called by the compiled macro of a `collection=` tag with the tag's call for one item (see `itemCallNode`). */
  collect(_context: RenderContext, call: FragmentCall): string {
    this.#items.collect(call)
    return ''
  }

  /**
   * Called by the compiled template for every `{% cache %}`: answers from memory synchronously when it can,
   * else (where Nunjucks can wait) through {@link FragmentCache.render}.
   */
  run(
    context: RenderContext,
    call: FragmentCall,
    column: number,
    excerpt: string,
    enclosing: string,
    collection: unknown,
    itemCall: ItemCall | null,
    body: Body,
    callback: Continuation,
  ): void {
    const session = currentSession(context)
    const { template, line } = call
    if (itemCall !== null && session !== undefined && !isSyncRender(session) && WAITLESS[enclosing] === undefined) {
      const prefetched = this.fragments.prefetchCollection(context, `${template}:${line}:${column}`, collection, (item) => this.#items.callFor(itemCall, item))
      if (prefetched !== undefined) {
        prefetched
          .then(() => this.run(context, call, column, excerpt, enclosing, collection, null, body, callback))
          .catch((error: unknown) => callback(reportAtTag(error, { template, line, column, excerpt }, session)))
        return
      }
    }
    let fragment: PreparedFragment
    try {
      fragment = this.fragments.prepare(call)
    } catch (error) {
      return fail(session, callback, reportAtTag(error, { template, line, column, excerpt }, session))
    }
    const stored = this.fragments.peek(fragment)
    if (stored !== undefined) {
      // Synchronous: works in every construct, and errors after the tag keep Nunjucks' own line numbers.
      callback(null, new runtime.SafeString(stored))
      return
    }
    const pending: PendingFragment = { name: fragment.name, template, line, column, excerpt, abandoned: false }
    const construct = WAITLESS[enclosing]
    if (construct !== undefined) return fail(session, callback, waitlessError(pending, construct, session))
    if (session === undefined) return fail(session, callback, unhookedError(pending))
    if (isSyncRender(session)) return fail(session, callback, syncRenderError(pending, session))

    const settle = trackPending(session, pending)
    this.fragments.render(fragment, () => renderBody(body, pending)).then(
      (html) => {
        settle()
        try {
          callback(null, new runtime.SafeString(html))
        } catch (error) {
          // The rest of the template threw; without this the render would never finish.
          callback(afterError(error, pending, session))
        }
      },
      (error: unknown) => {
        settle()
        callback(reportAtTag(error, pending, session))
      },
    ).catch((error: unknown) => {
      process.emitWarning(`fragcache: a Nunjucks continuation threw while reporting an error: ${describe(error)}`)
    })
  }
}

/**
 * Reports an error found before anything asynchronous started: a sync render needs it thrown (Nunjucks rethrows
 * it from its root function); an async one gets it through the callback, whoever called the tag.
 */
function fail(session: RenderSession | undefined, callback: Continuation, error: NunjucksTemplateError): void {
  if (session !== undefined && isSyncRender(session)) throw error
  callback(error)
}

/** Runs the tag's compiled body into its own buffer; the output of an abandoned fragment is refused (never stored). */
function renderBody(body: Body, fragment: PendingFragment): Promise<string> {
  return new Promise((resolve, reject) => {
    const refuse = () =>
      reject(tagError(fragment, `fragcache: the render of fragment "${fragment.name}" was abandoned by Nunjucks; its output is not stored`))
    if (fragment.abandoned) return refuse()
    try {
      body((err, output) => {
        if (err) reject(err)
        else if (fragment.abandoned) refuse()
        else resolve(output as string)
      })
    } catch (error) {
      reject(error)
    }
  })
}

import { AsyncLocalStorage } from 'node:async_hooks'
import nunjucks from 'nunjucks'
import { TemplateTagError, describe } from '../src/errors.ts'
import { FragmentCache, type PreparedFragment, sourceDigest } from '../src/fragments.ts'
import type { TieredCache } from '../src/tiered-cache.ts'

// ─── The parts of Nunjucks' undocumented parser API this extension uses ─────────────────────────────────────

interface Token {
  type: string
  value: string
  /** 0-based. */
  lineno: number
  /** 0-based. */
  colno: number
}

interface Tokenizer {
  str: string
  index: number
  tags: { BLOCK_START: string; BLOCK_END: string; VARIABLE_START: string; VARIABLE_END: string; COMMENT_START: string; COMMENT_END: string }
  trimBlocks: boolean
  lstripBlocks: boolean
  nextToken(): Token | null
}

interface TemplateNode {
  typename: string
  lineno: number
  colno: number
  value?: unknown
}

interface Parser {
  tokens: Tokenizer
  peekToken(): Token | null
  nextToken(): Token | null
  skipValue(type: string, value: string): boolean
  parseExpression(): TemplateNode
  parseUntilBlocks(...names: string[]): TemplateNode
  advanceAfterBlockEnd(name?: string): Token
}

type NodeClass = new (lineno: number, colno: number, ...fields: unknown[]) => TemplateNode

interface Nodes {
  NodeList: NodeClass
  Literal: NodeClass
  Array: NodeClass
  CallExtensionAsync: new (ext: object, prop: string, args: TemplateNode, contentArgs: TemplateNode[]) => TemplateNode
}

interface Lexer {
  TOKEN_BLOCK_START: string
  TOKEN_BLOCK_END: string
  TOKEN_COMMA: string
  TOKEN_OPERATOR: string
  TOKEN_SYMBOL: string
  TOKEN_WHITESPACE: string
  lex(src: string, opts: object): Tokenizer
}

/** What Nunjucks' compiled code hands the extension as `context` (only its identity is used). */
type RenderContext = object

/** The body of the tag, as compiled by Nunjucks: renders into its own buffer and reports through `cb`. */
type Body = (cb: (err: unknown, output?: unknown) => void) => unknown

/** The callback of a `CallExtensionAsync` node: the compiled continuation of the template after the tag. */
type Continuation = (err: unknown, output?: unknown) => void

type RootRenderFunc = (env: unknown, context: RenderContext, frame: Frame, runtime: unknown, cb: Continuation) => void

interface Frame {
  parent?: Frame | undefined
}

/** What a Nunjucks TemplateError carries beside an Error (see nunjucks/src/lib.js). */
interface NunjucksTemplateError extends Error {
  lineno?: number
  colno?: number
  Update(path: string): NunjucksTemplateError
}

const { lib, runtime } = nunjucks
const TemplateError = lib.TemplateError as unknown as new (message: unknown, lineno?: number, colno?: number) => NunjucksTemplateError

// ─── Render tracking: which render a tag belongs to, and whether Nunjucks is still waiting for it ───────────
//
// Nunjucks drops the output of an asynchronous tag in constructs it compiles as synchronous code (macros,
// `{% set %}…{% endset %}`, `{% filter %}`, and `{% include %}`/`{% block %}` calls placed inside a plain
// `{% if %}`/`{% for %}`; upstream issues 792, 815, 1375): the template's root function reports its output
// while the tag is still waiting. So every render is a session, and a session that finishes while one of the
// fragments started inside it has not answered yet fails the render instead of returning a page without it.

/** A fragment whose HTML is being fetched or rendered asynchronously. */
interface PendingFragment {
  readonly name: string
  readonly template: string
  readonly line: number
  readonly column: number
  /**
   * Set when a render finished while this fragment was pending: its output is lost, and the variables its body
   * reads may already belong to a later loop iteration, so it must not be stored either.
   */
  abandoned: boolean
}

/** One call of `Template.render` (a page, or a template it includes). */
interface RenderSession {
  readonly template: string
  /** Rendered without a callback: nothing asynchronous can be waited for. */
  readonly sync: boolean
  readonly parent: RenderSession | undefined
  readonly pending: Set<PendingFragment>
  done: boolean
}

const STRING_TEMPLATE = '(string)'
const sessionStorage = new AsyncLocalStorage<RenderSession>()
// The session rides on Nunjucks' own per-render objects (a symbol property is much cheaper than a WeakMap).
const SESSION = Symbol('fragcache.renderSession')
type Tagged = { [SESSION]?: RenderSession }
/** The session `Template.render` is about to start, handed to the root function it calls next (synchronously). */
let starting: RenderSession | undefined
/** Names of the templates being compiled, innermost last (compilation is synchronous). */
const compiling: string[] = []
const HOOKED = Symbol.for('fragcache.nunjucksHooks')

interface TemplateInternals {
  path?: string
  rootRenderFunc: RootRenderFunc
  [HOOKED]?: true
}

/**
 * Hooks `Template.prototype.render` and `_compile` of the nunjucks module (once per process):
 * `_compile` tells the parser which template it is parsing (for error messages), and wraps the compiled root
 * function so a render that finishes while one of its fragments is pending fails; `render` opens the session.
 */
function installRenderTracking(): void {
  const proto = nunjucks.Template.prototype as unknown as Record<PropertyKey, unknown>
  if (proto[HOOKED] === true) return
  proto[HOOKED] = true
  const originalCompile = proto._compile as (this: TemplateInternals) => void
  const originalRender = proto.render as (this: TemplateInternals, ...args: unknown[]) => unknown

  proto._compile = function compileTracked(this: TemplateInternals): void {
    compiling.push(this.path ?? STRING_TEMPLATE)
    try {
      originalCompile.call(this)
    } finally {
      compiling.pop()
    }
    this.rootRenderFunc = trackRoot(this.rootRenderFunc)
  }

  proto.render = function renderTracked(this: TemplateInternals, ...args: unknown[]): unknown {
    const [ctx, parentFrame] = args
    const callback = typeof ctx === 'function' ? ctx : typeof parentFrame === 'function' ? parentFrame : args[2]
    const parent = (isFrame(parentFrame) ? sessionOfFrame(parentFrame) : undefined) ?? sessionStorage.getStore()
    const session: RenderSession = {
      template: this.path ?? STRING_TEMPLATE,
      sync: typeof callback !== 'function' || parent?.sync === true,
      parent,
      pending: new Set(),
      done: false,
    }
    starting = session
    try {
      return sessionStorage.run(session, () => originalRender.apply(this, args))
    } finally {
      starting = undefined
    }
  }
}

function trackRoot(root: RootRenderFunc): RootRenderFunc {
  return function rootTracked(this: unknown, env, context, frame, rt, cb) {
    const session = starting
    // Called by `{% extends %}` or an import, not by Template.render: the caller's session covers it.
    if (session === undefined) return root.call(this, env, context, frame, rt, cb)
    starting = undefined
    ;(context as Tagged)[SESSION] = session
    ;(frame as Tagged)[SESSION] = session
    return root.call(this, env, context, frame, rt, function finished(err: unknown, output?: unknown) {
      if (session.done) {
        // Nunjucks may report twice (an error, then the output of the rest of the page). A sync render must
        // see the second call too: Nunjucks throws its error from there.
        if (session.sync) cb(err, output)
        return
      }
      session.done = true
      const dropped = session.pending.values().next().value
      for (const fragment of session.pending) fragment.abandoned = true
      if (err == null && dropped !== undefined) {
        cb(droppedError(dropped, session))
        return
      }
      cb(err, output)
    })
  }
}

function isFrame(value: unknown): value is Frame {
  return typeof value === 'object' && value !== null && 'parent' in value
}

function sessionOfFrame(frame: Frame | undefined): RenderSession | undefined {
  for (let f = frame; f !== undefined && f !== null; f = f.parent) {
    const session = (f as Tagged)[SESSION]
    if (session !== undefined) return session
  }
  return undefined
}

function currentSession(context: RenderContext): RenderSession | undefined {
  return (context as Tagged)[SESSION] ?? sessionStorage.getStore()
}

function isSyncRender(session: RenderSession): boolean {
  for (let s: RenderSession | undefined = session; s !== undefined; s = s.parent) if (!s.done && s.sync) return true
  return false
}

/** Marks `fragment` pending in its render and every render around it; returns the function that clears it. */
function trackPending(session: RenderSession, fragment: PendingFragment): () => void {
  const sessions: RenderSession[] = []
  for (let s: RenderSession | undefined = session; s !== undefined; s = s.parent) {
    if (s.done) continue
    s.pending.add(fragment)
    sessions.push(s)
  }
  return () => {
    for (const s of sessions) s.pending.delete(fragment)
  }
}

// ─── Errors ───────────────────────────────────────────────────────────────────────────────────────────────

/** Constructs whose body Nunjucks runs synchronously: a tag there can only answer from memory. */
const WAITLESS: Record<string, { label: string; advice: string }> = {
  macro: { label: '{% macro %}', advice: 'put the cache tag around the macro call instead' },
  set: { label: '{% set %}…{% endset %} block', advice: 'put the cache tag around the place the variable is output instead' },
}

/** Constructs in which Nunjucks cannot even compile an asynchronous tag (its transformer mistakes it for a filter). */
const UNCOMPILABLE: Record<string, string> = {
  filter: '{% filter %}…{% endfilter %} block',
  call: '{% call %}…{% endcall %} block',
}

/**
 * A Nunjucks TemplateError at the tag. Nunjucks prefixes the path of the template being rendered; when the tag
 * lives in another template (an included one, a layout), that path is named first, as Nunjucks does for includes.
 */
function templateError(error: unknown, fragment: { template: string; line: number; column: number }, session?: RenderSession): NunjucksTemplateError {
  const wrapped = new TemplateError(error, fragment.line, fragment.column)
  // Our own messages already name the template and line; Nunjucks would prefix them with the class name.
  if (error instanceof TemplateTagError) wrapped.message = error.message
  if (session !== undefined && session.template !== fragment.template) wrapped.Update(fragment.template)
  return wrapped
}

function tagError(fragment: PendingFragment, message: string, session?: RenderSession): NunjucksTemplateError {
  return templateError(new TemplateTagError(fragment.template, fragment.line, message), fragment, session)
}

function droppedError(fragment: PendingFragment, session: RenderSession): NunjucksTemplateError {
  return tagError(
    fragment,
    `fragcache: fragment "${fragment.name}" was not in memory, and Nunjucks finished rendering "${session.template}" ` +
      'without waiting for it, so its output would have been lost. This happens when the cache tag is reached through ' +
      'an {% include %} or a {% block %} placed inside a plain {% if %} or {% for %}: use {% ifAsync %} / {% asyncEach %} ' +
      'there, or put a cache tag around the include',
    session,
  )
}

/** An error thrown by the body, or by the template after the tag, reported at the tag unless it knows its line. */
function bodyError(error: unknown, fragment: PendingFragment, session: RenderSession | undefined, where: string): NunjucksTemplateError {
  if (error instanceof Error && typeof (error as NunjucksTemplateError).lineno === 'number') return error as NunjucksTemplateError
  const wrapped = templateError(error, fragment, session)
  wrapped.message += ` (${where} fragment "${fragment.name}", ${fragment.template}, line ${fragment.line})`
  return wrapped
}

// ─── Parsing ──────────────────────────────────────────────────────────────────────────────────────────────

const KEYWORDS = new Set(['deps', 'ttl'])
const CAPTURE_ENDS: Record<string, string> = { macro: 'endmacro', call: 'endcall', set: 'endset', filter: 'endfilter' }

/**
 * The innermost construct around `end` (a source offset) in which Nunjucks runs its body synchronously
 * (`macro`, `call`, `set` block, `filter` block), or '' when there is none. Lexes the source before the tag.
 */
function enclosingCapture(tokens: Tokenizer, lexer: Lexer, end: number): string {
  try {
    const t = tokens.tags
    const lexed = lexer.lex(tokens.str.slice(0, end), {
      tags: {
        blockStart: t.BLOCK_START,
        blockEnd: t.BLOCK_END,
        variableStart: t.VARIABLE_START,
        variableEnd: t.VARIABLE_END,
        commentStart: t.COMMENT_START,
        commentEnd: t.COMMENT_END,
      },
      trimBlocks: tokens.trimBlocks,
      lstripBlocks: tokens.lstripBlocks,
    })
    const open: string[] = []
    let raw: string | undefined
    let token: Token | null
    while ((token = lexed.nextToken()) !== null) {
      if (token.type !== lexer.TOKEN_BLOCK_START) continue
      const statement: Token[] = []
      while ((token = lexed.nextToken()) !== null && token.type !== lexer.TOKEN_BLOCK_END) {
        if (token.type !== lexer.TOKEN_WHITESPACE) statement.push(token)
      }
      const name = statement[0]?.type === lexer.TOKEN_SYMBOL ? statement[0].value : ''
      if (raw !== undefined) {
        if (name === `end${raw}`) raw = undefined
      } else if (name === 'raw' || name === 'verbatim') {
        raw = name
      } else if (name === 'set') {
        if (!statement.some((s) => s.type === lexer.TOKEN_OPERATOR && s.value === '=')) open.push('set')
      } else if (name in CAPTURE_ENDS) {
        open.push(name)
      } else if (open.length > 0 && CAPTURE_ENDS[open[open.length - 1] as string] === name) {
        open.pop()
      }
    }
    return open[open.length - 1] ?? ''
  } catch {
    return '' // only the wording of an error depends on it; the render-time check still catches a drop
  }
}

// ─── The extension ────────────────────────────────────────────────────────────────────────────────────────

/**
 * The `{% cache %}` tag for Nunjucks. It only parses and glues: keys, lookups, deps and single-flight renders
 * are {@link FragmentCache}'s.
 *
 * `{% cache TTL NAME input… [deps=[…]] [ttl=…] %}…{% endcache %}` — TTL in seconds or `null` (no expiry); NAME a
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

  constructor(cache: TieredCache | FragmentCache) {
    this.fragments = cache instanceof FragmentCache ? cache : new FragmentCache(cache)
    installRenderTracking()
  }

  /** Called by the Nunjucks parser at `{% cache`; returns the node that calls {@link run} at render time. */
  parse(parser: Parser, nodes: Nodes, lexer: Lexer): TemplateNode {
    const tag = parser.nextToken() as Token
    const template = compiling[compiling.length - 1] ?? STRING_TEMPLATE
    const line = tag.lineno + 1
    const column = tag.colno + 1
    const fail = (message: string): never => {
      throw new TemplateError(new TemplateTagError(template, line, `fragcache: ${message}`).message, line, column)
    }
    const tokens = parser.tokens
    const tagStart = tokens.str.lastIndexOf(tokens.tags.BLOCK_START, tokens.index)

    const positional: TemplateNode[] = []
    const keywords = new Map<string, TemplateNode>()
    for (;;) {
      const next = parser.peekToken()
      if (next === null) fail('the {% cache %} tag is not closed with %}')
      if (next!.type === lexer.TOKEN_BLOCK_END) break
      if (next!.type === lexer.TOKEN_COMMA) {
        parser.nextToken()
        continue
      }
      const expression = parser.parseExpression()
      if (parser.skipValue(lexer.TOKEN_OPERATOR, '=')) {
        const keyword = expression.typename === 'Symbol' ? String(expression.value) : ''
        if (!KEYWORDS.has(keyword)) fail(`the {% cache %} tag takes only deps= and ttl= as keywords; got ${keyword || 'an expression'}=`)
        if (keywords.has(keyword)) fail(`${keyword}= is given twice in the {% cache %} tag`)
        keywords.set(keyword, parser.parseExpression())
      } else {
        if (keywords.size > 0) fail('the inputs of the {% cache %} tag must come before deps= and ttl=')
        positional.push(expression)
      }
    }
    parser.advanceAfterBlockEnd(tag.value)

    const ttl = keywords.get('ttl') ?? positional.shift()
    const nameNode = positional.shift()
    if (ttl === undefined || nameNode === undefined) {
      fail('the {% cache %} tag needs a TTL and a fragment name, as in {% cache 300 "sidebar" lang %}')
    }
    // Django style: a bare word is the name itself, not a variable.
    const name = nameNode!.typename === 'Symbol' ? new nodes.Literal(nameNode!.lineno, nameNode!.colno, String(nameNode!.value)) : nameNode!

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
    const literal = (value: unknown) => new nodes.Literal(tag.lineno, tag.colno, value)
    const args = new nodes.NodeList(tag.lineno, tag.colno, [
      literal(template),
      literal(line),
      literal(column),
      literal(sourceDigest(tokens.str.slice(bodyStart, bodyEnd))),
      literal(enclosing),
      ttl,
      name,
      new nodes.Array(tag.lineno, tag.colno, positional),
      keywords.get('deps') ?? literal(null),
    ])
    return new nodes.CallExtensionAsync(this, 'run', args, [body])
  }

  /**
   * Called by the compiled template for every `{% cache %}`: answers from memory synchronously when it can,
   * else (where Nunjucks can wait) through {@link FragmentCache.render}.
   */
  run(
    context: RenderContext,
    template: string,
    line: number,
    column: number,
    digest: string,
    enclosing: string,
    ttl: unknown,
    name: unknown,
    inputs: unknown[],
    deps: unknown,
    body: Body,
    callback: Continuation,
  ): void {
    const session = currentSession(context)
    let fragment: PreparedFragment
    try {
      fragment = this.fragments.prepare({ name, ttl, inputs, deps, digest, template, line })
    } catch (error) {
      return fail(session, callback, templateError(error, { template, line, column }, session))
    }
    const stored = this.fragments.peek(fragment)
    if (stored !== undefined) {
      // Synchronous: works in every construct, and errors after the tag keep Nunjucks' own line numbers.
      callback(null, new runtime.SafeString(stored))
      return
    }
    const pending: PendingFragment = { name: fragment.name, template, line, column, abandoned: false }
    const sync = session !== undefined && isSyncRender(session)
    const construct = WAITLESS[enclosing]
    if (construct !== undefined) {
      return fail(
        session,
        callback,
        tagError(
          pending,
          `fragcache: fragment "${fragment.name}" is inside a ${construct.label}, where Nunjucks cannot wait for it, ` +
            `and it is not in memory; ${construct.advice}`,
          session,
        ),
      )
    }
    if (sync) {
      return fail(
        session,
        callback,
        tagError(
          pending,
          `fragcache: fragment "${fragment.name}" is not in memory, and render() without a callback cannot wait for it; ` +
            'render with a callback (or a promise)',
          session,
        ),
      )
    }
    if (session === undefined) {
      return fail(
        session,
        callback,
        tagError(
          pending,
          'fragcache: this template was not rendered through the nunjucks module fragcache hooks ' +
            '(is a second copy of nunjucks installed?), so a lost fragment could not be detected',
        ),
      )
    }

    const settle = trackPending(session, pending)
    this.fragments.render(fragment, () => renderBody(body, pending)).then(
      (html) => {
        settle()
        try {
          callback(null, new runtime.SafeString(html))
        } catch (error) {
          // The rest of the template threw; without this the render would never finish.
          callback(bodyError(error, pending, session, 'after'))
        }
      },
      (error: unknown) => {
        settle()
        callback(bodyError(error, pending, session, 'in the body of'))
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
    const refuse = () => reject(new Error(`fragcache: the render of fragment "${fragment.name}" was abandoned by Nunjucks; its output is not stored`))
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

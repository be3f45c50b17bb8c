import { relative } from 'node:path'
import { type Node, parse as parseScript, parseExpressionAt } from 'acorn'
import type { EtaConfig } from 'eta'
import { FragcacheError, InvalidArgumentError, TemplateTagError, describe } from '../src/errors.ts'
import { FragmentCache, sourceDigest } from '../src/fragments.ts'
import { TieredCache } from '../src/tiered-cache.ts'

/** An Eta plugin, as `new Eta({ plugins: [...] })` takes it (Eta does not export the type). */
export type EtaPlugin = EtaConfig['plugins'][number]
type AstNode = ReturnType<NonNullable<EtaPlugin['processAST']>>[number]
interface TagNode {
  t: string
  val: string
  lineNo?: number
}

/** What `this` is inside a compiled Eta template: the Eta instance (only its config is read). */
interface EtaInstance {
  config?: { views?: string; plugins?: unknown[] }
}

/** What the compiled template hands over at run time (Eta's `options`). */
interface RenderOptions {
  filepath?: string
}

const OPEN = /^cache(?:\s|$)/
const CLOSE = 'endcache'
const KEYWORD = /(deps|ttl)\s*=(?![=>])/y
const SPACE = /\s*/y
const PARSE_OPTIONS = { ecmaVersion: 'latest', preserveParens: true } as const
// Eta 4 compiles the layout call differently for async and sync templates; plugins are not told which.
const ASYNC_LAYOUT = '__eta.res = await includeAsync (__eta.layout'
const SYNC_LAYOUT = '__eta.res = include (__eta.layout'
const AWAITED_FRAGMENT = /__fragcache_html(\d+)/y
/** Eta's node types holding JavaScript: `<% %>` (e), `<%= %>` (i), `<%~ %>` (r). */
const CODE_TYPES = new Set(['e', 'i', 'r'])
const AsyncFunction = (async () => {}).constructor as new (...args: string[]) => unknown

let nextId = 1

/**
 * The `<% cache %>` tag for Eta 4: `<% cache 300 "sidebar" it.lang %> … <% endcache %>` renders the body once per
 * key and emits the stored HTML afterwards without running the body. All caching decisions (key, tiers, deps,
 * single-flight, force refresh, outages) are {@link FragmentCache}'s; this plugin only parses the tag and rewrites
 * it into a call whose body is an async closure writing to a buffer of its own; only a miss is awaited.
 *
 * - Inputs are JavaScript expressions separated by spaces or commas: `TTL NAME input…`, plus the keyword inputs
 *   `deps=[…]` (data-version tags) and `ttl=…` (then the first positional input is the name). `null` TTL: no expiry.
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

/** One cache tag found at compile time. */
interface TagInfo {
  line: number
  /** The tag as written, for messages: `<% cache 300 "sidebar" it.lang %>`. */
  text: string
}

/** What `processAST` learned about one template, for `processFnString` (Eta calls them in turn, synchronously). */
interface CompileState {
  tags: TagInfo[]
  problem?: { line: number; message: string }
  /** Names declared at the top of a fragment body, with the fragment's line and tag: `[name, line, text]`. */
  declared: [string, number, string][]
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

  constructor(fragments: FragmentCache) {
    this.fragments = fragments
    this.fragcacheEtaRuntime = new EtaFragmentRuntime(fragments)
  }

  /** Eta hook: remembers the template source, to give each tag its line. */
  processTemplate(source: string): string {
    this.#source = source
    this.#state = undefined
    return source
  }

  /** Eta hook: rewrites each `cache`…`endcache` pair into a call with an async closure body (see {@link openCode}). */
  processAST(ast: AstNode[], config?: EtaConfig): AstNode[] {
    const source = this.#source ?? ''
    this.#source = undefined
    this.#state = undefined
    if (!ast.some((node) => isTag(node) && (OPEN.test(node.val) || node.val === CLOSE))) return ast
    const state: CompileState = { tags: [], declared: [] }
    this.#state = state
    const delimiters = config?.tags ?? ['<%', '%>']
    const lines = tagLines(config?.rmWhitespace ? source.replace(/[\r\n]+/g, '\n').replace(/^\s+|\s+$/gm, '') : source, ast, delimiters[0])
    const out: AstNode[] = []
    const open: { index: number; info: TagInfo; node: TagNode; parsed: ParsedTag; id: number }[] = []
    for (let i = 0; i < ast.length; i++) {
      const node = ast[i] as AstNode
      if (!isTag(node) || !(OPEN.test(node.val) || node.val === CLOSE)) {
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
        frame.node.val = openCode(frame.id, frame.info, frame.parsed, sourceDigest(JSON.stringify(body)))
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
    const prelude =
      `const __fragcache = ((this && this.config && this.config.plugins) || []).find((p) => p != null && p.fragcacheEtaId === ${this.fragcacheEtaId})?.fragcacheEtaRuntime;\n` +
      `if (__fragcache === undefined) throw new Error("fragcache: this template was compiled with the fragcache Eta plugin and must be rendered by the Eta instance that has it");\n`
    const fail = (line: number, message: string): string =>
      `${prelude}throw __fragcache.tagError(this, options, ${line}, ${JSON.stringify(message)});\n`
    if (state.problem) return fail(state.problem.line, state.problem.message)
    const first = state.tags[0] as TagInfo
    if (!fn.includes(ASYNC_LAYOUT)) {
      if (fn.includes(SYNC_LAYOUT)) {
        return fail(
          first.line,
          `fragcache: ${first.text} needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %>`,
        )
      }
      throw new Error('fragcache: this version of Eta compiles templates in a way the fragcache plugin does not know (it supports Eta 4)')
    }
    const body =
      state.declared.length === 0
        ? fn
        : `try {\n${fn}\n} catch (__fragcache_error) { throw __fragcache.explain(this, options, __fragcache_error, ${JSON.stringify(state.declared)}); }\n`
    const code = prelude + body
    const misplaced = tagInSyncFunction(code, config?.varName ?? 'it', state.tags)
    if (misplaced !== undefined) {
      return fail(
        misplaced.line,
        `fragcache: ${misplaced.text} is inside a function that is not async (a forEach or map callback?), so it cannot wait for the cache: use a for…of loop, or an async function whose result is awaited`,
      )
    }
    return code
  }
}

/**
 * Called by compiled templates. Not part of the public API.
 * @example
 * ```ts
 * // generated: const __fragcache_html1 = __fragcache.run(this, options, 3, "digest", "<% cache … %>", () => [300, "sidebar", [it.lang], undefined], async () => …)
 * ```
 */
export class EtaFragmentRuntime {
  readonly #fragments: FragmentCache
  readonly #names = new Map<string, string>()

  constructor(fragments: FragmentCache) {
    this.#fragments = fragments
  }

  /** The fragment's HTML: from the cache (body not run) or from the body, rendered once per key at a time. */
  run(
    eta: EtaInstance | undefined,
    options: RenderOptions | undefined,
    line: number,
    digest: string,
    text: string,
    values: () => [unknown, unknown, unknown[], unknown],
    body: () => Promise<string>,
  ): string | Promise<string> {
    const template = this.#templateName(eta, options)
    let evaluated: [unknown, unknown, unknown[], unknown]
    try {
      evaluated = values()
    } catch (error) {
      // A Django habit (`cache 300 sidebar`) reads here as a variable: say how to write a name.
      const hint = error instanceof ReferenceError ? '; the name and inputs are JavaScript expressions, so quote a literal name ("sidebar")' : ''
      throw new TemplateTagError(template, line, `fragcache: cannot evaluate ${text}: ${describe(error)}${hint}`, { cause: error })
    }
    const [ttl, name, inputs, deps] = evaluated
    const fragment = this.#fragments.prepare({ name, ttl, inputs, deps, digest, template, line })
    return this.#fragments.peek(fragment) ?? this.#render(fragment, body)
  }

  /** The error for a tag that cannot run, with the template's name (known only at render time). */
  tagError(eta: EtaInstance | undefined, options: RenderOptions | undefined, line: number, message: string): TemplateTagError {
    return new TemplateTagError(this.#templateName(eta, options), line, message)
  }

  /** Explains a ReferenceError for a name declared inside a fragment body; any other error passes unchanged. */
  explain(eta: EtaInstance | undefined, options: RenderOptions | undefined, error: unknown, declared: [string, number, string][]): unknown {
    let cause: unknown = error
    for (let depth = 0; depth < 4 && cause instanceof Error; depth++, cause = cause.cause) {
      const match = cause instanceof ReferenceError ? /^(\S+) is not defined$/.exec(cause.message) : null
      const found = match && declared.find(([name]) => name === match[1])
      if (!found) continue
      const [name, line, text] = found
      return new TemplateTagError(
        this.#templateName(eta, options),
        line,
        `fragcache: ${name} is not defined outside the fragment that declares it: ${text} turns its body into a function of its own, so a variable declared inside it is not visible after endcache (and is not set at all on a cache hit); declare it before the cache tag instead`,
        { cause: error },
      )
    }
    return error
  }

  async #render(fragment: ReturnType<FragmentCache['prepare']>, body: () => Promise<string>): Promise<string> {
    try {
      return await this.#fragments.render(fragment, body)
    } catch (error) {
      if (error instanceof FragcacheError) throw error
      throw new TemplateTagError(fragment.template, fragment.line, `fragcache: the body of fragment "${fragment.name}" failed: ${describe(error)}`, {
        cause: error,
      })
    }
  }

  #templateName(eta: EtaInstance | undefined, options: RenderOptions | undefined): string {
    const file = options?.filepath
    if (file === undefined) return 'template string'
    let name = this.#names.get(file)
    if (name === undefined) {
      const views = eta?.config?.views
      name = views ? relative(views, file) : file
      this.#names.set(file, name)
    }
    return name
  }
}

/** The JavaScript source of each part of a tag. */
interface ParsedTag {
  ttl: string
  name: string
  inputs: string[]
  deps: string
}

/**
 * Splits the tag's inputs (`300 "sidebar" it.lang, it.user.id deps=[…]`) with a JavaScript parser: each input is the
 * longest expression acorn reads from where the previous one ended.
 */
function parseTag(source: string): ParsedTag {
  const positional: string[] = []
  const keywords = new Map<string, string>()
  let pos = skipSpace(source, 0)
  let afterComma = false
  while (pos < source.length) {
    if (source[pos] === ',') {
      if (afterComma || positional.length + keywords.size === 0) throw new Error(`unexpected "," at \`${source.slice(pos).trim()}\``)
      afterComma = true
      pos = skipSpace(source, pos + 1)
      continue
    }
    KEYWORD.lastIndex = pos
    const keyword = KEYWORD.exec(source)
    if (keyword) pos = skipSpace(source, KEYWORD.lastIndex)
    const node = readExpression(source, pos)
    const code = source.slice(node.start, node.end)
    if (keyword) {
      const name = keyword[1] as string
      if (keywords.has(name)) throw new Error(`${name}= is given twice`)
      keywords.set(name, code)
    } else {
      positional.push(code)
    }
    afterComma = false
    pos = skipSpace(source, node.end)
  }
  if (afterComma) throw new Error('the inputs end with ","')
  const ttl = keywords.get('ttl') ?? positional.shift()
  const name = positional.shift()
  if (ttl === undefined || name === undefined) {
    throw new Error('the cache tag needs a TTL and a fragment name, as in <% cache 300 "sidebar" it.lang %> (or ttl=300 "sidebar")')
  }
  checkTtlLiteral(ttl)
  return { ttl, name, inputs: positional, deps: keywords.get('deps') ?? 'undefined' }
}

function readExpression(source: string, pos: number): Node {
  let node: Node
  try {
    node = parseExpressionAt(source, pos, PARSE_OPTIONS)
  } catch (error) {
    const reason = describe(error).replace(/ \(\d+:\d+\)$/, '')
    throw new Error(`cannot read the input at \`${source.slice(pos).trim()}\`: ${reason}`)
  }
  // `a, b` reads as one sequence expression: take its first part; the loop then steps over the comma.
  if (node.type === 'SequenceExpression') node = (node as unknown as { expressions: Node[] }).expressions[0] as Node
  if (node.type === 'Identifier' && (node as unknown as { name: string }).name === 'await') {
    throw new Error('await cannot be used in the inputs of a cache tag; compute the value in a <% %> tag before it')
  }
  return headOfInput(source, node)
}

/**
 * Where an input ends when JavaScript would run on across a space: a `(` after a space starts a new input
 * (`"sidebar" (it.lang)` is two inputs, `fmt(x)` one call), and `"a" [x]` (member access) or `` x `y` `` (tagged
 * template) is an error rather than a guess, since read silently it would vary the key by something else.
 */
function headOfInput(source: string, node: Node): Node {
  let head = node
  let current = node as Node & { callee?: Node; object?: Node; tag?: Node; computed?: boolean }
  for (;;) {
    let left: Node | undefined
    let kind = ''
    if (current.type === 'CallExpression') [left, kind] = [current.callee, 'call']
    else if (current.type === 'MemberExpression' && current.computed) [left, kind] = [current.object, 'member access']
    else if (current.type === 'TaggedTemplateExpression') [left, kind] = [current.tag, 'tagged template']
    else if (current.type === 'MemberExpression') left = current.object
    if (left === undefined) return head
    if (kind !== '' && /\s/.test(source.charAt(left.end))) {
      if (kind === 'call') {
        head = left
      } else {
        const code = source.slice(node.start, head.end)
        throw new Error(
          `\`${code}\` reads as one input (a ${kind}); write a comma between two inputs, or parentheses around one: (${code})`,
        )
      }
    }
    current = left as typeof current
  }
}

function checkTtlLiteral(ttl: string): void {
  const node = parseExpressionAt(ttl, 0, PARSE_OPTIONS) as Node & { value?: unknown }
  if (node.type === 'Literal' && node.value !== null && typeof node.value !== 'number') {
    throw new Error(`the TTL must be a number of seconds or null; got ${ttl}`)
  }
  if (node.type === 'TemplateLiteral' || node.type === 'ArrayExpression' || node.type === 'ObjectExpression') {
    throw new Error(`the TTL must be a number of seconds or null; got ${ttl}`)
  }
}

function skipSpace(source: string, pos: number): number {
  SPACE.lastIndex = pos
  SPACE.exec(source)
  return SPACE.lastIndex
}

/**
 * The code that opens fragment `id`: a call whose last argument is the body, as an async closure writing to a
 * buffer of its own. The output before the tag is kept aside first: the body may start before the call returns.
 */
function openCode(id: number, info: TagInfo, tag: ParsedTag, digest: string): string {
  const values = `() => [${tag.ttl}, ${tag.name}, [${tag.inputs.join(', ')}], ${tag.deps}]`
  return (
    `{ const __fragcache_before${id} = __eta.res; ` +
    `const __fragcache_html${id} = __fragcache.run(this, options, ${info.line}, ${JSON.stringify(digest)}, ${JSON.stringify(info.text)}, ${values}, ` +
    `async () => { __eta.res = ''; try {`
  )
}

/** The code that closes fragment `id`: a hit (a string) is appended at once; only a miss (a promise) is awaited. */
function closeCode(id: number): string {
  const html = `__fragcache_html${id}`
  return (
    `return __eta.res; } finally { __eta.res = __fragcache_before${id}; } }); ` +
    `__eta.res = __fragcache_before${id} + (typeof ${html} === 'string' ? ${html} : await ${html}); }`
  )
}

function isTag(node: AstNode | undefined): node is TagNode {
  return typeof node === 'object' && node !== null && node.t === 'e'
}

/**
 * The 1-based line of each cache tag: each tag's code is a verbatim slice of the source, and template text holds no
 * opening delimiter, so the next delimiter after the previous tag's code is this tag's.
 */
function tagLines(source: string, ast: AstNode[], openDelimiter: string): Map<number, number> {
  const lines = new Map<number, number>()
  let cursor = 0
  let line = 1
  let counted = 0
  for (let i = 0; i < ast.length; i++) {
    const node = ast[i]
    if (typeof node !== 'object' || node === null) continue
    const start = source.indexOf(openDelimiter, cursor)
    const code = start === -1 ? -1 : source.indexOf(node.val, start + openDelimiter.length)
    if (code === -1) break
    for (; counted < start; counted++) if (source.charCodeAt(counted) === 10) line++
    if (isTag(node) && (OPEN.test(node.val) || node.val === CLOSE)) lines.set(i, line)
    cursor = code + node.val.length
  }
  return lines
}

/**
 * What a fragment body's code means for the closure it becomes: the names it declares at its top level (not visible
 * after `endcache`, see {@link EtaFragmentRuntime.explain}), and what would make a cache hit silently wrong: on a
 * hit the body does not run, so an assignment to a variable declared outside it, or a `layout()` call, is skipped.
 */
function analyseBody(body: AstNode[]): { declared: string[]; problem?: string } {
  const code = body
    .filter((node): node is TagNode => typeof node === 'object' && CODE_TYPES.has(node.t) && !(OPEN.test(node.val) || node.val === CLOSE))
    .map((node) => (node.t === 'e' ? node.val : `(${node.val})`))
    .join(';\n')
  let program: { body: Node[] }
  try {
    program = parseScript(code, { ecmaVersion: 'latest', allowAwaitOutsideFunction: true, allowReturnOutsideFunction: true }) as unknown as {
      body: Node[]
    }
  } catch {
    return { declared: [] } // code split across the tags in a way JavaScript cannot read alone: Eta reports it
  }
  const declared: string[] = []
  for (const statement of program.body) {
    const s = statement as Node & { declarations?: { id: Node }[]; id?: Node | null }
    if (s.type === 'VariableDeclaration') for (const d of s.declarations ?? []) collectPatternNames(d.id, declared)
    else if ((s.type === 'FunctionDeclaration' || s.type === 'ClassDeclaration') && s.id) collectPatternNames(s.id, declared)
  }
  const local = new Set<string>()
  const assigned: [root: string, target: string][] = []
  let layout = false
  walk(program as unknown as Node, (node) => {
    const n = node as Node & Record<string, unknown>
    if (n.type === 'VariableDeclarator') collectInto(n.id, local)
    else if (n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression' || n.type === 'ArrowFunctionExpression') {
      collectInto(n.id, local)
      for (const param of (n.params as Node[]) ?? []) collectInto(param, local)
    } else if (n.type === 'ClassDeclaration') collectInto(n.id, local)
    else if (n.type === 'CatchClause') collectInto(n.param, local)
    else if (n.type === 'AssignmentExpression') assigned.push(...assignedNames(n.left as Node, code))
    else if (n.type === 'UpdateExpression') assigned.push(...assignedNames(n.argument as Node, code))
    else if (n.type === 'CallExpression' && (n.callee as Node & { name?: string }).name === 'layout') layout = true
  })
  const outside = assigned.find(([root]) => !local.has(root))
  if (outside !== undefined) {
    const [root, target] = outside
    return {
      declared,
      problem: `assigns to ${target}, and ${root} is declared outside the fragment: on a cache hit the body does not run and ${target} would keep its old value; compute it before the cache tag`,
    }
  }
  if (layout) return { declared, problem: 'calls layout(): on a cache hit the body does not run and the layout would be skipped; call it outside the cache tag' }
  return { declared }
}

/** `[root variable, target as written]` for each variable an assignment target writes (`it.n` writes into `it`). */
function assignedNames(target: Node, code: string): [string, string][] {
  let root = target as Node & { object?: Node }
  while (root.type === 'MemberExpression' && root.object) root = root.object as typeof root
  if (root !== target) return root.type === 'Identifier' ? [[(root as unknown as { name: string }).name, code.slice(target.start, target.end)]] : []
  const names: string[] = []
  collectPatternNames(target, names)
  return names.map((name) => [name, name])
}

function collectInto(pattern: unknown, names: Set<string>): void {
  const list: string[] = []
  collectPatternNames(pattern as Node | null | undefined, list)
  for (const name of list) names.add(name)
}

function walk(node: Node, visit: (node: Node) => void): void {
  visit(node)
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const child of value) if (child !== null && typeof child === 'object' && typeof child.type === 'string') walk(child as Node, visit)
    } else if (value !== null && typeof value === 'object' && typeof (value as Node).type === 'string') {
      walk(value as Node, visit)
    }
  }
}

function collectPatternNames(pattern: Node | null | undefined, names: string[]): void {
  if (!pattern) return
  const p = pattern as Node & {
    name?: string
    properties?: Node[]
    elements?: (Node | null)[]
    left?: Node
    argument?: Node
    value?: Node
  }
  if (p.type === 'Identifier') names.push(p.name as string)
  else if (p.type === 'ObjectPattern') {
    for (const prop of p.properties ?? []) collectPatternNames(prop.type === 'RestElement' ? prop : (prop as typeof p).value, names)
  }
  else if (p.type === 'ArrayPattern') for (const element of p.elements ?? []) collectPatternNames(element, names)
  else if (p.type === 'AssignmentPattern') collectPatternNames(p.left, names)
  else if (p.type === 'RestElement') collectPatternNames(p.argument, names)
}

/**
 * The cache tag whose `await` sits in a function that is not async, if any. V8 only says "await is only valid in
 * async functions" without a position, so on a syntax error acorn finds where it is.
 */
function tagInSyncFunction(code: string, varName: string, tags: readonly TagInfo[]): TagInfo | undefined {
  try {
    new AsyncFunction(varName, 'options', code)
    return undefined
  } catch (error) {
    if (!(error instanceof SyntaxError)) return undefined
  }
  const head = `(async function (${varName}, options) {\n`
  try {
    parseScript(`${head}${code}\n})`, { ecmaVersion: 'latest' })
  } catch (error) {
    const pos = (error as { pos?: number }).pos
    if (typeof pos !== 'number') return undefined
    // acorn reads `await` as a name outside async functions and stops at what follows it.
    for (const at of [pos - head.length, code.lastIndexOf('await', pos - head.length) + 'await '.length]) {
      AWAITED_FRAGMENT.lastIndex = at
      const match = AWAITED_FRAGMENT.exec(code)
      if (match) return tags[Number(match[1]) - 1]
    }
  }
  return undefined
}

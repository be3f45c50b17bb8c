/**
 * Compiling an Eta template with cache tags, in Eta's two plugin steps: {@link rewriteFragments} turns each
 * `cache`…`endcache` pair of the parsed template into a call of the runtime, and {@link finishCode} completes the
 * compiled function: the runtime lookup, what cannot run turned into an error naming the template and line (never
 * Eta's dump of the compiled code), and the catch that locates runtime errors.
 */
import type { EtaConfig } from 'eta'
import { UnsupportedEngineError, describe } from '../../src/errors.ts'
import { sourceExcerpt } from '../../src/fragment-errors.ts'
import { sourceDigest } from '../../src/fragments.ts'
import { type AstNode, CLOSE, type TagNode, isCacheTag } from './ast.ts'
import { analyseBody } from './body-analysis.ts'
import {
  type TagInfo,
  closeCode,
  compiledAs,
  locatedCode,
  openCode,
  preludeCode,
  syntaxThrowCode,
  tagInSyncFunction,
  throwCode,
  withItemValues,
} from './codegen.ts'
import { codeOf, referencesInCode } from './dependencies.ts'
import { type Position, codeSpans, lineTable, nodePositions, syntaxError } from './locate.ts'
import { type ParsedTag, literalName, parseTag } from './tag-grammar.ts'

/** One cache tag of a compiled template, as `fragmentKey` needs it (see `etaFragmentDigest` for `own` and `references`). */
export interface CompiledEtaTag {
  readonly line: number
  readonly text: string
  readonly name: string | undefined
  readonly own: string
  readonly references: string
}

/** What cannot run: a tag used wrongly, or a syntax error (then thrown as Eta's `EtaParseError`). */
export interface Problem {
  readonly kind: 'tag' | 'syntax'
  readonly position: Position
  readonly message: string
}

/** What {@link rewriteFragments} learned about one template, for {@link finishCode}. */
export interface CompileState {
  readonly pluginId: number
  /** The source as Eta parsed it. */
  readonly source: string
  readonly tags: TagInfo[]
  problem?: Problem
  /** Names declared at the top of a fragment body, with the fragment's line and tag: `[name, line, text]`. */
  readonly declared: [string, number, string][]
  /** The `collection=` tags, whose loop {@link finishCode} finds. */
  readonly collections: { id: number; info: TagInfo; parsed: ParsedTag }[]
  /** The rewritten template, and where each of its tags is in the source. */
  nodes: AstNode[]
  readonly positions: Map<object, Position>
  /** The nodes whose code fragcache wrote (each cache tag's opening and closing code). */
  readonly written: Set<object>
}

/** Counts compiles, so that each compiled template reads its fragments' dependencies afresh. */
let compiles = 0

/**
 * Rewrites each `cache`…`endcache` pair of `ast` (parsed from `source`) into a call of the runtime whose body is an
 * async closure (see `openCode`); records each tag in `compiled`. Undefined for a template without cache tags, unless
 * its source `mentions` one (a tag Eta read as part of another's code): then only its syntax is checked.
 */
export function rewriteFragments(
  ast: AstNode[],
  source: string,
  config: EtaConfig | undefined,
  pluginId: number,
  compiled: CompiledEtaTag[],
  mentions: boolean,
): CompileState | undefined {
  if (!mentions && !ast.some(isCacheTag)) return undefined
  const delimiters = config?.tags ?? ['<%', '%>']
  const parsedSource = config?.rmWhitespace ? source.replace(/[\r\n]+/g, '\n').replace(/^\s+|\s+$/gm, '') : source
  const positions = nodePositions(parsedSource, ast, delimiters[0])
  const state: CompileState = { pluginId, source: parsedSource, tags: [], declared: [], collections: [], nodes: ast, positions, written: new Set() }
  const fail = (position: Position, message: string): CompileState => {
    state.problem = { kind: 'tag', position, message }
    return state
  }
  const out: AstNode[] = []
  const open: { index: number; info: TagInfo; node: TagNode; parsed: ParsedTag; id: number }[] = []
  for (let i = 0; i < ast.length; i++) {
    const node = ast[i] as AstNode
    if (!isCacheTag(node)) {
      out.push(node)
      continue
    }
    const position = positions.get(node) ?? { line: node.lineNo ?? 0, column: 0 }
    const info: TagInfo = { line: position.line, column: position.column, text: `${delimiters[0]} ${node.val} ${delimiters[1]}` }
    if (node.val === CLOSE) {
      const frame = open.pop()
      if (frame === undefined) return fail(position, `fragcache: ${info.text} has no open ${delimiters[0]} cache … ${delimiters[1]} before it`)
      const body = ast.slice(frame.index + 1, i)
      const site = { key: `${pluginId}:${++compiles}:${frame.id}`, own: sourceDigest(JSON.stringify(body)), references: JSON.stringify(referencesInCode(codeOf(body))) }
      frame.node.val = openCode(frame.id, frame.info, frame.parsed, site)
      compiled.push({ line: frame.info.line, text: frame.info.text, name: literalName(frame.parsed.name), own: site.own, references: site.references })
      const analysis = analyseBody(body)
      if (analysis.problem !== undefined) return fail(frame.info, `fragcache: ${frame.info.text} ${analysis.problem}`)
      for (const name of analysis.declared) state.declared.push([name, frame.info.line, frame.info.text])
      const close: TagNode = { t: 'e', val: closeCode(frame.id) }
      positions.set(close, position)
      state.written.add(close)
      out.push(close)
      continue
    }
    let parsed: ParsedTag
    try {
      parsed = parseTag(node.val.slice('cache'.length))
    } catch (error) {
      return fail(position, `fragcache: ${info.text}: ${describe(error)}`)
    }
    const replacement: TagNode = { t: 'e', val: '' }
    positions.set(replacement, position)
    state.written.add(replacement)
    state.tags.push(info)
    open.push({ index: i, info, node: replacement, parsed, id: state.tags.length })
    if (parsed.collection !== undefined) state.collections.push({ id: state.tags.length, info, parsed })
    out.push(replacement)
  }
  const unclosed = open.pop()
  if (unclosed !== undefined) {
    return fail(unclosed.info, `fragcache: ${unclosed.info.text} is never closed: add ${delimiters[0]} endcache ${delimiters[1]} after its body`)
  }
  state.nodes = out
  return state
}

/**
 * The compiled function of a template with cache tags, from Eta's `fn`: the runtime lookup, the catch that locates
 * runtime errors, and, for what cannot run (a tag used wrongly, a sync render, a syntax error), code that throws an
 * error naming the template (known only at render time) and the line.
 */
export function finishCode(fn: string, state: CompileState, config: EtaConfig | undefined): string {
  const prelude = preludeCode(state.pluginId)
  const varName = config?.varName ?? 'it'
  const fail = (problem: Problem): string => {
    const shown = sourceExcerpt(state.source, problem.position.line, problem.position.column)
    const thrower = problem.kind === 'syntax' ? syntaxThrowCode : throwCode
    return prelude + thrower(problem.position.line, problem.message, shown)
  }
  if (state.problem) return fail(state.problem)
  if (state.tags.length === 0) {
    // A cache tag Eta read as part of another tag's code: the template renders as Eta compiles it, if it compiles.
    const invalid = syntaxError(fn, varName, codeSpans(fn, state.nodes, state.positions, bodyStart(fn), state.written))
    return invalid === undefined ? fn : fail({ kind: 'syntax', position: invalid.position ?? { line: 1, column: 1 }, message: syntaxMessage(invalid) })
  }
  const first = state.tags[0] as TagInfo
  const compiled = compiledAs(fn)
  if (compiled === 'sync') {
    return fail({
      kind: 'tag',
      position: first,
      message: `fragcache: ${first.text} needs an async render: use eta.renderAsync() or eta.renderStringAsync(), and include templates that have cache tags with <%~ await includeAsync(…) %>`,
    })
  }
  if (compiled === 'unknown') {
    throw new UnsupportedEngineError('fragcache: this version of Eta compiles templates in a way the fragcache plugin does not know (it supports Eta 4)')
  }
  const name = `__fragcache_template${++compiles}`
  let code = fn
  const misplaced = tagInSyncFunction(code, varName, state.tags)
  if (misplaced !== undefined) {
    return fail({
      kind: 'tag',
      position: misplaced,
      message: `fragcache: ${misplaced.text} is inside a function that is not async (a forEach or map callback?), so it cannot wait for the cache: use a for…of loop, or an async function whose result is awaited`,
    })
  }
  for (const { id, info, parsed } of state.collections) {
    const rewritten = withItemValues(code, varName, id, parsed, info.line)
    if (rewritten === undefined) return fail({ kind: 'tag', position: info, message: `fragcache: ${info.text}: collection= needs the cache tag inside the for…of loop over that collection` })
    code = rewritten
  }
  const located = locatedCode(prelude, code, name, (body) => {
    const spans = codeSpans(body, state.nodes, state.positions, bodyStart(body), state.written)
    // The layout renders after the template's own code: its errors are located at the layout() call.
    const call = state.nodes.find((node) => typeof node === 'object' && /\blayout\s*\(/.test(node.val))
    const layoutLine = call === undefined ? 0 : (state.positions.get(call as object)?.line ?? 0)
    return { spans, table: lineTable(body, spans, body.indexOf(LAYOUT_CALL), layoutLine) }
  }, state.source, state.declared)
  const invalid = syntaxError(located.code, varName, located.spans)
  if (invalid !== undefined) return fail({ kind: 'syntax', position: invalid.position ?? first, message: syntaxMessage(invalid) })
  return located.code
}

/** The message of a syntax error in a template's code, in the template's terms. */
function syntaxMessage(invalid: { message: string; inWritten: boolean }): string {
  // In fragcache's own code around a body: the body's code opened a block it does not close before endcache.
  const hint = invalid.inWritten ? ' (a block opened inside a fragment must be closed before its endcache)' : ''
  // V8 may name what it ran into: the compiled code's own names are not the template's.
  const reason = /__eta|__fragcache/.test(invalid.message) ? "this tag's code is not complete: it runs on into what follows the tag" : invalid.message
  return `Bad template syntax: ${reason}${hint}`
}

/** Where the template's own code starts in Eta's function: after the helpers it declares first. */
function bodyStart(code: string): number {
  const helpers = code.indexOf('async function blockAsync(')
  return helpers === -1 ? 0 : code.indexOf('\n', helpers)
}

/** The start of the code that renders the layout. */
const LAYOUT_CALL = 'if (__eta.layout) {'

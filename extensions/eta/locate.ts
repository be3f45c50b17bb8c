/**
 * Where things are in an Eta template with cache tags, so that its errors name the template's line and never quote
 * the compiled code: the position of each tag's code in the source, the map from the compiled function's code back to
 * it, the syntax error of a compiled function (found with acorn), and Eta's own parse error before compiling.
 */
import { parse as parseScript } from 'acorn'
import { Eta, type EtaConfig } from 'eta'
import type { AstNode } from './ast.ts'

/** A 1-based line and column in a template's source. */
export interface Position {
  readonly line: number
  readonly column: number
}

/** Where one node's code is in the compiled function's code, and where it was in the template. */
export interface CodeSpan {
  readonly offset: number
  readonly length: number
  readonly position: Position
  /** The code, to count lines within it; '' for code fragcache wrote (a position inside it is the tag's). */
  readonly code: string
}

const AsyncFunction = (async () => {}).constructor as new (...args: string[]) => unknown

/** The 1-based line and column of `offset` in `source`. */
export function positionAt(source: string, offset: number): Position {
  const before = source.slice(0, offset)
  const lineStart = before.lastIndexOf('\n') + 1
  return { line: before.split('\n').length, column: offset - lineStart + 1 }
}

/**
 * The position of the code of every tag of `ast` in `source` (as Eta parsed it): each tag's code is a verbatim slice
 * of the source, and template text holds no opening delimiter, so the next delimiter after the previous tag's code
 * opens this tag.
 */
export function nodePositions(source: string, ast: readonly AstNode[], openDelimiter: string): Map<object, Position> {
  const positions = new Map<object, Position>()
  let cursor = 0
  for (const node of ast) {
    if (typeof node !== 'object' || node === null) continue
    const start = source.indexOf(openDelimiter, cursor)
    const code = start === -1 ? -1 : source.indexOf(node.val, start + openDelimiter.length)
    if (code === -1) break
    positions.set(node, positionAt(source, code))
    cursor = code + node.val.length
  }
  return positions
}

/**
 * Where the code of each node of `nodes` (those with a position) is in `code`, from `from` on: Eta writes each tag's
 * code into the function verbatim and in order.
 */
export function codeSpans(code: string, nodes: readonly AstNode[], positions: Map<object, Position>, from: number, written: ReadonlySet<object>): CodeSpan[] {
  const spans: CodeSpan[] = []
  let cursor = from
  for (const node of nodes) {
    if (typeof node !== 'object' || node === null) continue
    const position = positions.get(node)
    const offset = code.indexOf(node.val, cursor)
    if (position === undefined || offset === -1 || node.val === '') continue
    spans.push({ offset, length: node.val.length, position, code: written.has(node) ? '' : node.val })
    cursor = offset + node.val.length
  }
  return spans
}

/** The template position of `offset` in the compiled code, by the span it falls in (or the last one before it). */
export function templatePosition(spans: readonly CodeSpan[], offset: number): Position | undefined {
  let found: CodeSpan | undefined
  for (const span of spans) {
    if (span.offset > offset) break
    found = span
  }
  if (found === undefined) return spans[0]?.position
  const within = Math.min(offset - found.offset, found.code.length)
  const inside = found.code.slice(0, within)
  const newline = inside.lastIndexOf('\n')
  if (newline === -1) return { line: found.position.line, column: found.position.column + within }
  return { line: found.position.line + inside.split('\n').length - 1, column: within - newline }
}

/**
 * The table the compiled function carries to locate a runtime error: `[line of the compiled code, template line]`,
 * ascending; the code from `layoutAt` on renders the layout, located at `layoutLine` (0: not located).
 */
export function lineTable(code: string, spans: readonly CodeSpan[], layoutAt: number, layoutLine: number): number[][] {
  const lineOf = (offset: number) => positionAt(code, offset).line
  const table = spans.map((span) => [lineOf(span.offset), span.position.line])
  if (layoutAt !== -1) table.push([lineOf(layoutAt), layoutLine])
  return table
}

/**
 * The syntax error of `code` compiled as Eta compiles a template (an async function of `varName` and `options`), at
 * its template position; undefined when it compiles.
 */
export function syntaxError(
  code: string,
  varName: string,
  spans: readonly CodeSpan[],
): { message: string; position: Position | undefined; inWritten: boolean } | undefined {
  let message: string
  try {
    new AsyncFunction(varName, 'options', code)
    return undefined
  } catch (error) {
    if (!(error instanceof SyntaxError)) return undefined
    message = error.message
  }
  const head = `(async function (${varName}, options) {\n`
  try {
    parseScript(`${head}${code}\n})`, { ecmaVersion: 'latest' })
  } catch (error) {
    const pos = (error as { pos?: number }).pos
    if (typeof pos === 'number') {
      const offset = pos - head.length
      const span = [...spans].reverse().find((s) => s.offset <= offset)
      return { message, position: templatePosition(spans, offset), inWritten: span !== undefined && span.code === '' && offset < span.offset + span.length }
    }
  }
  return { message, position: undefined, inWritten: false }
}

/**
 * Eta's own parse error for `source` (an unclosed tag, string or comment), as Eta would throw it before any plugin
 * sees the template; undefined when Eta parses it.
 */
export function etaParseError(source: string, config: EtaConfig | undefined): { reason: string; position: Position } | undefined {
  try {
    new Eta({ ...config, plugins: [] }).parse(source)
    return undefined
  } catch (error) {
    const found = /^(.*) at line (\d+) col (\d+):/.exec(error instanceof Error ? error.message : '')
    if (found === null) return undefined
    return { reason: found[1] as string, position: { line: Number(found[2]), column: Number(found[3]) } }
  }
}

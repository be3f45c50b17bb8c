/**
 * A line for the Nunjucks errors that have none, in templates with a cache tag: the lexer's own errors ("unexpected end
 * of comment"), the parser's at the end of the template ("unexpected end of file", "expected variable end"), and the
 * compiled code's syntax errors (a name Nunjucks lexes but cannot compile). Found by lexing the template again.
 */
import { sourceExcerpt } from '../../src/fragment-errors.ts'
import { describe } from '../../src/errors.ts'
import { type LexSetup, scanTemplate } from './dependencies.ts'
import { type NunjucksTemplateError, TemplateError, type Token } from './shapes.ts'

/** The end tag of each block tag Nunjucks (and fragcache) knows. */
const END_OF: Record<string, string> = {
  if: 'endif',
  ifAsync: 'endif',
  for: 'endfor',
  asyncEach: 'endeach',
  asyncAll: 'endall',
  macro: 'endmacro',
  call: 'endcall',
  filter: 'endfilter',
  block: 'endblock',
  raw: 'endraw',
  verbatim: 'endverbatim',
  cache: 'endcache',
  switch: 'endswitch',
  set: 'endset',
}

const NAME = /^[A-Za-z_$][\w$]*$/

/**
 * `error`, raised while compiling `source`, with a line (and column) when it has none: as a Nunjucks TemplateError
 * whose message says where the template went wrong and ends with the excerpt. Undefined when it has a line already.
 * @example
 * ```ts
 * throw locateCompileError(error, template.tmplStr, setup) ?? error
 * ```
 */
export function locateCompileError(error: unknown, source: string, setup: LexSetup): NunjucksTemplateError | undefined {
  if (hasLine(error)) return undefined
  const located = where(source, setup, error instanceof SyntaxError)
  // V8's words about the compiled code would not help: the name it comes from does.
  const message = located.name ? located.why : `${describe(error)}${located.why}`
  return new TemplateError(`${message}${sourceExcerpt(source, located.line, located.column)}`, located.line, located.column)
}

/**
 * `error`, raised while rendering `source` without a line (a template that `{% include %}`, `{% import %}` or
 * `{% extends %}` names and no loader has), at the statement that names it; undefined when it has a line or names
 * nothing the template refers to.
 * @example
 * ```ts
 * callback(locateRenderError(error, template.tmplStr, setup) ?? error)
 * ```
 */
export function locateRenderError(error: unknown, source: string, setup: LexSetup): NunjucksTemplateError | undefined {
  if (hasLine(error)) return undefined
  const message = describe(error).replace(/^Error: /, '')
  const position = positionOfMissing(message, source, setup)
  if (position === undefined) return undefined
  return new TemplateError(`${message}${sourceExcerpt(source, position.line, position.column)}`, position.line, position.column)
}

/** Where the template names what `message` says is missing: a template (`template not found`) or a filter. */
function positionOfMissing(message: string, source: string, setup: LexSetup): { line: number; column: number } | undefined {
  const template = /^template not found: (.+)$/.exec(message)?.[1]
  if (template !== undefined) {
    const reference = scanTemplate(source, setup).references.find((found) => found.name === template)
    if (reference === undefined) return undefined
    const before = source.slice(0, reference.start)
    return { line: before.split('\n').length, column: reference.start - before.lastIndexOf('\n') }
  }
  const filter = /^filter not found: (\S+)$/.exec(message)?.[1]
  if (filter === undefined) return undefined
  const { lexer } = setup
  try {
    const tokens = lexer.lex(source, setup.options)
    let previous: Token | undefined
    let token: Token | null
    while ((token = tokens.nextToken()) !== null) {
      if (token.type === lexer.TOKEN_WHITESPACE) continue
      if (token.type === lexer.TOKEN_SYMBOL && token.value === filter.split('.')[0] && previous?.value === '|') return { line: token.lineno + 1, column: token.colno + 1 }
      previous = token
    }
  } catch {
    // Not found: reported as Nunjucks reports it.
  }
  return undefined
}

/** Whether a Nunjucks error carries a line (Nunjucks gives 0 when it did not know it). */
function hasLine(error: unknown): boolean {
  const lineno = (error as { lineno?: unknown } | null)?.lineno
  return typeof lineno === 'number' && lineno > 0
}

/**
 * Where the template went wrong, 1-based, and why, as a clause to add to the message (with `name`, the whole message:
 * a name the compiled code cannot hold).
 */
function where(source: string, setup: LexSetup, compiled: boolean): { line: number; column: number; why: string; name?: true } {
  const { lexer } = setup
  const tokens = lexer.lex(source, setup.options) as ReturnType<LexSetup['lexer']['lex']> & { lineno: number; colno: number }
  const at = (token: Token, why = '') => ({ line: token.lineno + 1, column: token.colno + 1, why })
  const blocks: { name: string; token: Token }[] = []
  let open: Token | undefined
  let statement: Token[] = []
  let last: Token | undefined
  let badName: Token | undefined
  let raw: string | undefined
  try {
    let token: Token | null
    while ((token = tokens.nextToken()) !== null) {
      if (token.type === lexer.TOKEN_WHITESPACE) continue
      last = token
      if (token.type === lexer.TOKEN_BLOCK_START || token.type === lexer.TOKEN_VARIABLE_START) {
        ;[open, statement] = [token, []]
      } else if (token.type === lexer.TOKEN_BLOCK_END || token.type === lexer.TOKEN_VARIABLE_END) {
        if (open?.type === lexer.TOKEN_BLOCK_START) raw = track(blocks, open, statement, raw, lexer.TOKEN_OPERATOR)
        open = undefined
      } else if (open !== undefined) {
        statement.push(token)
        if (raw === undefined && token.type === lexer.TOKEN_SYMBOL && !NAME.test(token.value)) badName ??= token
      }
    }
  } catch {
    // The lexer's own error: where it stopped.
    return { line: tokens.lineno + 1, column: tokens.colno + 1, why: '' }
  }
  if (compiled && badName !== undefined) {
    return { ...at(badName, `${JSON.stringify(badName.value)} is not a name Nunjucks can compile (it compiles to invalid JavaScript)`), name: true }
  }
  if (open !== undefined) return at(open, `: the template ends before this ${open.value} is closed`)
  const block = blocks.pop()
  if (block !== undefined) return at(block.token, `: the template ends before this {% ${block.name} %} is closed by {% ${END_OF[block.name]} %}`)
  return last === undefined ? { line: 1, column: 1, why: '' } : at(last)
}

/** Opens or closes a block for one `{% … %}` statement; returns the raw block it is in (its content is not template code). */
function track(blocks: { name: string; token: Token }[], start: Token, statement: Token[], raw: string | undefined, operator: string): string | undefined {
  const name = statement[0]?.value ?? ''
  if (raw !== undefined) {
    if (name !== END_OF[raw]) return raw
    blocks.pop()
    return undefined
  }
  // `{% set x = 1 %}` assigns; only `{% set x %}…{% endset %}` is a block.
  if (name === 'set' && statement.some((token) => token.type === operator && token.value === '=')) return undefined
  if (name in END_OF) {
    blocks.push({ name, token: start })
    return name === 'raw' || name === 'verbatim' ? name : undefined
  }
  const top = blocks[blocks.length - 1]
  if (top !== undefined && END_OF[top.name] === name) blocks.pop()
  return undefined
}

/**
 * The constructs around a tag, found by lexing the source before it: those where Nunjucks cannot wait for an
 * asynchronous tag (which ones there are, what to advise in each), and the loop a `collection=` tag is in.
 */
import { lexSetup } from './dependencies.ts'
import type { Lexer, Token, Tokenizer } from './shapes.ts'

/** Constructs whose body Nunjucks runs synchronously: a tag there can only answer from memory. */
export const WAITLESS: Readonly<Record<string, { label: string; advice: string }>> = {
  macro: { label: '{% macro %}', advice: 'put the cache tag around the macro call instead' },
  set: { label: '{% set %}…{% endset %} block', advice: 'put the cache tag around the place the variable is output instead' },
}

/** Constructs in which Nunjucks cannot even compile an asynchronous tag (its transformer mistakes it for a filter). */
export const UNCOMPILABLE: Readonly<Record<string, string>> = {
  filter: '{% filter %}…{% endfilter %} block',
  call: '{% call %}…{% endcall %} block',
}

const CAPTURE_ENDS: Record<string, string> = { macro: 'endmacro', call: 'endcall', set: 'endset', filter: 'endfilter' }
const LOOP_ENDS: Record<string, string> = { for: 'endfor', asyncEach: 'endeach', asyncAll: 'endall' }

/** A block open at some point of a template: its name and the tokens of its opening statement. */
interface OpenBlock {
  readonly name: string
  readonly statement: readonly Token[]
}

/**
 * The innermost construct around `end` (a source offset) in which Nunjucks runs its body synchronously
 * (`macro`, `call`, `set` block, `filter` block), or '' when there is none. Lexes the source before the tag.
 */
export function enclosingCapture(tokens: Tokenizer, lexer: Lexer, end: number): string {
  const open = openBlocks(tokens, lexer, end, CAPTURE_ENDS)
  return open[open.length - 1]?.name ?? ''
}

/**
 * The variables of the innermost loop (`for`, `asyncEach`, `asyncAll`) around `end`, or undefined outside any loop:
 * `{% for article in articles %}` gives `['article']`.
 */
export function enclosingLoop(tokens: Tokenizer, lexer: Lexer, end: number): string[] | undefined {
  const loop = openBlocks(tokens, lexer, end, LOOP_ENDS).pop()
  if (loop === undefined) return undefined
  const names: string[] = []
  for (const token of loop.statement.slice(1)) {
    if (token.type === lexer.TOKEN_SYMBOL && token.value === 'in') break
    if (token.type === lexer.TOKEN_SYMBOL) names.push(token.value)
  }
  return names
}

/** The blocks named in `ends` (name → end tag) still open at `end`, outermost first; [] when the source cannot be lexed. */
function openBlocks(tokens: Tokenizer, lexer: Lexer, end: number, ends: Record<string, string>): OpenBlock[] {
  try {
    const lexed = lexer.lex(tokens.str.slice(0, end), lexSetup(tokens, lexer).options)
    const open: OpenBlock[] = []
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
        if (ends.set !== undefined && !statement.some((s) => s.type === lexer.TOKEN_OPERATOR && s.value === '=')) open.push({ name, statement })
      } else if (name in ends) {
        open.push({ name, statement })
      } else if (open.length > 0 && ends[open[open.length - 1]?.name as string] === name) {
        open.pop()
      }
    }
    return open
  } catch {
    return [] // only the wording of an error depends on it; the render-time check still catches a drop
  }
}

/**
 * The constructs where Nunjucks cannot wait for an asynchronous tag: which ones there are, what to advise in each,
 * and which one (if any) encloses a tag, found by lexing the source before it.
 */
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

/**
 * The innermost construct around `end` (a source offset) in which Nunjucks runs its body synchronously
 * (`macro`, `call`, `set` block, `filter` block), or '' when there is none. Lexes the source before the tag.
 */
export function enclosingCapture(tokens: Tokenizer, lexer: Lexer, end: number): string {
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

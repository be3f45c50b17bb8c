/**
 * The errors a compiled Eta template with cache tags throws at render time, when its name is known: a syntax error
 * found when it was compiled (Eta's `EtaParseError`), and any error its code throws, located at the template's line
 * from the stack trace (Eta's `EtaRuntimeError`, as Eta's `debug` mode reports it), or explained when it is a name
 * declared inside a fragment.
 */
import { EtaParseError, EtaRuntimeError } from 'eta'
import { FragcacheError, TemplateTagError, describe } from '../../src/errors.ts'

/** Marks an error already located in a template, so that the templates including it pass it on as it is. */
const LOCATED = Symbol.for('fragcache.etaLocated')

/**
 * A syntax error of `template`, found when it was compiled, as Eta's own `EtaParseError`.
 * @example
 * ```ts
 * syntaxError('page.eta', 3, 'Bad template syntax: Unexpected token', '\n\n  <% if ( %>\n        ^')
 * ```
 */
export function syntaxError(template: string, line: number, message: string, excerpt: string): Error {
  const error = new EtaParseError(`${message} (${template}, line ${line})${excerpt}`)
  Object.defineProperty(error, LOCATED, { value: true })
  return error
}

/**
 * A tag's error with its excerpt.
 * @example
 * ```ts
 * tagError('page.eta', 3, 'fragcache: <% cache … %> is never closed', '\n\n  <% cache 1 "a" %>\n     ^')
 * ```
 */
export function tagError(template: string, line: number, message: string, excerpt: string): TemplateTagError {
  const error = new TemplateTagError(template, line, message)
  error.message += excerpt
  return error
}

/**
 * What the template `template` throws for `error`, raised by its code: fragcache's own errors and errors already
 * located in an included template pass as they are; a ReferenceError for a name declared inside a fragment is
 * explained; anything else becomes an `EtaRuntimeError` naming the template and the line its stack trace points at
 * (through `table`, see `lineTable`), with the source around it and the error as `cause`.
 */
export function locateError(
  template: string,
  error: unknown,
  name: string,
  table: readonly (readonly number[])[],
  source: string,
  declared: readonly [string, number, string][],
): unknown {
  if (error instanceof FragcacheError || (error instanceof Error && (error as { [LOCATED]?: true })[LOCATED] === true)) return error
  const explained = explainDeclared(template, error, declared)
  if (explained !== undefined) return explained
  const line = templateLine(error, name, table)
  if (line === undefined) return error // the layout's, or a frame this template's code is not in
  const message = error instanceof Error ? error.message : describe(error)
  const lines = source.split(/\r\n|\n|\r/)
  const context = lines
    .slice(Math.max(line - 3, 0), Math.min(lines.length, line + 2))
    .map((text, i) => {
      const at = Math.max(line - 3, 0) + i + 1
      return `${at === line ? ' >> ' : '    '}${at}| ${text}`
    })
    .join('\n')
  const located = new EtaRuntimeError(`${template}:${line}\n${context}\n\n${message}`)
  located.name = error instanceof Error ? error.name : located.name
  located.cause = error
  Object.defineProperty(located, LOCATED, { value: true })
  return located
}

/** The template line of the innermost frame of the function `name` in `error`'s stack; undefined when not found. */
function templateLine(error: unknown, name: string, table: readonly (readonly number[])[]): number | undefined {
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : ''
  // `at Eta.__fragcache_template7 (eval at compile (…), <anonymous>:12:5)`, or `at async …` after an await.
  const frame = new RegExp(`at (?:async )?(?:\\S+\\.)?${name} \\(.*<anonymous>:(\\d+):\\d+\\)`).exec(stack)
  if (frame === null) return undefined
  // The Function constructor puts two lines of its own before the body.
  const codeLine = Number(frame[1]) - 2
  let line: number | undefined
  for (const [at, templateAt] of table) {
    if ((at as number) > codeLine) break
    line = templateAt
  }
  return line === 0 ? undefined : line
}

/** A ReferenceError for a name declared inside a fragment body, explained; undefined for any other error. */
function explainDeclared(template: string, error: unknown, declared: readonly [string, number, string][]): TemplateTagError | undefined {
  let cause: unknown = error
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++, cause = cause.cause) {
    const match = cause instanceof ReferenceError ? /^(\S+) is not defined$/.exec(cause.message) : null
    const found = match && declared.find(([name]) => name === match[1])
    if (!found) continue
    const [name, line, text] = found
    return new TemplateTagError(
      template,
      line,
      `fragcache: ${name} is not defined outside the fragment that declares it: ${text} turns its body into a function of its own, so a variable declared inside it is not visible after endcache (and is not set at all on a cache hit); declare it before the cache tag instead`,
      { cause: error },
    )
  }
  return undefined
}

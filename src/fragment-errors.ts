/**
 * What fragcache's template errors show besides the template and line: the source line, with a caret under the
 * column, as Eta's own parse errors show it. Never throws, whatever it is given.
 */

/**
 * The excerpt that ends a template error: the line, and a caret under the column ('' when the line is not there).
 * @example
 * ```ts
 * sourceExcerpt('<p>\n{% cache "soon" "x" %}', 2, 4) // '\n\n  {% cache "soon" "x" %}\n     ^'
 * ```
 */
export function sourceExcerpt(source: string, line: number, column: number): string {
  const text = typeof source === 'string' ? source.split(/\r\n|\n|\r/)[line - 1] : undefined
  if (text === undefined) return ''
  const shown = text.length > 160 ? text.slice(Math.max(0, column - 80), Math.max(0, column - 80) + 160) : text
  const caret = text.length > 160 ? Math.min(column, 80) : column
  return `\n\n  ${shown}\n  ${' '.repeat(Math.max(0, caret - 1))}^`
}

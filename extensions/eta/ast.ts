/**
 * Eta's template AST as a plugin sees it (Eta 4 does not export the types): the nodes, which of them are cache tags,
 * and the source line of each tag (Eta gives a node its line only with some options).
 */
import type { EtaConfig } from 'eta'

/** An Eta plugin, as `new Eta({ plugins: [...] })` takes it (Eta does not export the type). */
export type EtaPlugin = EtaConfig['plugins'][number]

/** One node of a parsed template: a string of text, or a tag. */
export type AstNode = ReturnType<NonNullable<EtaPlugin['processAST']>>[number]

/** A tag: `t` is its type (`e` for `<% %>`, `i` for `<%= %>`, `r` for `<%~ %>`), `val` its code, trimmed. */
export interface TagNode {
  t: string
  val: string
  lineNo?: number
}

const OPEN = /^cache(?:\s|$)/
/** The closing tag's code. */
export const CLOSE = 'endcache'

/** An execution tag (`<% %>`), where a cache tag is written. */
export function isTag(node: AstNode | undefined): node is TagNode {
  return typeof node === 'object' && node !== null && node.t === 'e'
}

/** A `cache …` tag. */
export function isOpenTag(node: AstNode | undefined): node is TagNode {
  return isTag(node) && OPEN.test(node.val)
}

/** A `cache …` or an `endcache` tag. */
export function isCacheTag(node: AstNode | undefined): node is TagNode {
  return isTag(node) && isCacheTagCode(node.val)
}

/** Whether a tag's code is `cache …` or `endcache`. */
export function isCacheTagCode(code: string): boolean {
  return OPEN.test(code) || code === CLOSE
}

/**
 * The 1-based line of each cache tag: each tag's code is a verbatim slice of the source, and template text holds no
 * opening delimiter, so the next delimiter after the previous tag's code is this tag's.
 */
export function tagLines(source: string, ast: AstNode[], openDelimiter: string): Map<number, number> {
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
    if (isCacheTag(node)) lines.set(i, line)
    cursor = code + node.val.length
  }
  return lines
}

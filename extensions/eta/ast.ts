/**
 * Eta's template AST as a plugin sees it (Eta 4 does not export the types): the nodes, and which of them are cache
 * tags (their positions in the source are `locate.ts`'s).
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

/**
 * The grammar of the inside of an Eta cache tag (`300 "sidebar" it.lang, it.user.id deps=[…]`): where each input
 * ends, read with a JavaScript parser (acorn), and which is a keyword. What the inputs mean (TTL, name, keywords)
 * is the core's `cacheTagArguments`, the same for every engine.
 */
import { type Node, parseExpressionAt } from 'acorn'
import { describe } from '../../src/errors.ts'
import { type CacheTagItem, type CacheTagSyntax, type OptionKeyword, badTtl, cacheTagArguments } from '../../src/fragments.ts'
import { walk } from './body-analysis.ts'

/** The JavaScript source of each part of a tag. */
export interface ParsedTag {
  ttl: string
  name: string
  inputs: string[]
  /** The keywords given, but `ttl=` and `collection=` (as `deps`, `grace`). */
  keywords: Partial<Record<OptionKeyword, string>>
  /** `collection=`: what the loop the tag is in goes over. */
  collection?: string
}

const SYNTAX: CacheTagSyntax = { example: '<% cache 300 "sidebar" it.lang %>', keywordsLast: false }
/** `name=` (not `==`, not `=>`) where an input starts: a keyword, known or not (then the core refuses it). */
const KEYWORD = /([A-Za-z_$][\w$]*)\s*=(?![=>])/y
const SPACE = /\s*/y
const PARSE_OPTIONS = { ecmaVersion: 'latest', preserveParens: true } as const

/**
 * Splits the tag's inputs (`300 "sidebar" it.lang, it.user.id deps=[…]`) with a JavaScript parser: each input is the
 * longest expression acorn reads from where the previous one ended.
 * @throws Error whose message says what is wrong, in words for the template's author.
 */
export function parseTag(source: string): ParsedTag {
  const items: CacheTagItem<string>[] = []
  let pos = skipSpace(source, 0)
  let afterComma = false
  while (pos < source.length) {
    if (source[pos] === ',') {
      if (afterComma || items.length === 0) throw new Error(`unexpected "," at \`${source.slice(pos).trim()}\``)
      afterComma = true
      pos = skipSpace(source, pos + 1)
      continue
    }
    KEYWORD.lastIndex = pos
    const keyword = KEYWORD.exec(source)
    if (keyword) pos = skipSpace(source, KEYWORD.lastIndex)
    const node = readExpression(source, pos)
    const value = source.slice(node.start, node.end)
    items.push(keyword ? { keyword: keyword[1] as string, value } : { value })
    afterComma = false
    pos = skipSpace(source, node.end)
  }
  if (afterComma) throw new Error('the inputs end with ","')
  const { ttl, name, inputs, keywords, collection } = cacheTagArguments(items, SYNTAX, (reason) => {
    throw new Error(reason)
  })
  checkTtlLiteral(ttl)
  return collection === undefined ? { ttl, name, inputs, keywords } : { ttl, name, inputs, keywords, collection }
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
  const head = headOfInput(source, node)
  refuseAssignments(source, head)
  return head
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

/**
 * Refuses an assignment (`x = 1`, `it.n += 1`, `i++`) anywhere in an input: Eta's compiled code is not strict, so it
 * would write a global that later renders see, and a tag's inputs must only be read.
 */
function refuseAssignments(source: string, input: Node): void {
  walk(input, (node) => {
    if (node.type !== 'AssignmentExpression' && node.type !== 'UpdateExpression') return
    const written = source.slice(node.start, node.end)
    throw new Error(`\`${written}\` assigns, and the inputs of a cache tag are only read: compare with ===, or compute the value in a <% %> tag before it`)
  })
}

/** A TTL written as a literal that can never be one (a string, an array …) is refused when the template compiles. */
function checkTtlLiteral(ttl: string): void {
  const node = parseExpressionAt(ttl, 0, PARSE_OPTIONS) as Node & { value?: unknown }
  const impossible =
    (node.type === 'Literal' && node.value !== null && typeof node.value !== 'number') ||
    node.type === 'TemplateLiteral' ||
    node.type === 'ArrayExpression' ||
    node.type === 'ObjectExpression'
  if (impossible) throw new Error(badTtl(ttl))
}

function skipSpace(source: string, pos: number): number {
  SPACE.lastIndex = pos
  SPACE.exec(source)
  return SPACE.lastIndex
}

/**
 * The value of a name written as a string or number literal (`"teaser"`), else undefined.
 * @example
 * ```ts
 * literalName('"teaser"') // 'teaser'
 * literalName('it.name')  // undefined
 * ```
 */
export function literalName(code: string): string | undefined {
  try {
    const node = parseExpressionAt(code, 0, PARSE_OPTIONS) as Node & { value?: unknown }
    if (node.end !== code.length || node.type !== 'Literal') return undefined
    return typeof node.value === 'string' || typeof node.value === 'number' ? String(node.value) : undefined
  } catch {
    return undefined
  }
}

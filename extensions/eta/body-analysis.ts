/**
 * What a fragment body's code means once it becomes a closure of its own (read with acorn): the names it declares
 * at its top level, and what would make a cache hit silently wrong (an assignment to an outer variable, `layout()`).
 */
import { type Node, parse as parseScript } from 'acorn'
import { type AstNode, type TagNode, isCacheTagCode } from './ast.ts'

/** Eta's node types holding JavaScript: `<% %>` (e), `<%= %>` (i), `<%~ %>` (r). */
const CODE_TYPES = new Set(['e', 'i', 'r'])

/** What {@link analyseBody} found. */
export interface BodyAnalysis {
  /** Names declared at the top of the body: not visible after `endcache` (see `EtaFragmentRuntime.explain`). */
  declared: string[]
  /** Why the body cannot be a fragment, worded to follow the tag as written. */
  problem?: string
}

/**
 * Analyses a fragment body: on a hit the body does not run, so an assignment to a variable declared outside it, or a
 * `layout()` call, would be skipped.
 */
export function analyseBody(body: AstNode[]): BodyAnalysis {
  const code = body
    .filter((node): node is TagNode => typeof node === 'object' && CODE_TYPES.has(node.t) && !isCacheTagCode(node.val))
    .map((node) => (node.t === 'e' ? node.val : `(${node.val})`))
    .join(';\n')
  let program: { body: Node[] }
  try {
    program = parseScript(code, { ecmaVersion: 'latest', allowAwaitOutsideFunction: true, allowReturnOutsideFunction: true }) as unknown as {
      body: Node[]
    }
  } catch {
    return { declared: [] } // code split across the tags in a way JavaScript cannot read alone: Eta reports it
  }
  const declared: string[] = []
  for (const statement of program.body) {
    const s = statement as Node & { declarations?: { id: Node }[]; id?: Node | null }
    if (s.type === 'VariableDeclaration') for (const d of s.declarations ?? []) collectPatternNames(d.id, declared)
    else if ((s.type === 'FunctionDeclaration' || s.type === 'ClassDeclaration') && s.id) collectPatternNames(s.id, declared)
  }
  const local = new Set<string>()
  const assigned: [root: string, target: string][] = []
  let layout = false
  walk(program as unknown as Node, (node) => {
    const n = node as Node & Record<string, unknown>
    if (n.type === 'VariableDeclarator') collectInto(n.id, local)
    else if (n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression' || n.type === 'ArrowFunctionExpression') {
      collectInto(n.id, local)
      for (const param of (n.params as Node[]) ?? []) collectInto(param, local)
    } else if (n.type === 'ClassDeclaration') collectInto(n.id, local)
    else if (n.type === 'CatchClause') collectInto(n.param, local)
    else if (n.type === 'AssignmentExpression') assigned.push(...assignedNames(n.left as Node, code))
    else if (n.type === 'UpdateExpression') assigned.push(...assignedNames(n.argument as Node, code))
    else if (n.type === 'CallExpression' && (n.callee as Node & { name?: string }).name === 'layout') layout = true
  })
  const outside = assigned.find(([root]) => !local.has(root))
  if (outside !== undefined) {
    const [root, target] = outside
    return {
      declared,
      problem: `assigns to ${target}, and ${root} is declared outside the fragment: on a cache hit the body does not run and ${target} would keep its old value; compute it before the cache tag`,
    }
  }
  if (layout) return { declared, problem: 'calls layout(): on a cache hit the body does not run and the layout would be skipped; call it outside the cache tag' }
  return { declared }
}

/** `[root variable, target as written]` for each variable an assignment target writes (`it.n` writes into `it`). */
function assignedNames(target: Node, code: string): [string, string][] {
  let root = target as Node & { object?: Node }
  while (root.type === 'MemberExpression' && root.object) root = root.object as typeof root
  if (root !== target) return root.type === 'Identifier' ? [[(root as unknown as { name: string }).name, code.slice(target.start, target.end)]] : []
  const names: string[] = []
  collectPatternNames(target, names)
  return names.map((name) => [name, name])
}

function collectInto(pattern: unknown, names: Set<string>): void {
  const list: string[] = []
  collectPatternNames(pattern as Node | null | undefined, list)
  for (const name of list) names.add(name)
}

/** Calls `visit` on `node` and every node below it. */
export function walk(node: Node, visit: (node: Node) => void): void {
  visit(node)
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const child of value) if (child !== null && typeof child === 'object' && typeof child.type === 'string') walk(child as Node, visit)
    } else if (value !== null && typeof value === 'object' && typeof (value as Node).type === 'string') {
      walk(value as Node, visit)
    }
  }
}

function collectPatternNames(pattern: Node | null | undefined, names: string[]): void {
  if (!pattern) return
  const p = pattern as Node & {
    name?: string
    properties?: Node[]
    elements?: (Node | null)[]
    left?: Node
    argument?: Node
    value?: Node
  }
  if (p.type === 'Identifier') names.push(p.name as string)
  else if (p.type === 'ObjectPattern') {
    for (const prop of p.properties ?? []) collectPatternNames(prop.type === 'RestElement' ? prop : (prop as typeof p).value, names)
  }
  else if (p.type === 'ArrayPattern') for (const element of p.elements ?? []) collectPatternNames(element, names)
  else if (p.type === 'AssignmentPattern') collectPatternNames(p.left, names)
  else if (p.type === 'RestElement') collectPatternNames(p.argument, names)
}

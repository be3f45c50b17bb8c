/**
 * The code the plugin writes into a compiled Eta template: the call that opens a fragment and the code that closes
 * it, the prelude that finds the runtime, the code that throws a tag's error at render time, and where in the
 * compiled function a cache tag cannot wait.
 */
import { type Node, parse as parseScript } from 'acorn'
import type { ParsedTag } from './tag-grammar.ts'

/** One cache tag found at compile time: the 1-based line and column of its code (`cache …`), and the tag as written. */
export interface TagInfo {
  line: number
  column: number
  /** The tag as written, for messages: `<% cache 300 "sidebar" it.lang %>`. */
  text: string
}

/**
 * What the runtime needs to give a fragment its digest at its first render: a key unique to this compile, the digest
 * of the body's own source, and the templates the body names (JSON), read then (see `etaFragmentDigest`).
 */
export interface DigestSite {
  key: string
  own: string
  references: string
}

// Eta 4 compiles the layout call differently for async and sync templates; plugins are not told which.
const ASYNC_LAYOUT = '__eta.res = await includeAsync (__eta.layout'
const SYNC_LAYOUT = '__eta.res = include (__eta.layout'
const AWAITED_FRAGMENT = /__fragcache_html(\d+)/y
const AsyncFunction = (async () => {}).constructor as new (...args: string[]) => unknown

/** How Eta compiled a template: to an async function, a sync one, or in a way this plugin does not know. */
export function compiledAs(fn: string): 'async' | 'sync' | 'unknown' {
  if (fn.includes(ASYNC_LAYOUT)) return 'async'
  return fn.includes(SYNC_LAYOUT) ? 'sync' : 'unknown'
}

/** The code every template with cache tags starts with: finds the runtime of the plugin with id `pluginId`. */
export function preludeCode(pluginId: number): string {
  return (
    `const __fragcache = ((this && this.config && this.config.plugins) || []).find((p) => p != null && p.fragcacheEtaId === ${pluginId})?.fragcacheEtaRuntime;\n` +
    `if (__fragcache === undefined) throw new Error("fragcache: this template was compiled with the fragcache Eta plugin and must be rendered by the Eta instance that has it");\n`
  )
}

/** The code that throws a tag's error at render time, when the template's name is known; `excerpt` ends the message. */
export function throwCode(line: number, message: string, excerpt: string): string {
  return `throw __fragcache.tagError(this, options, ${line}, ${JSON.stringify(message)}, ${JSON.stringify(excerpt)});\n`
}

/** The code that throws a syntax error of the template at render time (see {@link throwCode}). */
export function syntaxThrowCode(line: number, message: string, excerpt: string): string {
  return `throw __fragcache.syntaxError(this, options, ${line}, ${JSON.stringify(message)}, ${JSON.stringify(excerpt)});\n`
}

/**
 * Wraps a template's code in a function named `name` (so that its frames can be told apart in a stack trace) whose
 * catch hands every error to the runtime's `locate`, with what it needs to name the template's line: the table from
 * the code's lines to the template's (`locate` computes it from the wrapped body, before the catch is added), the
 * template source, and the names declared inside fragments. The catch's data is only evaluated when something throws.
 */
export function locatedCode<T extends { table: number[][] }>(
  prelude: string,
  code: string,
  name: string,
  locate: (body: string) => T,
  source: string,
  declared: [string, number, string][],
): T & { code: string } {
  const body = `${prelude}return (async function ${name}() {\ntry {\n${code}\n`
  const found = locate(body)
  const data = [JSON.stringify(name), JSON.stringify(found.table), JSON.stringify(source), JSON.stringify(declared)].join(', ')
  return { ...found, code: `${body}} catch (__fragcache_error) { throw __fragcache.locate(this, options, __fragcache_error, ${data}); }\n}).call(this);\n` }
}

/**
 * The code that opens fragment `id`: a call whose last argument is the body, as an async closure writing to a
 * buffer of its own. The output before the tag is kept aside first: the body may start before the call returns.
 */
export function openCode(id: number, info: TagInfo, tag: ParsedTag, site: DigestSite): string {
  const collection = tag.collection === undefined ? 'undefined, null' : `(${tag.collection}), ${itemsPlaceholder(id)}`
  return (
    `{ const __fragcache_before${id} = __eta.res; ` +
    `const __fragcache_html${id} = __fragcache.run(this, options, ${info.line}, ${JSON.stringify(site.key)}, ${JSON.stringify(site.own)}, ` +
    `${JSON.stringify(site.references)}, ${JSON.stringify(info.text)}, () => ${valuesCode(tag, info.line)}, ${collection}, ` +
    `async () => { __eta.res = ''; try {`
  )
}

/**
 * The code of a tag's call: a `FragmentCall` object literal (its digest and template are set at render time, when
 * they are known), handed to the core as it is.
 */
function valuesCode(tag: ParsedTag, line: number): string {
  const keywords = Object.entries(tag.keywords).map(([keyword, code]) => `, ${keyword}: (${code})`)
  return `({ ttl: (${tag.ttl}), name: (${tag.name}), inputs: [${tag.inputs.join(', ')}]${keywords.join('')}, digest: '', template: '', line: ${line} })`
}

/** Stands where a `collection=` tag's values for one item go, until {@link withItemValues} knows the loop's variable. */
function itemsPlaceholder(id: number): string {
  return `__fragcache_items${id}__`
}

/**
 * `code` with the values of `collection=` tag `id` as a function of one item of its loop, whose parameter is the
 * loop's variable (or pattern), so that `article.id` reads the item given; undefined when the tag is in no
 * `for…of`/`for…in` loop.
 */
export function withItemValues(code: string, varName: string, id: number, tag: ParsedTag, line: number): string | undefined {
  const variable = loopVariable(code, varName, `__fragcache_html${id}`)
  if (variable === undefined) return undefined
  return code.replace(itemsPlaceholder(id), () => `((${variable}) => ${valuesCode(tag, line)})`)
}

/** The source of the variable (or pattern) of the innermost `for…of`/`for…in` loop around the declaration of `name`. */
function loopVariable(code: string, varName: string, name: string): string | undefined {
  const head = `(async function (${varName}, options) {\n`
  const source = `${head}${code}\n})`
  let program: Node
  try {
    program = parseScript(source, { ecmaVersion: 'latest' }) as Node
  } catch {
    return undefined
  }
  const loops: Node[] = []
  let found: string | undefined
  const visit = (node: Node): void => {
    if (found !== undefined) return
    const n = node as Node & { left?: Node; id?: Node & { name?: string } }
    if (n.type === 'VariableDeclarator' && n.id?.name === name) {
      const loop = loops[loops.length - 1] as (Node & { left: Node & { declarations?: { id: Node }[] } }) | undefined
      if (loop !== undefined) {
        const target = loop.left.declarations?.[0]?.id ?? loop.left
        found = source.slice(target.start, target.end)
      }
      return
    }
    const isLoop = n.type === 'ForOfStatement' || n.type === 'ForInStatement'
    if (isLoop) loops.push(n)
    for (const value of Object.values(n)) {
      for (const child of Array.isArray(value) ? value : [value]) {
        if (child !== null && typeof child === 'object' && typeof (child as Node).type === 'string') visit(child as Node)
      }
    }
    if (isLoop) loops.pop()
  }
  visit(program)
  return found
}

/** The code that closes fragment `id`: a hit (a string) is appended at once; only a miss (a promise) is awaited. */
export function closeCode(id: number): string {
  const html = `__fragcache_html${id}`
  return (
    `return __eta.res; } finally { __eta.res = __fragcache_before${id}; } }); ` +
    `__eta.res = __fragcache_before${id} + (typeof ${html} === 'string' ? ${html} : await ${html}); }`
  )
}

/**
 * The cache tag whose `await` sits in a function that is not async, if any. V8 only says "await is only valid in
 * async functions" without a position, so on a syntax error acorn finds where it is.
 */
export function tagInSyncFunction(code: string, varName: string, tags: readonly TagInfo[]): TagInfo | undefined {
  try {
    new AsyncFunction(varName, 'options', code)
    return undefined
  } catch (error) {
    if (!(error instanceof SyntaxError)) return undefined
  }
  const head = `(async function (${varName}, options) {\n`
  try {
    parseScript(`${head}${code}\n})`, { ecmaVersion: 'latest' })
  } catch (error) {
    const pos = (error as { pos?: number }).pos
    if (typeof pos !== 'number') return undefined
    // acorn reads `await` as a name outside async functions and stops at what follows it: a fragment's HTML.
    AWAITED_FRAGMENT.lastIndex = pos - head.length
    const match = AWAITED_FRAGMENT.exec(code)
    if (match) return tags[Number(match[1]) - 1]
  }
  return undefined
}

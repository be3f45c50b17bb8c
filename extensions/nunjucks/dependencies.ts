/**
 * What a Nunjucks template renders besides its own source, found by lexing it: `include`, `import`, `from … import` and
 * `extends` with a literal name, the macros a range of it calls (defined in it or imported), and `super()`. Read
 * through the environment's loaders, so a fragment's digest covers them (see `fragmentDigest`).
 */
import { describe } from '../../src/errors.ts'
import { type ReadReference, type ReadTemplate, type TemplateReference, fragmentDigest } from '../../src/fragment-digest.ts'
import type { FragmentDigest } from '../../src/fragment-digest.ts'
import type { Lexer, Token, Tokenizer } from './shapes.ts'

/** A reference and where it starts in the source. */
type Located<T> = T & { readonly start: number }

/** What one lexing pass found in a template. */
export interface ScannedTemplate {
  readonly references: Located<TemplateReference>[]
  /** Names called: `card`, `forms.field`, `super`. */
  readonly calls: Located<{ name: string }>[]
  /** Import aliases and imported names, to what they import. */
  readonly imports: Map<string, TemplateReference>
  /** Macros defined in the template: their source span. */
  readonly macros: Map<string, { start: number; end: number }>
  parent: TemplateReference | undefined
}

/** What one compile read already: scans and templates, by id. */
export type ReadMemo = Map<string, ScannedTemplate | ReadTemplate | { unreadable: string }>

/** What the parser is given, to lex other sources the same way. */
export interface LexSetup {
  readonly lexer: Lexer
  readonly options: object
}

/** The part of a Nunjucks Environment read here. */
export interface TemplateSourceEnv {
  getTemplate(name: string, eagerCompile: boolean, parentName: string | null): { tmplStr?: unknown; path?: string } | undefined
}

/** The statements that name a template, and the words that end the name's expression in each. */
const STOP_WORDS: Record<string, readonly string[]> = { include: ['ignore', 'with', 'without'], extends: [], import: ['as'], from: ['import'] }

/** Lexer options that read a source as the template being parsed was read. */
export function lexSetup(tokens: Tokenizer, lexer: Lexer): LexSetup {
  const t = tokens.tags
  return {
    lexer,
    options: {
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
    },
  }
}

/**
 * Lexes `source` for what it renders. A source the lexer cannot read yields what was found before the error (the
 * parser reports the error itself).
 */
export function scanTemplate(source: string, setup: LexSetup): ScannedTemplate {
  const { lexer } = setup
  const scanned: ScannedTemplate = { references: [], calls: [], imports: new Map(), macros: new Map(), parent: undefined }
  const lineStarts = [0]
  for (let i = source.indexOf('\n'); i !== -1; i = source.indexOf('\n', i + 1)) lineStarts.push(i + 1)
  const offset = (token: Token) => (lineStarts[token.lineno] ?? 0) + token.colno
  const openMacros: { name: string; start: number }[] = []
  let raw: string | undefined
  try {
    const tokens = lexer.lex(source, setup.options)
    let token: Token | null
    while ((token = tokens.nextToken()) !== null) {
      const isBlock = token.type === lexer.TOKEN_BLOCK_START
      if (!isBlock && token.type !== lexer.TOKEN_VARIABLE_START) continue
      const start = offset(token)
      const statement: Token[] = []
      const end = isBlock ? lexer.TOKEN_BLOCK_END : lexer.TOKEN_VARIABLE_END
      while ((token = tokens.nextToken()) !== null && token.type !== end) if (token.type !== lexer.TOKEN_WHITESPACE) statement.push(token)
      const stop = token === null ? source.length : offset(token) + token.value.length
      const word = isBlock && statement[0]?.type === lexer.TOKEN_SYMBOL ? statement[0].value : ''
      if (raw !== undefined) {
        if (word === `end${raw}`) raw = undefined
        continue
      }
      if (word === 'raw' || word === 'verbatim') raw = word
      else if (word === 'macro' && statement[1] !== undefined) openMacros.push({ name: statement[1].value, start })
      else if (word === 'endmacro') {
        const macro = openMacros.pop()
        if (macro !== undefined) scanned.macros.set(macro.name, { start: macro.start, end: stop })
      } else if (word in STOP_WORDS) {
        const reference = referenceOf(word, statement, source.slice(start, stop), lexer)
        if (word === 'extends') scanned.parent = reference
        scanned.references.push({ ...reference, start })
        for (const alias of importedNames(word, statement, lexer)) scanned.imports.set(alias, reference)
      }
      // A macro's signature (`{% macro card(name) %}`) defines it; it does not call it.
      if (word !== 'macro') collectCalls(statement, lexer, start, scanned.calls)
    }
  } catch {
    // Unreadable from here on: the parser reports why, with the line.
  }
  return scanned
}

/**
 * The references of the part of a scanned template between `start` and `end` (a fragment's body, a macro): those
 * written there, and the macros it calls, local or imported (an import outside the range counts when it is used);
 * with `whole`, the template's `extends` too.
 */
export function referencesIn(scanned: ScannedTemplate, start: number, end: number, whole = false): TemplateReference[] {
  const within = (at: { start: number }) => at.start >= start && at.start < end
  const found = new Map<string, TemplateReference>()
  const add = (reference: TemplateReference) => found.set(`${reference.kind} ${reference.text}`, reference)
  for (const reference of scanned.references) if (within(reference) && reference.kind !== 'extends') add(reference)
  for (const call of scanned.calls) {
    if (!within(call)) continue
    const [head = '', member] = call.name.split('.')
    if (member === undefined && scanned.macros.has(head)) add({ kind: 'macro', name: head, text: `macro ${head}()` })
    else if (scanned.imports.has(head)) add(scanned.imports.get(head) as TemplateReference)
    else if (head === 'super' && scanned.parent !== undefined) add(scanned.parent)
  }
  // A whole template's `extends` counts: its output is the layout's.
  if (whole && scanned.parent !== undefined) add(scanned.parent)
  return [...found.values()]
}

/**
 * The digest of the fragment whose body spans `start`–`end` of `source` (the template `fromId`, being compiled in
 * `env`): see `fragmentDigest`. `memo` holds what this compile read already (one per compile: a template edited since
 * an earlier compile is read again).
 */
export function nunjucksFragmentDigest(
  source: string,
  start: number,
  end: number,
  fromId: string,
  env: TemplateSourceEnv | undefined,
  setup: LexSetup,
  memo: ReadMemo,
): FragmentDigest {
  const scan = (text: string, id: string): ScannedTemplate => {
    const key = `scan\0${id}`
    let scanned = memo.get(key) as ScannedTemplate | undefined
    if (scanned === undefined) memo.set(key, (scanned = scanTemplate(text, setup)))
    return scanned
  }
  const sources = new Map<string, string>([[fromId, source]])
  const read: ReadReference = (reference, from) => {
    const [fromTemplate = from] = from.split('#')
    if (reference.kind === 'macro') {
      const text = sources.get(fromTemplate) ?? ''
      const scanned = scan(text, fromTemplate)
      const span = scanned.macros.get(reference.name)
      if (span === undefined) return { unreadable: 'not defined here' }
      return { id: `${fromTemplate}#${reference.name}`, source: text.slice(span.start, span.end), references: referencesIn(scanned, span.start, span.end) }
    }
    const key = `read\0${fromTemplate}\0${reference.name}`
    let found = memo.get(key) as ReadTemplate | { unreadable: string } | undefined
    if (found === undefined) memo.set(key, (found = readTemplate(reference.name, fromTemplate)))
    if (!('unreadable' in found)) sources.set(found.id, found.source)
    return found
  }
  const readTemplate = (name: string, from: string): ReadTemplate | { unreadable: string } => {
    if (env === undefined) return { unreadable: 'no environment to read it from' }
    let template: ReturnType<TemplateSourceEnv['getTemplate']>
    try {
      template = env.getTemplate(name, false, from.startsWith('(') ? null : from)
    } catch (error) {
      return { unreadable: describe(error) }
    }
    if (template === undefined) return { unreadable: 'its loader is asynchronous: not followed' }
    if (typeof template.tmplStr !== 'string') return { unreadable: 'precompiled: its source is not available' }
    const id = template.path || name
    const scanned = scan(template.tmplStr, id)
    return { id, source: template.tmplStr, references: referencesIn(scanned, 0, template.tmplStr.length, true) }
  }
  return fragmentDigest(source.slice(start, end), referencesIn(scan(source, fromId), start, end), read, fromId)
}

function referenceOf(word: string, statement: Token[], text: string, lexer: Lexer): TemplateReference {
  const stops = STOP_WORDS[word] ?? []
  const expression: Token[] = []
  for (const token of statement.slice(1)) {
    if (token.type === lexer.TOKEN_SYMBOL && stops.includes(token.value)) break
    expression.push(token)
  }
  const only = expression.length === 1 ? expression[0] : undefined
  const name = only !== undefined && only.type === lexer.TOKEN_STRING ? only.value : undefined
  const kind = word === 'include' || word === 'extends' ? word : 'import'
  return { kind, name, text: text.replace(/\s+/g, ' ') }
}

/** The names an `import … as m` or a `from … import a, b as c` binds. */
function importedNames(word: string, statement: Token[], lexer: Lexer): string[] {
  const symbols = statement.map((token) => (token.type === lexer.TOKEN_SYMBOL || token.type === lexer.TOKEN_COMMA ? token.value : ''))
  if (word === 'import') {
    const as = symbols.lastIndexOf('as')
    return as === -1 || symbols[as + 1] === undefined ? [] : [symbols[as + 1] as string]
  }
  if (word !== 'from') return []
  const names: string[] = []
  const list = symbols.slice(symbols.indexOf('import') + 1)
  for (let i = 0; i < list.length; i++) {
    const symbol = list[i] as string
    if (symbol === 'with' || symbol === 'without') break
    if (symbol === '' || symbol === ',') continue
    if (list[i + 1] === 'as') {
      names.push(list[i + 2] ?? symbol)
      i += 2
    } else names.push(symbol)
  }
  return names
}

/** `name(` and `a.b(` among a tag's tokens. */
function collectCalls(statement: Token[], lexer: Lexer, start: number, calls: Located<{ name: string }>[]): void {
  for (let i = 0; i < statement.length; i++) {
    const token = statement[i] as Token
    if (token.type !== lexer.TOKEN_SYMBOL) continue
    let name = token.value
    let j = i + 1
    while (statement[j]?.value === '.' && statement[j + 1]?.type === lexer.TOKEN_SYMBOL) {
      name += `.${(statement[j + 1] as Token).value}`
      j += 2
    }
    if (statement[j]?.value === '(') calls.push({ name, start })
  }
}

/**
 * The parts of Nunjucks' undocumented API the extension relies on (checked on nunjucks 3.2.4): the parser, lexer
 * and node classes a tag extension is handed, what compiled templates pass at render time, and the TemplateError
 * contract (`nunjucks/src/lib.js`). Types only, but for the two runtime objects they describe.
 */
import nunjucks from 'nunjucks'

export interface Token {
  type: string
  value: string
  /** 0-based. */
  lineno: number
  /** 0-based. */
  colno: number
}

export interface Tokenizer {
  str: string
  index: number
  tags: { BLOCK_START: string; BLOCK_END: string; VARIABLE_START: string; VARIABLE_END: string; COMMENT_START: string; COMMENT_END: string }
  trimBlocks: boolean
  lstripBlocks: boolean
  nextToken(): Token | null
}

export interface TemplateNode {
  typename: string
  lineno: number
  colno: number
  value?: unknown
}

export interface Parser {
  tokens: Tokenizer
  peekToken(): Token | null
  nextToken(): Token | null
  skipValue(type: string, value: string): boolean
  parseExpression(): TemplateNode
  parseUntilBlocks(...names: string[]): TemplateNode
  advanceAfterBlockEnd(name?: string): Token
}

type NodeClass = new (lineno: number, colno: number, ...fields: unknown[]) => TemplateNode

export interface Nodes {
  NodeList: NodeClass
  Literal: NodeClass
  Array: NodeClass
  Dict: NodeClass
  Pair: NodeClass
  Symbol: NodeClass
  Caller: NodeClass
  CallExtension: new (ext: object, prop: string, args: TemplateNode, contentArgs: TemplateNode[]) => TemplateNode
  CallExtensionAsync: new (ext: object, prop: string, args: TemplateNode, contentArgs: TemplateNode[]) => TemplateNode
}

export interface Lexer {
  TOKEN_BLOCK_START: string
  TOKEN_BLOCK_END: string
  TOKEN_VARIABLE_START: string
  TOKEN_VARIABLE_END: string
  TOKEN_STRING: string
  TOKEN_COMMA: string
  TOKEN_OPERATOR: string
  TOKEN_SYMBOL: string
  TOKEN_WHITESPACE: string
  lex(src: string, opts: object): Tokenizer
}

/** What Nunjucks' compiled code hands the extension as `context` (only its identity is used). */
export type RenderContext = object

/** The body of the tag, as compiled by Nunjucks: renders into its own buffer and reports through `cb`. */
export type Body = (cb: (err: unknown, output?: unknown) => void) => unknown

/** The callback of a `CallExtensionAsync` node: the compiled continuation of the template after the tag. */
export type Continuation = (err: unknown, output?: unknown) => void

export type RootRenderFunc = (env: unknown, context: RenderContext, frame: Frame, runtime: unknown, cb: Continuation) => void

export interface Frame {
  parent?: Frame | undefined
}

/**
 * What a Nunjucks TemplateError carries beside an Error. `runtime.handleError` passes an error with a `lineno` on
 * unchanged, and `lib._prettifyError` calls `Update` with each template path the error passes through.
 */
export interface NunjucksTemplateError extends Error {
  lineno?: number
  colno?: number
  Update(path?: string): NunjucksTemplateError
}

/** `nunjucks.lib.TemplateError`: wraps `message` (an Error's becomes `Name: message`) with a 1-based line and column. */
export const TemplateError = nunjucks.lib.TemplateError as unknown as new (message: unknown, lineno?: number, colno?: number) => NunjucksTemplateError

/** `nunjucks.lib._prettifyError(path, withInternals, err)`, called by `Template` on every error a render reports. */
export type PrettifyError = (path: string | undefined, withInternals: boolean, error: unknown) => Error

/** The `lib` module object, as `environment.js` reads `_prettifyError` from it on every call. */
export const lib = nunjucks.lib as unknown as { _prettifyError: PrettifyError } & Record<PropertyKey, unknown>

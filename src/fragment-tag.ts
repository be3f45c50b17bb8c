/**
 * The grammar of a template cache tag, the same in every engine: TTL, name, inputs and the keywords, in the one place
 * the keywords are listed. Engines parse their own syntax into {@link CacheTagItem}s and let this sort them out.
 */

/**
 * The keywords a cache tag takes, in the one place they are listed: every engine reads its tags against this list,
 * and every message that names them is built from it. Adding one: a word here, a field of that name in
 * `FragmentCall` (every keyword but `ttl` and `collection` reaches it under its own name) and its check in `checkCall`.
 * @example
 * ```ts
 * CACHE_TAG_KEYWORDS.includes('deps') // true
 * ```
 */
export const CACHE_TAG_KEYWORDS = ['deps', 'ttl', 'grace', 'vary', 'collection'] as const

/** One of {@link CACHE_TAG_KEYWORDS}. */
export type CacheTagKeyword = (typeof CACHE_TAG_KEYWORDS)[number]

/**
 * The keywords whose values an engine hands over as they are, by name: not `ttl=` (it takes the TTL's place) nor
 * `collection=` (the engine prefetches the fragments of its items with it).
 */
export type OptionKeyword = Exclude<CacheTagKeyword, 'ttl' | 'collection'>

/**
 * {@link OptionKeyword}s, in the order of {@link CACHE_TAG_KEYWORDS}: what an engine evaluates into an object of
 * these names at render time.
 * @example
 * ```ts
 * OPTION_KEYWORDS // ['deps', 'grace', 'vary']
 * ```
 */
export const OPTION_KEYWORDS: readonly OptionKeyword[] = CACHE_TAG_KEYWORDS.filter((word): word is OptionKeyword => word !== 'ttl' && word !== 'collection')

/**
 * One argument of a cache tag, as an engine parsed it, in the order written: an input, or `keyword=value`.
 * `Code` is whatever the engine holds an expression as (a parser node, a source string).
 * @example
 * ```ts
 * const items: CacheTagItem<string>[] = [{ value: '300' }, { value: '"sidebar"' }, { keyword: 'deps', value: '["site"]' }]
 * ```
 */
export interface CacheTagItem<Code> {
  /** The word before `=`, or '' when what stands there is not a plain name; absent for an input. */
  readonly keyword?: string
  readonly value: Code
}

/**
 * What an engine's cache tag differs in from another's.
 * @example
 * ```ts
 * const syntax: CacheTagSyntax = { example: '{% cache 300 "sidebar" lang %}', keywordsLast: true }
 * ```
 */
export interface CacheTagSyntax {
  /** The engine's own way to write a tag, quoted as the example in messages. */
  readonly example: string
  /** Whether every input must come before the keywords, as in a Nunjucks (Jinja, Python) call. */
  readonly keywordsLast: boolean
}

/**
 * A cache tag's arguments, sorted out: the TTL (from `ttl=`, else the first input), the name (the next input),
 * the inputs left, the collection its loop renders (`collection=`), and every other keyword given.
 */
export interface CacheTagArguments<Code> {
  ttl: Code
  name: Code
  inputs: Code[]
  collection?: Code
  keywords: Partial<Record<OptionKeyword, Code>>
}

/**
 * Sorts a cache tag's arguments into TTL, name, inputs and keywords, refusing an unknown keyword, a keyword given
 * twice, an input after a keyword (where the engine's syntax says so) and a missing TTL or name. `fail` is called
 * with the reason (the same words in every engine) and must throw the engine's error, with its template and line.
 * @example
 * ```ts
 * const fail = (reason: string): never => { throw new Error(reason) }
 * const args = cacheTagArguments([{ value: '300' }, { value: '"sidebar"' }, { value: 'it.lang' }], syntax, fail)
 * // { ttl: '300', name: '"sidebar"', inputs: ['it.lang'], keywords: {} }
 * ```
 */
export function cacheTagArguments<Code>(
  items: Iterable<CacheTagItem<Code>>,
  syntax: CacheTagSyntax,
  fail: (reason: string) => never,
): CacheTagArguments<Code> {
  const inputs: Code[] = []
  const given: Partial<Record<CacheTagKeyword, Code>> = {}
  let keywordSeen = false
  for (const item of items) {
    const keyword = item.keyword
    if (keyword === undefined) {
      if (keywordSeen && syntax.keywordsLast) fail(`the inputs of the cache tag must come before ${KEYWORD_LIST}`)
      inputs.push(item.value)
      continue
    }
    if (!isCacheTagKeyword(keyword)) fail(`the cache tag takes only ${KEYWORD_LIST} as keywords; got ${keyword || 'an expression'}=`)
    if (given[keyword] !== undefined) fail(`${keyword}= is given twice in the cache tag`)
    given[keyword] = item.value
    keywordSeen = true
  }
  const { ttl: ttlKeyword, collection, ...keywords } = given
  const ttl = ttlKeyword ?? inputs.shift()
  const name = inputs.shift()
  if (ttl === undefined || name === undefined) {
    fail(`the cache tag needs a TTL and a fragment name, as in ${syntax.example} (or ttl=300 "sidebar")`)
  }
  return collection === undefined ? { ttl, name, inputs, keywords } : { ttl, name, inputs, collection, keywords }
}

/**
 * The reason a TTL is refused, in the same words whether an engine sees it in the source or the tag sees its value.
 * @example
 * ```ts
 * badTtl('"soon"', 'sidebar') // 'the TTL of fragment "sidebar" must be a number of seconds or null; got "soon"'
 * ```
 */
export function badTtl(got: string, name?: string): string {
  return `the TTL${name === undefined ? '' : ` of fragment "${name}"`} must be a number of seconds or null; got ${got}`
}

/**
 * The reason a grace is refused (see {@link badTtl}).
 * @example
 * ```ts
 * badGrace('-1', 'sidebar') // 'the grace of fragment "sidebar" must be a number of seconds of at least 0; got -1'
 * ```
 */
export function badGrace(got: string, name?: string): string {
  return `the grace${name === undefined ? '' : ` of fragment "${name}"`} must be a number of seconds of at least 0; got ${got}`
}

/** `deps=, ttl= and grace=`, for messages. */
const KEYWORD_LIST = CACHE_TAG_KEYWORDS.map((keyword, i) => `${i === 0 ? '' : i === CACHE_TAG_KEYWORDS.length - 1 ? ' and ' : ', '}${keyword}=`).join('')

function isCacheTagKeyword(word: string): word is CacheTagKeyword {
  return (CACHE_TAG_KEYWORDS as readonly string[]).includes(word)
}

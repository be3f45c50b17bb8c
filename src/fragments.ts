import { hash } from 'node:crypto'
import { TemplateTagError, describe } from './errors.ts'
import { describeValue } from './keys.ts'
import type { TieredCache } from './tiered-cache.ts'
import type { Ttl } from './ttl.ts'

/** What a template's cache tag evaluated to, handed over by an engine extension. */
export interface FragmentCall {
  /** The fragment's name (a string, or a number); must not be empty. */
  name: unknown
  /** Seconds, or null for no expiry. */
  ttl: unknown
  /** The values the fragment varies by (`user.id`, `lang`, …). */
  inputs: readonly unknown[]
  /** Data-version tags (`deps=[…]`), or undefined. */
  deps?: unknown
  /** Digest of the fragment's own template source, computed when the template was compiled. */
  digest: string
  /** Template name and 1-based line of the tag, for errors. */
  template: string
  line: number
}

/** A checked {@link FragmentCall}, with its cache key. */
export interface PreparedFragment {
  readonly name: string
  readonly key: string
  readonly ttl: Ttl
  readonly deps: readonly string[]
  readonly template: string
  readonly line: number
}

/** Hits and misses of one fragment name. */
export interface FragmentCounts {
  hits: number
  misses: number
}

const TAG_PATTERN = /^\S{1,200}$/

/**
 * The caching logic of a template cache tag, shared by every engine (the extensions only parse and glue):
 * the key (name + hashed inputs + the digest of the fragment's source), lookup through every tier,
 * dependency checks, a single-flight render of the body on a miss, and the recording of the deps the body
 * saw (its own and its nested fragments') into any fragment or page around it.
 *
 * @example
 * ```ts
 * const fragments = new FragmentCache(cache)
 * const call = fragments.prepare({ name: 'sidebar', ttl: 300, inputs: ['en'], digest, template: 'page.njk', line: 3 })
 * const html = fragments.peek(call) ?? (await fragments.render(call, () => renderBody()))
 * ```
 */
export class FragmentCache {
  readonly cache: TieredCache
  readonly #counts = new Map<string, FragmentCounts>()
  /** Keys already built for fragments whose inputs are plain values: hashing costs more than a tag hit itself. */
  readonly #keys = new Map<string, string>()

  constructor(cache: TieredCache) {
    this.cache = cache
  }

  /**
   * Checks what the tag evaluated to and builds the key.
   * @throws TemplateTagError naming the template, line and what was wrong (a missing name, a bad TTL, bad deps).
   */
  prepare(call: FragmentCall): PreparedFragment {
    const { template, line } = call
    const name = typeof call.name === 'number' ? String(call.name) : call.name
    if (typeof name !== 'string' || name.length === 0) {
      throw new TemplateTagError(template, line, `fragcache: the cache tag needs a fragment name; got ${describeValue(call.name)}`)
    }
    const ttl = call.ttl
    if (ttl !== null && (typeof ttl !== 'number' || !Number.isFinite(ttl))) {
      throw new TemplateTagError(
        template,
        line,
        `fragcache: the TTL of fragment "${name}" must be a number of seconds or null; got ${describeValue(ttl)}`,
      )
    }
    const deps = checkDeps(call.deps, name, template, line)
    return { name, key: this.#key(name, call), ttl, deps, template, line }
  }

  /**
   * The stored HTML if it can be had without waiting (request scope or L1, deps known), else undefined.
   * Engines use it where they cannot wait (inside a Nunjucks macro, say).
   */
  peek(fragment: PreparedFragment): string | undefined {
    const found = this.cache.peekByKey(fragment.key)
    if (found === undefined || typeof found.value !== 'string') return undefined
    this.#count(fragment.name).hits += 1
    return found.value
  }

  /**
   * The fragment's HTML: stored HTML on a hit (the body is not run), else the body's output, rendered once per
   * key at a time and stored with the deps it saw. A cache failure renders the body; an error in the body
   * propagates (the engine adds the template and line), and nothing is stored.
   */
  async render(fragment: PreparedFragment, body: () => Promise<string>): Promise<string> {
    let ran = false
    const html = await this.cache.getOrSetByKey(
      fragment.key,
      async () => {
        ran = true
        const output = await body()
        if (typeof output !== 'string') {
          throw new TemplateTagError(
            fragment.template,
            fragment.line,
            `fragcache: the body of fragment "${fragment.name}" rendered ${describeValue(output)}, not a string`,
          )
        }
        return output
      },
      { ttl: fragment.ttl, deps: fragment.deps },
    )
    const counts = this.#count(fragment.name)
    if (ran) counts.misses += 1
    else counts.hits += 1
    return html
  }

  /** Hits and misses per fragment name, since this FragmentCache was created. */
  counts(): Map<string, FragmentCounts> {
    return new Map([...this.#counts].map(([name, c]) => [name, { ...c }]))
  }

  #key(name: string, call: FragmentCall): string {
    // JSON keeps 1 and "1" apart; only plain values are memoized, so the signature is exact.
    const signature = call.inputs.every(isPlain) ? JSON.stringify([name, call.digest, call.inputs]) : undefined
    const known = signature === undefined ? undefined : this.#keys.get(signature)
    if (known !== undefined) return known
    let key: string
    try {
      key = this.cache.keys.build('frag', name, [call.digest, ...call.inputs])
    } catch (error) {
      throw new TemplateTagError(call.template, call.line, `fragcache: fragment "${name}" cannot vary by its inputs: ${describe(error)}`)
    }
    if (signature !== undefined) {
      if (this.#keys.size >= 10_000) this.#keys.clear()
      this.#keys.set(signature, key)
    }
    return key
  }

  #count(name: string): FragmentCounts {
    let counts = this.#counts.get(name)
    if (counts === undefined) this.#counts.set(name, (counts = { hits: 0, misses: 0 }))
    return counts
  }
}

/**
 * A short digest of a fragment's template source, so that editing the fragment's markup changes its key.
 * @example
 * ```ts
 * sourceDigest('<aside>{{ lang }}</aside>') // 'k3Jx0c…' (16 characters)
 * ```
 */
export function sourceDigest(source: string): string {
  return hash('sha1', source, 'base64url').slice(0, 16)
}

function isPlain(value: unknown): boolean {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))
}

function checkDeps(deps: unknown, name: string, template: string, line: number): readonly string[] {
  if (deps === undefined || deps === null) return []
  const list = typeof deps === 'string' ? [deps] : deps
  if (!Array.isArray(list) || !list.every((tag) => typeof tag === 'string' && TAG_PATTERN.test(tag))) {
    throw new TemplateTagError(
      template,
      line,
      `fragcache: deps of fragment "${name}" must be a list of tags (non-empty strings without spaces); got ${JSON.stringify(deps)}`,
    )
  }
  return list as string[]
}

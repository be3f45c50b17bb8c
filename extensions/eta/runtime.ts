/**
 * The runtime compiled Eta templates call: evaluates a tag's values, answers from the cache or renders the body
 * through the core, and builds the errors that need the template's name (known only at render time).
 */
import { relative } from 'node:path'
import { TemplateTagError, describe } from '../../src/errors.ts'
import { locateError, syntaxError, tagError } from './runtime-errors.ts'
import type { FragmentCache, FragmentCall } from '../../src/fragments.ts'
import { type EtaSources, etaFragmentDigest } from './dependencies.ts'

/** What `this` is inside a compiled Eta template: the Eta instance (only its config is read). */
export interface EtaInstance {
  config?: { views?: string; plugins?: unknown[] }
}

/** What the compiled template hands over at run time (Eta's `options`). */
export interface RenderOptions {
  filepath?: string
}

/**
 * Called by compiled templates. Not part of the public API.
 * @example
 * ```ts
 * // generated: const __fragcache_html1 = __fragcache.run(this, options, 3, "1:1:1", "digest", "[]", "<% cache … %>", () => ({ ttl: 300, name: "sidebar", inputs: [it.lang], digest: "", template: "", line: 3 }), async () => …)
 * ```
 */
export class EtaFragmentRuntime {
  readonly #fragments: FragmentCache
  readonly #names = new Map<string, string>()
  readonly #digests = new Map<string, string>()

  constructor(fragments: FragmentCache) {
    this.#fragments = fragments
  }

  /** The fragment's HTML: from the cache (body not run) or from the body, rendered once per key at a time. */
  run(
    eta: EtaInstance | undefined,
    options: RenderOptions | undefined,
    line: number,
    site: string,
    own: string,
    references: string,
    text: string,
    values: () => FragmentCall,
    collection: unknown,
    itemValues: ((item: unknown) => FragmentCall) | null,
    body: () => Promise<string>,
  ): string | Promise<string> {
    const template = this.#templateName(eta, options)
    const digest = references === '[]' ? own : this.#digest(eta, options, site, own, references)
    if (itemValues !== null) {
      const prefetched = this.#fragments.prefetchCollection(options ?? {}, site, collection, (item) => {
        const call = itemValues(item)
        call.digest = digest
        call.template = template
        return call
      })
      if (prefetched !== undefined) {
        return prefetched.then(() => this.run(eta, options, line, site, own, references, text, values, collection, null, body))
      }
    }
    let call: FragmentCall
    try {
      call = values()
    } catch (error) {
      // A Django habit (`cache 300 sidebar`) reads here as a variable: say how to write a name.
      const hint = error instanceof ReferenceError ? '; the name and inputs are JavaScript expressions, so quote a literal name ("sidebar")' : ''
      throw new TemplateTagError(template, line, `fragcache: cannot evaluate ${text}: ${describe(error)}${hint}`, { cause: error })
    }
    // The object literal of the compiled template, completed with what is known only now.
    call.digest = digest
    call.template = template
    const fragment = this.#fragments.prepare(call)
    return this.#fragments.peek(fragment) ?? this.#fragments.render(fragment, body)
  }

  /** The error for a tag that cannot run, with the template's name (known only at render time) and `excerpt`. */
  tagError(eta: EtaInstance | undefined, options: RenderOptions | undefined, line: number, message: string, excerpt: string): Error {
    return tagError(this.#templateName(eta, options), line, message, excerpt)
  }

  /** A syntax error of the template found when it was compiled, with the template's name (see `syntaxError`). */
  syntaxError(eta: EtaInstance | undefined, options: RenderOptions | undefined, line: number, message: string, excerpt: string): Error {
    return syntaxError(this.#templateName(eta, options), line, message, excerpt)
  }

  /** What the template throws for an error its code raised (see `locateError`). */
  locate(
    eta: EtaInstance | undefined,
    options: RenderOptions | undefined,
    error: unknown,
    name: string,
    table: number[][],
    source: string,
    declared: [string, number, string][],
  ): unknown {
    return locateError(this.#templateName(eta, options), error, name, table, source, declared)
  }

  /** A fragment's digest with its dependencies, read once per compiled template (see `etaFragmentDigest`). */
  #digest(eta: EtaInstance | undefined, options: RenderOptions | undefined, site: string, own: string, references: string): string {
    let digest = this.#digests.get(site)
    if (digest === undefined) {
      if (this.#digests.size >= 10_000) this.#digests.clear() // templates compiled on every render (cache: false)
      digest = etaFragmentDigest(eta as EtaSources, options?.filepath, own, references).digest
      this.#digests.set(site, digest)
    }
    return digest
  }

  /** The name errors give the template at `filepath`: relative to the views. */
  templateName(eta: EtaInstance | undefined, options: RenderOptions | undefined): string {
    return this.#templateName(eta, options)
  }

  #templateName(eta: EtaInstance | undefined, options: RenderOptions | undefined): string {
    const file = options?.filepath
    if (file === undefined) return 'template string'
    let name = this.#names.get(file)
    if (name === undefined) {
      const views = eta?.config?.views
      name = views ? relative(views, file) : file
      this.#names.set(file, name)
    }
    return name
  }
}

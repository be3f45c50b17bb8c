/**
 * The errors of the `{% cache %}` tag, in the shape Nunjucks reports with a template path, a line and a column:
 * every one is a {@link TemplateTagError} (a {@link NunjucksTagError}), at parse time and at render time.
 */
import { FragcacheError, TemplateTagError } from '../../src/errors.ts'
import type { PendingFragment, RenderSession } from './render-tracking.ts'
import { type NunjucksTemplateError, TemplateError, lib } from './shapes.ts'

/** Where a tag is: its template, its 1-based line and column, and the excerpt that ends its errors (see `sourceExcerpt`). */
export interface TagLocation {
  readonly template: string
  readonly line: number
  readonly column: number
  readonly excerpt: string
}

/**
 * A {@link TemplateTagError} that also keeps Nunjucks' TemplateError contract (`nunjucks/src/lib.js`): a 1-based
 * `lineno` and `colno`, so the compiled template passes it on unchanged, and `Update(path)`, which prefixes the path
 * of each template it passes through, and the line and column the first time, as Nunjucks' own errors read.
 * @example
 * ```ts
 * env.render('page.njk', ctx, (err) => {
 *   if (err instanceof TemplateTagError) console.error(err.template, err.line, err.message)
 * })
 * ```
 */
export class NunjucksTagError extends TemplateTagError implements NunjucksTemplateError {
  readonly lineno: number
  readonly colno: number
  #firstUpdate = true

  constructor(at: TagLocation, message: string, options?: { cause?: unknown }) {
    super(at.template, at.line, message, options)
    this.message += at.excerpt
    this.lineno = at.line
    this.colno = at.column
  }

  /**
   * `error` (a tag error the core threw) as Nunjucks reports it, at the tag `at`; one already in that shape is
   * returned as it is.
   * @example
   * ```ts
   * NunjucksTagError.from(new TemplateTagError('page.njk', 3, 'fragcache: …'), at).colno // at.column
   * ```
   */
  static from(error: TemplateTagError, at: TagLocation): NunjucksTagError {
    if (error instanceof NunjucksTagError) return error
    const converted = new NunjucksTagError({ ...at, template: error.template, line: error.line }, '', { cause: error.cause })
    converted.message = error.message + at.excerpt // already names the template and line
    return converted
  }

  /** Nunjucks' `TemplateError.Update`, word for word. */
  Update(path?: string): this {
    let prefix = `(${path || 'unknown path'})`
    if (this.#firstUpdate) prefix += ` [Line ${this.lineno}, Column ${this.colno}]`
    prefix += this.#firstUpdate ? '\n  ' : '\n '
    this.message = prefix + this.message
    this.#firstUpdate = false
    return this
  }
}

const KEPT = Symbol.for('fragcache.nunjucksTagErrorsKept')

/**
 * Lets tag errors reach the caller as they are. Unless the environment has `dev: true`, Nunjucks'
 * `lib._prettifyError` copies every error's message into a plain `Error`, and a tag error would no longer be a
 * `TemplateTagError`. The hook (once per process) only calls `Update` on fragcache's own errors that have one;
 * every other error goes to Nunjucks' function unchanged.
 */
export function keepTagErrors(): void {
  if (lib[KEPT] === true) return
  lib[KEPT] = true
  const prettify = lib._prettifyError
  lib._prettifyError = function prettifyKeepingTagErrors(path, withInternals, error) {
    // By the brand, not the class: another copy of fragcache may have thrown it.
    if (error instanceof FragcacheError && hasUpdate(error)) return error.Update(path)
    return prettify(path, withInternals, error)
  }
}

/**
 * A tag error at `at`. Nunjucks prefixes the path of the template being rendered; when the tag lives in another
 * template (an included one, a layout), that path is named first, as Nunjucks does for includes.
 */
export function tagError(at: TagLocation, message: string, session?: RenderSession): NunjucksTagError {
  return inTemplateOf(new NunjucksTagError(at, message), at, session)
}

/**
 * `error`, raised by the core for the tag at `at` (a bad TTL, a failed body), as Nunjucks reports it. One already
 * reported by a tag (a nested fragment's) passes unchanged; anything else becomes a Nunjucks error at the tag.
 */
export function reportAtTag(error: unknown, at: TagLocation, session: RenderSession | undefined): NunjucksTemplateError {
  if (error instanceof NunjucksTagError) return error
  if (error instanceof TemplateTagError) return inTemplateOf(NunjucksTagError.from(error, at), at, session)
  return inTemplateOf(new TemplateError(error, at.line, at.column), at, session)
}

/**
 * An error thrown by the rest of the template after an asynchronously answered tag: not the tag's, so it stays a
 * Nunjucks error, reported at the tag (Nunjucks lost its own line) unless it knows its line.
 */
export function afterError(error: unknown, fragment: PendingFragment, session: RenderSession | undefined): NunjucksTemplateError {
  if (error instanceof Error && typeof (error as NunjucksTemplateError).lineno === 'number') return error as NunjucksTemplateError
  const wrapped = inTemplateOf(new TemplateError(error, fragment.line, fragment.column), fragment, session)
  wrapped.message += ` (after fragment "${fragment.name}", ${fragment.template}, line ${fragment.line})`
  return wrapped
}

/** A fragment a finished render did not wait for. */
export function droppedError(fragment: PendingFragment, session: RenderSession): NunjucksTagError {
  return tagError(
    fragment,
    `fragcache: fragment "${fragment.name}" was not in memory, and Nunjucks finished rendering "${session.template}" ` +
      'without waiting for it, so its output would have been lost. This happens when the cache tag is reached through ' +
      'an {% include %} or a {% block %} placed inside a plain {% if %} or {% for %}: use {% ifAsync %} / {% asyncEach %} ' +
      'there, or put a cache tag around the include',
    session,
  )
}

/** A fragment missing from memory inside a construct where Nunjucks cannot wait (see `WAITLESS`). */
export function waitlessError(fragment: PendingFragment, construct: { label: string; advice: string }, session?: RenderSession): NunjucksTagError {
  return tagError(
    fragment,
    `fragcache: fragment "${fragment.name}" is inside a ${construct.label}, where Nunjucks cannot wait for it, ` +
      `and it is not in memory; ${construct.advice}`,
    session,
  )
}

/** A fragment missing from memory in a `render()` without a callback. */
export function syncRenderError(fragment: PendingFragment, session: RenderSession): NunjucksTagError {
  return tagError(
    fragment,
    `fragcache: fragment "${fragment.name}" is not in memory, and render() without a callback cannot wait for it; ` +
      'render with a callback (or a promise)',
    session,
  )
}

/** A tag rendered by a Template that the hooks never saw. */
export function unhookedError(fragment: PendingFragment): NunjucksTagError {
  return tagError(
    fragment,
    'fragcache: this template was not rendered through the nunjucks module fragcache hooks ' +
      '(is a second copy of nunjucks installed?), so a lost fragment could not be detected',
  )
}

function hasUpdate(error: Error): error is NunjucksTemplateError {
  return typeof (error as Partial<NunjucksTemplateError>).Update === 'function'
}

function inTemplateOf<E extends NunjucksTemplateError>(error: E, at: TagLocation, session: RenderSession | undefined): E {
  if (session !== undefined && session.template !== at.template) error.Update(at.template)
  return error
}

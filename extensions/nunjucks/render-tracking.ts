/**
 * Render tracking: which render a tag belongs to, and whether Nunjucks is still waiting for it.
 *
 * Nunjucks drops the output of an asynchronous tag in constructs it compiles as synchronous code (macros,
 * `{% set %}…{% endset %}`, `{% filter %}`, and `{% include %}`/`{% block %}` calls placed inside a plain
 * `{% if %}`/`{% for %}`; upstream issues 792, 815, 1375): the template's root function reports its output
 * while the tag is still waiting. So every render is a session, and a session that finishes while one of the
 * fragments started inside it has not answered yet fails the render instead of returning a page without it.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import nunjucks from 'nunjucks'
import type { CompiledFragment } from '../../src/fragment-keys.ts'
import type { ReadMemo, TemplateSourceEnv } from './dependencies.ts'
import { droppedError } from './errors.ts'
import { locateCompileError, locateRenderError } from './locate.ts'
import type { Lexer } from './shapes.ts'
import type { Frame, RenderContext, RootRenderFunc } from './shapes.ts'

/** A fragment whose HTML is being fetched or rendered asynchronously. */
export interface PendingFragment {
  readonly name: string
  readonly template: string
  readonly line: number
  readonly column: number
  readonly excerpt: string
  /**
   * Set when a render finished while this fragment was pending: its output is lost, and the variables its body
   * reads may already belong to a later loop iteration, so it must not be stored either.
   */
  abandoned: boolean
}

/** One call of `Template.render` (a page, or a template it includes). */
export interface RenderSession {
  readonly template: string
  /** Rendered without a callback: nothing asynchronous can be waited for. */
  readonly sync: boolean
  readonly parent: RenderSession | undefined
  readonly pending: Set<PendingFragment>
  done: boolean
}

/** The name Nunjucks gives a template made from a string (`renderString`). */
export const STRING_TEMPLATE = '(string)'
const sessionStorage = new AsyncLocalStorage<RenderSession>()
// The session rides on Nunjucks' own per-render objects (a symbol property is much cheaper than a WeakMap).
const SESSION = Symbol('fragcache.renderSession')
type Tagged = { [SESSION]?: RenderSession }
/** The session `Template.render` is about to start, handed to the root function it calls next (synchronously). */
let starting: RenderSession | undefined
/** The templates being compiled, innermost last (compilation is synchronous). */
const compiling: CompileContext[] = []
const HOOKED = Symbol.for('fragcache.nunjucksHooks')

/** One compile of a template: its name, its environment, and what reading its fragments' dependencies found. */
export interface CompileContext {
  readonly name: string
  readonly env: TemplateSourceEnv | undefined
  /** Shared by the fragments of this compile (a later compile reads every dependency again). */
  readonly memo: ReadMemo
  /** The cache tags found, for `fragmentKey` and the dependency listing. */
  readonly tags: CompiledFragment[]
}

interface TemplateInternals {
  path?: string
  tmplStr?: unknown
  env?: TemplateSourceEnv
  rootRenderFunc: RootRenderFunc
  [HOOKED]?: true
}

/**
 * Hooks `Template.prototype.render` and `_compile` of the nunjucks module (once per process):
 * `_compile` tells the parser which template it is parsing (for error messages), and wraps the compiled root
 * function so a render that finishes while one of its fragments is pending fails; `render` opens the session.
 */
export function installRenderTracking(): void {
  const proto = nunjucks.Template.prototype as unknown as Record<PropertyKey, unknown>
  if (proto[HOOKED] === true) return
  proto[HOOKED] = true
  const originalCompile = proto._compile as (this: TemplateInternals) => void
  const originalRender = proto.render as (this: TemplateInternals, ...args: unknown[]) => unknown

  proto._compile = function compileTracked(this: TemplateInternals): void {
    const context: CompileContext = { name: this.path ?? STRING_TEMPLATE, env: this.env, memo: new Map(), tags: [] }
    compiling.push(context)
    try {
      originalCompile.call(this)
    } catch (error) {
      throw locatedInTagged(error, this) ?? error
    } finally {
      compiling.pop()
    }
    compiledTags.set(this, context.tags)
    this.rootRenderFunc = trackRoot(this.rootRenderFunc, context.tags.length > 0 ? this : undefined)
  }

  proto.render = function renderTracked(this: TemplateInternals, ...args: unknown[]): unknown {
    const [ctx, parentFrame] = args
    const callback = typeof ctx === 'function' ? ctx : typeof parentFrame === 'function' ? parentFrame : args[2]
    const parent = (isFrame(parentFrame) ? sessionOfFrame(parentFrame) : undefined) ?? sessionStorage.getStore()
    const session: RenderSession = {
      template: this.path ?? STRING_TEMPLATE,
      sync: typeof callback !== 'function' || parent?.sync === true,
      parent,
      pending: new Set(),
      done: false,
    }
    starting = session
    try {
      return sessionStorage.run(session, () => originalRender.apply(this, args))
    } finally {
      starting = undefined
    }
  }
}

/**
 * An error without a line, in a template with a cache tag, located (see `locateCompileError`, `locateRenderError`);
 * undefined for any other (Nunjucks reports those as it always has).
 */
function locatedInTagged(error: unknown, template: TemplateInternals, when: 'compile' | 'render' = 'compile'): Error | undefined {
  const source = template.tmplStr
  const opts = (template.env as { opts?: { tags?: Record<string, string>; trimBlocks?: boolean; lstripBlocks?: boolean } } | undefined)?.opts
  const blockStart = opts?.tags?.blockStart ?? '{%'
  if (typeof source !== 'string' || !new RegExp(`${blockStart.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-?\\s*cache\\b`).test(source)) return undefined
  const { lexer } = nunjucks as unknown as { lexer: Lexer }
  const setup = { lexer, options: { tags: opts?.tags ?? {}, trimBlocks: opts?.trimBlocks === true, lstripBlocks: opts?.lstripBlocks === true } }
  return when === 'compile' ? locateCompileError(error, source, setup) : locateRenderError(error, source, setup)
}

/** The template the parser is reading now (a tag's errors name it; its fragments read their dependencies through it). */
export function templateBeingCompiled(): CompileContext {
  return compiling[compiling.length - 1] ?? { name: STRING_TEMPLATE, env: undefined, memo: new Map(), tags: [] }
}

/**
 * The cache tags of a compiled Template (by the object Nunjucks keeps), as its last compile found them; undefined for
 * a template not compiled since the extension was loaded.
 */
export function tagsOfTemplate(template: object): readonly CompiledFragment[] | undefined {
  return compiledTags.get(template)
}

const compiledTags = new WeakMap<object, CompiledFragment[]>()

/** `tagged`: the template, when it has cache tags (a render error without a line is then located in it). */
function trackRoot(root: RootRenderFunc, tagged: TemplateInternals | undefined): RootRenderFunc {
  return function rootTracked(this: unknown, env, context, frame, rt, cb) {
    const session = starting
    // Called by `{% extends %}` or an import, not by Template.render: the caller's session covers it.
    if (session === undefined) return root.call(this, env, context, frame, rt, cb)
    starting = undefined
    ;(context as Tagged)[SESSION] = session
    ;(frame as Tagged)[SESSION] = session
    return root.call(this, env, context, frame, rt, function finished(err: unknown, output?: unknown) {
      if (session.done) {
        // Nunjucks may report twice (an error, then the output of the rest of the page). A sync render must
        // see the second call too: Nunjucks throws its error from there.
        if (session.sync) cb(err, output)
        return
      }
      session.done = true
      const dropped = session.pending.values().next().value
      for (const fragment of session.pending) fragment.abandoned = true
      if (err == null && dropped !== undefined) {
        cb(droppedError(dropped, session))
        return
      }
      cb(err != null && tagged !== undefined ? (locatedInTagged(err, tagged, 'render') ?? err) : err, output)
    })
  }
}

function isFrame(value: unknown): value is Frame {
  return typeof value === 'object' && value !== null && 'parent' in value
}

function sessionOfFrame(frame: Frame | undefined): RenderSession | undefined {
  for (let f = frame; f !== undefined && f !== null; f = f.parent) {
    const session = (f as Tagged)[SESSION]
    if (session !== undefined) return session
  }
  return undefined
}

/** The render a tag called with `context` belongs to, if it went through the hooks. */
export function currentSession(context: RenderContext): RenderSession | undefined {
  return (context as Tagged)[SESSION] ?? sessionStorage.getStore()
}

/** Whether `session`, or a render around it still running, was started without a callback. */
export function isSyncRender(session: RenderSession): boolean {
  for (let s: RenderSession | undefined = session; s !== undefined; s = s.parent) if (!s.done && s.sync) return true
  return false
}

/** Marks `fragment` pending in its render and every render around it; returns the function that clears it. */
export function trackPending(session: RenderSession, fragment: PendingFragment): () => void {
  const sessions: RenderSession[] = []
  for (let s: RenderSession | undefined = session; s !== undefined; s = s.parent) {
    if (s.done) continue
    s.pending.add(fragment)
    sessions.push(s)
  }
  return () => {
    for (const s of sessions) s.pending.delete(fragment)
  }
}

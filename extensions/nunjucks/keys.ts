/**
 * Nunjucks fragments named from code: the key of one fragment (its template's digest included), deleting it, and the
 * listing of a template's fragments with what their digests cover. Each compiles the template through the environment.
 */
import type nunjucks from 'nunjucks'
import { InvalidArgumentError } from '../../src/errors.ts'
import { type CompiledFragment, findFragment, listFragments } from '../../src/fragment-keys.ts'
import type { FragmentCache } from '../../src/fragments.ts'
import { tagsOfTemplate } from './render-tracking.ts'

/** Which fragment: its template (as `env.render` names it), its name as written in the tag, and the line if several. */
export interface FragmentAddress {
  readonly template: string
  readonly name: string
  readonly line?: number
}

/** What the functions here read of an Environment. */
type Env = Pick<nunjucks.Environment, 'getTemplate'> & { extensionsList?: unknown[] }

/**
 * The cache tags of `template`, compiled through `env` (a compiled template is not compiled again).
 * @throws as `env.getTemplate` does (a template not found, a syntax error).
 * @example
 * ```ts
 * compiledFragments(env, 'page.njk').map((tag) => tag.line)
 * ```
 */
export function compiledFragments(env: Env, template: string): readonly CompiledFragment[] {
  const compiled = env.getTemplate(template, true) as unknown as object | undefined
  const tags = compiled === undefined ? undefined : tagsOfTemplate(compiled)
  if (tags === undefined) {
    throw new InvalidArgumentError(`fragcache: ${template} could not be compiled synchronously (an asynchronous loader?), or not with the fragcache extension`)
  }
  return tags
}

/**
 * The key of a fragment, as the tag builds it when it renders with `inputs`: for a job that knows what changed, or
 * to look at what is stored. Django's `make_template_fragment_key`, with the template's digest.
 * @throws InvalidArgumentError when the template has no tag of that name (or several and no line), or `env` has no
 *   fragcache extension.
 * @example
 * ```ts
 * // views/page.njk: {% cache 3600 "article_teaser" article.id %}…{% endcache %}
 * const key = fragmentKey(env, { template: 'page.njk', name: 'article_teaser' }, [42])
 * ```
 */
export function fragmentKey(env: Env, fragment: FragmentAddress, inputs: readonly unknown[] = []): string {
  const tag = find(compiledFragments(env, fragment.template), fragment)
  return fragmentsOf(env).keyOf(fragment.name, tag.digest, inputs)
}

/**
 * Deletes one fragment from every tier (and tells the other processes), so that its next render runs its body.
 * @example
 * ```ts
 * await deleteFragment(env, { template: 'page.njk', name: 'article_teaser' }, [article.id])
 * ```
 */
export async function deleteFragment(env: Env, fragment: FragmentAddress, inputs: readonly unknown[] = []): Promise<void> {
  const tag = find(compiledFragments(env, fragment.template), fragment)
  await fragmentsOf(env).delete(fragment.name, tag.digest, inputs)
}

/**
 * The cache tags of `template` and, for each, the templates and macros its digest covers (and the ones it cannot
 * follow: a name computed at render time), as text: Rails' `cache_digests:dependencies`.
 * @example
 * ```ts
 * console.log(fragmentDependencies(env, 'page.njk'))
 * // page.njk
 * //   line 3  {% cache 300 "teaser" %}  digest Qm9f…
 * //     {% include "teaser.njk" %}
 * ```
 */
export function fragmentDependencies(env: Env, template: string): string {
  const tags = compiledFragments(env, template)
  return listFragments(tags[0]?.template ?? template, tags)
}

function fragmentsOf(env: Env): FragmentCache {
  for (const extension of env.extensionsList ?? []) {
    const fragments = (extension as { fragments?: FragmentCache } | null)?.fragments
    if (fragments !== undefined && typeof fragments.keyOf === 'function') return fragments
  }
  throw new InvalidArgumentError('fragcache: this Environment has no fragcache extension (env.addExtension(…, new FragmentCacheExtension(cache)))')
}

function find(tags: readonly CompiledFragment[], fragment: FragmentAddress): CompiledFragment {
  return findFragment(tags, tags[0]?.template ?? fragment.template, fragment.name, fragment.line)
}

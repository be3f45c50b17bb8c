/**
 * Eta fragments named from code: the key of one fragment (its template's digest included), deleting it, and the
 * listing of a template's fragments with what their digests cover. Each compiles the template with the Eta instance.
 */
import type { Eta } from 'eta'
import { InvalidArgumentError } from '../../src/errors.ts'
import { type CompiledFragment, findFragment, listFragments } from '../../src/fragment-keys.ts'
import { type EtaSources, etaFragmentDigest } from './dependencies.ts'
import type { EtaFragmentPlugin } from './index.ts'

/** Which fragment: its template (as `eta.renderAsync` names it), its name as written in the tag, and the line if several. */
export interface FragmentAddress {
  readonly template: string
  readonly name: string
  readonly line?: number
}

/** An Eta instance (Eta 4's class, or one made like it). */
type EtaWithFiles = Eta

/**
 * The cache tags of `template`, read and compiled with `eta` (the template is read from its file, as it is now).
 * @throws as Eta does for a template it cannot find or read.
 * @example
 * ```ts
 * compiledFragments(eta, 'page').map((tag) => tag.line)
 * ```
 */
export function compiledFragments(eta: EtaWithFiles, template: string): readonly CompiledFragment[] {
  const plugin = pluginOf(eta)
  const files = eta as unknown as EtaSources
  if (typeof files.resolvePath !== 'function' || typeof files.readFile !== 'function') {
    throw new InvalidArgumentError('fragcache: this Eta cannot read templates from files (no views?)')
  }
  const filepath = files.resolvePath(template, {})
  eta.compileToString(files.readFile(filepath), { async: true })
  const name = plugin.fragcacheEtaRuntime.templateName(files, { filepath })
  return plugin.lastCompiled().map((tag) => {
    const { digest, dependencies } = etaFragmentDigest(files, filepath, tag.own, tag.references)
    return { template: name, line: tag.line, text: tag.text, name: tag.name, digest, dependencies }
  })
}

/**
 * The key of a fragment, as the tag builds it when it renders with `inputs`: for a job that knows what changed, or
 * to look at what is stored. Django's `make_template_fragment_key`, with the template's digest.
 * @throws InvalidArgumentError when the template has no tag of that name (or several and no line), or `eta` has no
 *   fragcache plugin.
 * @example
 * ```ts
 * // views/page.eta: <% cache 3600 "article_teaser" article.id %>…<% endcache %>
 * const key = fragmentKey(eta, { template: 'page', name: 'article_teaser' }, [42])
 * ```
 */
export function fragmentKey(eta: EtaWithFiles, fragment: FragmentAddress, inputs: readonly unknown[] = []): string {
  const tag = find(compiledFragments(eta, fragment.template), fragment)
  return pluginOf(eta).fragments.keyOf(fragment.name, tag.digest, inputs)
}

/**
 * Deletes one fragment from every tier (and tells the other processes), so that its next render runs its body.
 * @example
 * ```ts
 * await deleteFragment(eta, { template: 'page', name: 'article_teaser' }, [article.id])
 * ```
 */
export async function deleteFragment(eta: EtaWithFiles, fragment: FragmentAddress, inputs: readonly unknown[] = []): Promise<void> {
  const tag = find(compiledFragments(eta, fragment.template), fragment)
  await pluginOf(eta).fragments.delete(fragment.name, tag.digest, inputs)
}

/**
 * The cache tags of `template` and, for each, the templates its digest covers (and the ones it cannot follow: a
 * name computed at render time, a template loaded with `loadTemplate`), as text: Rails' `cache_digests:dependencies`.
 * @example
 * ```ts
 * console.log(fragmentDependencies(eta, 'page'))
 * // page.eta
 * //   line 2  <% cache 300 "teaser" %>  digest Qm9f…
 * //     includeAsync("teaser")
 * ```
 */
export function fragmentDependencies(eta: EtaWithFiles, template: string): string {
  const tags = compiledFragments(eta, template)
  return listFragments(tags[0]?.template ?? template, tags)
}

function pluginOf(eta: EtaWithFiles): EtaFragmentPlugin {
  for (const plugin of eta.config?.plugins ?? []) {
    const found = plugin as Partial<EtaFragmentPlugin> | null
    if (found?.fragcacheEtaRuntime !== undefined && typeof found.lastCompiled === 'function') return found as EtaFragmentPlugin
  }
  throw new InvalidArgumentError('fragcache: this Eta has no fragcache plugin (new Eta({ plugins: [fragmentCache(cache)] }))')
}

function find(tags: readonly CompiledFragment[], fragment: FragmentAddress): CompiledFragment {
  return findFragment(tags, tags[0]?.template ?? fragment.template, fragment.name, fragment.line)
}

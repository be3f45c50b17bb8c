/**
 * Variations, as Drupal's VariationCache: an entry that turns out to vary by request contexts its key does not include
 * is stored under a key of its own per value of those contexts, and its key holds a redirect naming them, so the next
 * lookup (one more) finds the right variation, and no visitor is ever served another's.
 */
import { stableHash } from './keys.ts'
import type { RequestScope } from './request-scope.ts'

/** The contexts a variation is keyed by, with their values in the request that computed it. */
export interface Variation {
  readonly contexts: readonly string[]
  readonly values: readonly unknown[]
}

/** Keys longer than this are shortened before the variation suffix (keys stay within 250 bytes). */
const KEEP = 200

/**
 * The values of `contexts` in `scope` (undefined outside a scope or where a context is not declared).
 * @example
 * ```ts
 * contextValues(['lang', 'user'], scope) // ['fr', 'alice']
 * ```
 */
export function contextValues(contexts: readonly string[], scope: RequestScope | undefined): unknown[] {
  return contexts.map((name) => scope?.contexts.value(name))
}

/**
 * The key of the variation of `baseKey` for these contexts in `scope` (the base key when there are none).
 * @example
 * ```ts
 * variationKey('site:1:frag:sidebar#…', ['user'], scope) // 'site:1:frag:sidebar#…~Qm9…'
 * ```
 */
export function variationKey(baseKey: string, contexts: readonly string[], scope: RequestScope | undefined): string {
  if (contexts.length === 0) return baseKey
  return `${baseKey.slice(0, KEEP)}~${stableHash([baseKey, contexts, contextValues(contexts, scope)])}`
}

/**
 * True when `scope` has the same values as the variation (a caller may share a compute only then).
 * @example
 * ```ts
 * sameVariation({ contexts: ['user'], values: ['alice'] }, bobsScope) // false
 * ```
 */
export function sameVariation(variation: Variation | undefined, scope: RequestScope | undefined): boolean {
  if (variation === undefined) return true
  const mine = contextValues(variation.contexts, scope)
  return mine.every((value, i) => stableHash(value) === stableHash(variation.values[i]))
}

/**
 * The union of two sorted context lists, sorted.
 * @example
 * ```ts
 * unionOf(['lang'], new Set(['user', 'lang'])) // ['lang', 'user']
 * ```
 */
export function unionOf(declared: readonly string[], found: Iterable<string>): string[] {
  return [...new Set([...declared, ...found])].sort()
}

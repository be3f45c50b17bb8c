/**
 * `collection=` for Nunjucks: the tag's values as a function of the loop's item (a `{% call %}`-style anonymous macro
 * whose parameter shadows the loop variable, so `article.id` reads the item it is given), evaluated for every item
 * before the first one renders, so that all their fragments are read in one round trip.
 */
import type { FragmentCall, OptionKeyword } from '../../src/fragments.ts'
import type { Nodes, TemplateNode } from './shapes.ts'

/** What the tag's values evaluate to for one item: TTL, name, inputs and keywords. */
export type TagValues = [ttl: unknown, name: unknown, inputs: unknown[], keywords: Partial<Record<OptionKeyword, unknown>>]

/** The compiled macro `(item) => …` built by {@link itemValuesNode}. */
export type ItemValues = (item: unknown) => unknown

/**
 * An expression node for a macro of one parameter, named as the loop's variable, whose body calls the extension's
 * `collect` method with the tag's values (`values`: the nodes of TTL, name, inputs and keywords).
 */
export function itemValuesNode(nodes: Nodes, extension: object, at: { lineno: number; colno: number }, variable: string, values: TemplateNode[]): TemplateNode {
  const { lineno, colno } = at
  const list = (children: TemplateNode[]) => new nodes.NodeList(lineno, colno, children)
  const collect = new nodes.CallExtension(extension, 'collect', list(values), [])
  return new nodes.Caller(lineno, colno, new nodes.Symbol(lineno, colno, 'caller'), list([new nodes.Symbol(lineno, colno, variable)]), list([collect]))
}

/**
 * Receives what the macro of {@link itemValuesNode} evaluated: the compiled macro runs synchronously, so the values
 * it hands to `collect` are there when it returns.
 * @example
 * ```ts
 * const call = collector.callFor(itemValues, article, { digest, template, line })
 * ```
 */
export class ItemValuesCollector {
  #values: TagValues | undefined

  /** Called by the compiled macro. */
  collect(values: TagValues): void {
    this.#values = values
  }

  /** The call the tag makes for `item`. */
  callFor(itemValues: ItemValues, item: unknown, where: Pick<FragmentCall, 'digest' | 'template' | 'line'>): FragmentCall {
    this.#values = undefined
    itemValues(item)
    const values = this.#values as TagValues | undefined
    if (values === undefined) throw new Error('fragcache: the collection= values of the tag were not evaluated')
    const [ttl, name, inputs, keywords] = values
    return { name, ttl, inputs, ...keywords, ...where }
  }
}

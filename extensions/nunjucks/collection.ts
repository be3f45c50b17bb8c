/**
 * `collection=` for Nunjucks: the tag's call as a function of the loop's item (a `{% call %}`-style anonymous macro
 * whose parameter shadows the loop variable, so `article.id` reads the item it is given), evaluated for every item
 * before the first one renders, so that all their fragments are read in one round trip.
 */
import type { FragmentCall } from '../../src/fragments.ts'
import type { Nodes, TemplateNode } from './shapes.ts'

/** The compiled macro `(item) => …` built by {@link itemCallNode}. */
export type ItemCall = (item: unknown) => unknown

/**
 * An expression node for a macro of one parameter, named as the loop's variable, whose body calls the extension's
 * `collect` method with the tag's call (`call`: the node of the FragmentCall object literal).
 */
export function itemCallNode(nodes: Nodes, extension: object, at: { lineno: number; colno: number }, variable: string, call: TemplateNode): TemplateNode {
  const { lineno, colno } = at
  const list = (children: TemplateNode[]) => new nodes.NodeList(lineno, colno, children)
  const collect = new nodes.CallExtension(extension, 'collect', list([call]), [])
  return new nodes.Caller(lineno, colno, new nodes.Symbol(lineno, colno, 'caller'), list([new nodes.Symbol(lineno, colno, variable)]), list([collect]))
}

/**
 * Receives what the macro of {@link itemCallNode} evaluated: the compiled macro runs synchronously, so the call it
 * hands to `collect` is there when it returns.
 * @example
 * ```ts
 * const call = collector.callFor(itemCall, article)
 * ```
 */
export class ItemCallCollector {
  #call: FragmentCall | undefined

  /** Called by the compiled macro. */
  collect(call: FragmentCall): void {
    this.#call = call
  }

  /** The call the tag makes for `item`. */
  callFor(itemCall: ItemCall, item: unknown): FragmentCall {
    this.#call = undefined
    itemCall(item)
    const call = this.#call as FragmentCall | undefined
    if (call === undefined) throw new Error('fragcache: the collection= values of the tag were not evaluated')
    return call
  }
}

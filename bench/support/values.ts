/** The values the benchmarks cache: an HTML fragment and a plain JSON object, each of about a given size. */

/**
 * An HTML fragment of exactly `bytes` ASCII characters, like a rendered sidebar list.
 * @example
 * ```ts
 * fragmentHtml(1024).length // 1024
 * ```
 */
export function fragmentHtml(bytes: number): string {
  let html = '<ul class="sidebar">'
  for (let i = 0; html.length < bytes; i++) html += `<li><a href="/articles/${i}">Article number ${i}</a></li>`
  return html.slice(0, bytes)
}

/**
 * A plain object whose JSON is about `bytes` long: nested objects, an array and strings, like a model row
 * with its author and tags.
 * @example
 * ```ts
 * JSON.stringify(articleObject(1024)).length // ≈ 1024
 * ```
 */
export function articleObject(bytes: number): Record<string, unknown> {
  const article = {
    id: 42,
    slug: 'caching-server-rendered-pages',
    title: 'Caching server-rendered pages without serving stale ones',
    published: true,
    views: 1234,
    author: { id: 7, name: 'Ada Example', email: 'ada@example.org', roles: ['editor', 'author'] },
    tags: ['cache', 'redis', 'node', 'templates'],
    comments: [
      { id: 1, by: 'Grace', text: 'Nice write-up.' },
      { id: 2, by: 'Linus', text: 'What about cache stampedes?' },
    ],
    body: '',
  }
  const filler = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '
  while (JSON.stringify(article).length < bytes) article.body += filler
  article.body = article.body.slice(0, article.body.length - (JSON.stringify(article).length - bytes))
  return article
}

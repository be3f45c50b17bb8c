import type { CacheStatsSnapshot } from '../src/index.ts'
import type { FragmentCountRow } from './engines.ts'
import type { PageCounts } from './page-counters.ts'

/** What the `/_cache` page shows. */
export interface CacheStatsPageData {
  stats: CacheStatsSnapshot
  fragments: FragmentCountRow[]
  pages: Map<string, PageCounts>
}

/**
 * The `/_cache` page: hit rate per tier, per fragment and per view, each drawn as a CSS bar with its numbers.
 * Plain HTML built here rather than in a template, so looking at the stats never counts as a fragment hit.
 *
 * @example
 * ```ts
 * res.type('html').send(cacheStatsPage({ stats: cache.stats(), fragments: [], pages: new Map() }))
 * ```
 */
export function cacheStatsPage({ stats, fragments, pages }: CacheStatsPageData): string {
  // Without a Redis tier its row says so instead of showing 0%.
  const redis = stats.l2.configured
  const tiers = [
    rateRow('Request scope', stats.request.hits, stats.request.misses),
    rateRow('Memory (L1, lru-cache)', stats.l1.hits, stats.l1.misses),
    redis
      ? rateRow(`Redis (L2)${stats.l2.down ? ' — down' : ''}`, stats.l2.hits, stats.l2.misses)
      : `<div class="row off"><span class="label">Redis (L2)</span><span class="nums">not configured (set REDIS_URL)</span></div>`,
  ].join('\n')
  const fragmentRows =
    fragments.length === 0
      ? '<p class="empty">No fragment rendered yet: open a page.</p>'
      : fragments.map((f) => rateRow(`${escape(f.name)} <small>${escape(f.engine)}</small>`, f.hits, f.misses, escape(f.name))).join('\n')
  const pageRows =
    pages.size === 0
      ? '<p class="empty">No per-view cached page served yet: open a category.</p>'
      : [...pages].map(([label, counts]) => pageRow(label, counts)).join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cache hit rates · fragcache demo</title>
<link rel="stylesheet" href="/static/site.css">
</head>
<body class="stats">
<header class="site-header">
<a class="brand" href="/nunjucks/">fragcache <span>demo</span></a>
<nav><a href="/nunjucks/">Nunjucks</a> <a href="/eta/">Eta</a> <a href="/_cache" class="current">/_cache</a></nav>
<div class="who">process ${process.pid}</div>
</header>
<main class="wide">
<h1>Cache hit rates</h1>
<p class="note">Counted in this process since it started. Green: hits; grey: misses.</p>
<section class="chart" id="tiers">
<h2>Per tier</h2>
${tiers}
</section>
<section class="chart" id="fragments">
<h2>Per fragment</h2>
${fragmentRows}
</section>
<section class="chart" id="pages">
<h2>Per view (page cache)</h2>
<p class="legend"><i class="hit"></i> HIT <i class="miss"></i> MISS <i class="bypass"></i> BYPASS (signed-in visitors)</p>
${pageRows}
</section>
<section class="totals">
<h2>Totals</h2>
<ul>
<li>${stats.computes} computes (${stats.computeErrors} failed, ${stats.earlyRefreshes} early refreshes)</li>
<li>${stats.l1.entries} entries in memory, ${formatBytes(stats.l1.bytes)}</li>
${redis ? `<li>Redis: ${stats.l2.errors} errors, ${stats.l2.outages} outages</li>` : ''}
</ul>
<form method="post" action="/_cache/invalidate" class="inline">
<label>Drop every cached page under <input name="prefix" value="/nunjucks/category/" size="28"></label>
<button type="submit">invalidatePath</button>
</form>
</section>
</main>
</body>
</html>
`
}

function rateRow(labelHtml: string, hits: number, misses: number, name = ''): string {
  const total = hits + misses
  const rate = total === 0 ? 0 : hits / total
  const percent = Math.round(rate * 1000) / 10
  return `<div class="row"${name ? ` data-name="${name}"` : ''}><span class="label">${labelHtml}</span><span class="bar" role="img" aria-label="${percent}% hits"><span class="fill hit" style="width:${percent}%"></span></span><span class="nums">${total === 0 ? '—' : `${percent}%`} · ${hits} hits / ${misses} misses</span></div>`
}

function pageRow(label: string, counts: PageCounts): string {
  const total = counts.HIT + counts.MISS + counts.BYPASS
  const pct = (n: number) => (total === 0 ? 0 : Math.round((n / total) * 1000) / 10)
  return `<div class="row" data-name="${escape(label)}"><span class="label">${escape(label)}</span><span class="bar stacked" role="img" aria-label="${pct(counts.HIT)}% hits"><span class="fill hit" style="width:${pct(counts.HIT)}%"></span><span class="fill miss" style="width:${pct(counts.MISS)}%"></span><span class="fill bypass" style="width:${pct(counts.BYPASS)}%"></span></span><span class="nums">${pct(counts.HIT)}% · ${counts.HIT} hit / ${counts.MISS} miss / ${counts.BYPASS} bypass</span></div>`
}

function formatBytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch] as string)
}

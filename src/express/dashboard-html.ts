// The dashboard's page: server-rendered HTML, every value escaped, no script, readable without CSS.
import type { Invalidation } from '../invalidation-log.ts'
import type { NameCounts } from '../lookup-stats.ts'
import type { CacheStatsSnapshot } from '../stats.ts'

/** What the dashboard shows, gathered from the cache at one moment. */
export interface DashboardData {
  readonly stats: CacheStatsSnapshot
  readonly names: readonly NameCounts[]
  readonly largest: readonly { key: string; bytes: number; computeMs: number; expiresAt: number | null }[]
  readonly invalidations: readonly Invalidation[]
  readonly now: number
  /** The result of the last form post, shown once. */
  readonly notice: string | undefined
  /** Where the forms post (the dashboard's mount path + `/invalidate`). */
  readonly action: string
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/**
 * `value` as HTML text or attribute value.
 * @example
 * ```ts
 * escapeHtml('<b title="x">') // '&lt;b title=&quot;x&quot;&gt;'
 * ```
 */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c] as string)
}

/** A hit rate as a percentage with one decimal, or an en dash before any lookup. */
export function hitRate(hits: number, misses: number): string {
  const total = hits + misses
  return total === 0 ? '–' : `${((hits / total) * 100).toFixed(1)}%`
}

/**
 * Milliseconds a name's cached answers saved, approximately: each hit or stale serve saved the average miss time (its
 * compute) less the time the hit itself took.
 */
export function savedMs(counts: NameCounts): number {
  if (counts.misses === 0) return 0
  return Math.max(0, (counts.hits + counts.stale) * (counts.missMs / counts.misses) - counts.hitMs)
}

/** A duration for people: `840 ms`, `12.4 s`, `3.1 min`. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  return `${(ms / 60_000).toFixed(1)} min`
}

const cell = (figure: string, value: unknown): string => `<td data-figure="${escapeHtml(figure)}">${escapeHtml(value)}</td>`

function tierRows(stats: CacheStatsSnapshot): string {
  const tiers = [
    ['request', 'Request scope', stats.request],
    ['l1', 'L1 (memory)', stats.l1],
    ['l2', 'L2 (Redis)', stats.l2],
  ] as const
  return tiers
    .map(([id, label, t]) => `<tr><th scope="row">${label}</th>${cell(`${id}-hits`, t.hits)}${cell(`${id}-misses`, t.misses)}${cell(`${id}-rate`, hitRate(t.hits, t.misses))}</tr>`)
    .join('\n')
}

function nameTable(kind: 'frag' | 'view', names: readonly NameCounts[], title: string): string {
  const rows = names
    .filter((n) => n.kind === kind)
    .sort((a, b) => savedMs(b) - savedMs(a))
    .map((n) => {
      const id = `${kind}:${n.name}`
      const avg = n.misses === 0 ? '–' : formatMs(n.missMs / n.misses)
      return `<tr><th scope="row">${escapeHtml(n.name)}</th>${cell(`${id}:hits`, n.hits)}${cell(`${id}:stale`, n.stale)}${cell(`${id}:misses`, n.misses)}${cell(`${id}:rate`, hitRate(n.hits + n.stale, n.misses))}${cell(`${id}:compute`, avg)}${cell(`${id}:saved`, formatMs(savedMs(n)))}</tr>`
    })
  const body = rows.length === 0 ? `<tr><td colspan="7">None looked up yet.</td></tr>` : rows.join('\n')
  return `<h2>${title}</h2>
<table><thead><tr><th scope="col">Name</th><th scope="col">Hits</th><th scope="col">Stale</th><th scope="col">Misses</th><th scope="col">Hit rate</th><th scope="col">Avg. miss</th><th scope="col">Saved ≈</th></tr></thead>
<tbody>${body}</tbody></table>`
}

function largestTable(data: DashboardData): string {
  const rows = data.largest.map((e, i) => {
    const expires = e.expiresAt === null ? 'never' : `in ${formatMs(Math.max(0, e.expiresAt - data.now))}`
    return `<tr><td><code>${escapeHtml(e.key)}</code></td>${cell(`largest:${i}:bytes`, e.bytes)}<td>${escapeHtml(formatMs(e.computeMs))}</td><td>${escapeHtml(expires)}</td></tr>`
  })
  const body = rows.length === 0 ? `<tr><td colspan="4">L1 is empty.</td></tr>` : rows.join('\n')
  return `<table><thead><tr><th scope="col">Key</th><th scope="col">Bytes</th><th scope="col">Compute</th><th scope="col">Expires</th></tr></thead><tbody>${body}</tbody></table>`
}

function invalidationTable(data: DashboardData): string {
  const rows = data.invalidations.map(
    (item, i) =>
      `<tr><td><time datetime="${new Date(item.at).toISOString()}">${escapeHtml(new Date(item.at).toISOString().replace('T', ' ').slice(0, 19))} UTC</time></td><td>${escapeHtml(item.kind)}</td><td><code data-figure="invalidation:${i}:target">${escapeHtml(item.target)}</code></td><td>${escapeHtml(item.origin === 'local' ? 'this process' : 'another process')}</td>${cell(`invalidation:${i}:dropped`, item.droppedL1)}</tr>`,
  )
  const body = rows.length === 0 ? `<tr><td colspan="5">None since this process started.</td></tr>` : rows.join('\n')
  return `<table><thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Tag or path</th><th scope="col">From</th><th scope="col">L1 entries dropped</th></tr></thead><tbody>${body}</tbody></table>`
}

function healthList(stats: CacheStatsSnapshot): string {
  const l2 = stats.l2
  if (!l2.configured) return `<p data-figure="redis-state">No Redis configured: this process's memory only.</p>`
  const item = (label: string, figure: string, value: unknown) => `<dt>${label}</dt><dd data-figure="${figure}">${escapeHtml(value)}</dd>`
  return `<dl>
${item('Redis', 'redis-state', l2.down ? 'down (serving from memory)' : 'up')}
${item('Errors (timeouts included)', 'redis-errors', l2.errors)}
${item('Timeouts', 'redis-timeouts', l2.timeouts)}
${item('Outages', 'redis-outages', l2.outages)}
${item('Reply errors (bugs, not outages)', 'redis-reply-errors', l2.replyErrors)}
${item('Corrupt values', 'redis-corrupt', l2.corrupt)}
${item('Invalidation bus', 'bus-state', l2.busConnected ? 'connected' : 'down')}
${item('Other processes heard', 'bus-peers', l2.peers)}
${item('Invalidations missed (gaps)', 'bus-gaps', l2.busGaps)}
${item('Unacknowledged invalidations', 'bus-unacknowledged', l2.unacknowledged)}
</dl>`
}

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1d1d1f}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}
td[data-figure]{font-variant-numeric:tabular-nums}code{font-size:.85em;word-break:break-all}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dd{margin:0}.notice{background:#eef6ee;border:1px solid #9c9;padding:.5rem 1rem}form{display:inline-block;margin:0 2rem 1rem 0}
.note{color:#555;font-size:.9em}`

/**
 * The dashboard's whole page.
 * @example
 * ```ts
 * res.send(renderDashboard({ stats: cache.stats(), names: cache.lookupStats.list(), largest: cache.largestEntries(), invalidations: cache.invalidations(), now: Date.now(), notice: undefined, action: '/_cache/invalidate' }))
 * ```
 */
export function renderDashboard(data: DashboardData): string {
  const { stats } = data
  const saved = data.names.reduce((sum, n) => sum + savedMs(n), 0)
  const notice = data.notice === undefined ? '' : `<p class="notice" role="status">${escapeHtml(data.notice)}</p>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>fragcache dashboard</title><style>${STYLE}</style></head>
<body><h1>fragcache</h1>
${notice}
<p>Time saved by cached fragments and pages ≈ <strong data-figure="saved-total">${escapeHtml(formatMs(saved))}</strong>
 · computes <span data-figure="computes">${stats.computes}</span> (errors <span data-figure="compute-errors">${stats.computeErrors}</span>)
 · stale serves <span data-figure="stale-serves">${stats.staleServes}</span>
 · lock waits <span data-figure="lock-waits">${stats.lockWaits}</span>
 · L1 <span data-figure="l1-entries">${stats.l1.entries}</span> entries, <span data-figure="l1-bytes">${stats.l1.bytes}</span> bytes</p>
<p class="note">Figures are this process's since it started. Time saved is approximate: each hit is credited with the average time a miss of the same name took here, less the hit's own time.</p>
<h2>Hit rate per tier</h2>
<table><thead><tr><th scope="col">Tier</th><th scope="col">Hits</th><th scope="col">Misses</th><th scope="col">Hit rate</th></tr></thead>
<tbody>${tierRows(stats)}</tbody></table>
<p class="note">A read counts one miss at each tier it passed; a read answered by L1 counts a request-scope miss first.</p>
${nameTable('frag', data.names, 'Fragments')}
${nameTable('view', data.names, 'Pages')}
<h2>Redis and bus</h2>
${healthList(stats)}
<h2>Invalidate</h2>
<form method="post" action="${escapeHtml(data.action)}"><input type="hidden" name="kind" value="path">
<label>Path prefix <input name="target" required pattern="/.*" placeholder="/articles/"></label> <button type="submit">Invalidate path</button></form>
<form method="post" action="${escapeHtml(data.action)}"><input type="hidden" name="kind" value="tag">
<label>Tag <input name="target" required placeholder="article:42"></label> <button type="submit">Bump tag</button></form>
<h2>Latest invalidations</h2>
${invalidationTable(data)}
<p class="note">Entries dropped counts this process's L1 entries that depended on the tag at that moment; entries in Redis and in other processes' memory are not counted, and a path invalidation also reaches pages not cached here.</p>
<h2>Largest entries in L1</h2>
${largestTable(data)}
</body></html>
`
}

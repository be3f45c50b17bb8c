// Which requests may use the shared page cache. Varnish's built-in rule is the model: a request with a Cookie or an
// Authorization header is neither served from the shared cache nor stored in it, unless configured otherwise.
import type { Request } from 'express'
import type { ResolvedPageOptions } from './options.ts'

/**
 * True when `req` may be served from and stored in the shared page cache: a GET or HEAD, not `skip`ped, not a
 * `Range`, without credentials the key does not hold (an `Authorization` header unless `vary` names it; any cookie
 * outside `ignoreCookies` and the `cookie:NAME` entries of `vary`), for an allowed host when `allowedHosts` is set.
 * The query is judged with the key, where it is memoized.
 */
export function mayUseSharedCache(req: Request, o: ResolvedPageOptions): boolean {
  const method = req.method
  if ((method !== 'GET' && method !== 'HEAD') || req.headers.range !== undefined || o.skip?.(req) === true) return false
  if (req.headers.authorization !== undefined && !o.varyHeaders.includes('authorization')) return false
  if (carriesOtherCookie(req.headers.cookie, o)) return false
  return o.allowedHosts === undefined || o.allowedHosts.has((req.hostname ?? '').toLowerCase())
}

/**
 * True when the `Cookie` header holds a cookie outside `allowedCookies`, whatever the application calls its
 * session (a login cookie named `token` is as personal as `connect.sid`). A nameless cookie (`Cookie: abc`) counts:
 * a page may read the raw header. Naming the whole `cookie` header in `vary` keys every cookie.
 */
function carriesOtherCookie(header: string | undefined, o: ResolvedPageOptions): boolean {
  if (header === undefined || o.varyAllCookies) return false
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) {
      if (part.trim() !== '') return true
    } else if (!o.allowedCookies.has(part.slice(0, eq).trim())) {
      return true
    }
  }
  return false
}

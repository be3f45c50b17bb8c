import { join } from 'node:path'
import { SEED_DIR, readJson } from './db.ts'

/** A demo user: the fake login picks one by id. */
export interface User {
  id: string
  name: string
  lang: string
  unread: number
  plan: string
  /** May force a refresh of every fragment with `?refresh=1`. */
  staff: boolean
}

/** The languages the site is written in. */
export const LANGUAGES = ['en', 'fr'] as const
export type Lang = (typeof LANGUAGES)[number]

/** The name of the fake-login cookie: it holds a user id, nothing else (a demo, not authentication). */
export const USER_COOKIE = 'demo_user'

/**
 * Loads the demo users from `fixtures/site-seed/users.json`.
 * @example
 * ```ts
 * const users = loadUsers(); users.get('alice')?.name // 'Alice Martin'
 * ```
 */
export function loadUsers(seedDir: string = SEED_DIR): Map<string, User> {
  return new Map(readJson<User[]>(join(seedDir, 'users.json')).map((user) => [user.id, user]))
}

/**
 * The language of a request: `?lang=`, else the signed-in user's, else the first supported one in
 * Accept-Language, else English.
 * @example
 * ```ts
 * pickLang({ query: 'fr', user: undefined, acceptLanguage: 'en-GB' }) // 'fr'
 * ```
 */
export function pickLang({ query, user, acceptLanguage }: { query: unknown; user: User | undefined; acceptLanguage: string | undefined }): Lang {
  if (isLang(query)) return query
  if (user && isLang(user.lang)) return user.lang
  for (const part of (acceptLanguage ?? '').split(',')) {
    const code = part.trim().slice(0, 2).toLowerCase()
    if (isLang(code)) return code
  }
  return 'en'
}

function isLang(value: unknown): value is Lang {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value)
}

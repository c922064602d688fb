/**
 * The room log's database settings: what the build writes into runtime config (module setup),
 * and what the server opens at startup, from that and the environment (NUXT_CHAT_DATABASE_*).
 */
import { defu } from 'defu'
import type { ChatDatabaseConfig } from '../../types'
import { envKey } from './envOverrides'
import { SQLITE_FILE_CONNECTORS } from './platform'

/** The SQLite file of the room log when `chat.database.options` names none (relative to the app's root). */
export const DEFAULT_SQLITE_PATH = '.data/chat.sqlite'

/** db0 connectors that open a database server from a URL (`options.url`). */
const URL_CONNECTORS = new Set(['postgresql', 'libsql', 'libsql-node', 'libsql-http', 'libsql-web'])

/**
 * Options that name a place or a credential, as text. An environment override of one that looks
 * like a number was parsed into a number (Nitro's destr, ./envOverrides.ts): its text is meant.
 */
const TEXT_OPTIONS = ['url', 'path', 'cwd', 'name', 'connectionString', 'host', 'user', 'password', 'database']

/** libpq's environment variables that tell `pg` where to connect when its options do not. */
const PG_ENV = ['PGHOST', 'PGHOSTADDR', 'PGDATABASE', 'PGUSER', 'PGSERVICE']

/**
 * `chat.database` as the build writes it into runtime config: SQLite's default file (and the
 * app's root as its `cwd`) for a SQLite connector only, never merged into another connector's
 * options; an empty `url`, and for a URL connector an empty `options.url`, so that
 * NUXT_CHAT_DATABASE_URL and NUXT_CHAT_DATABASE_OPTIONS_URL can set them at run time (Nitro
 * overrides only keys the build has) and no secret needs to be in the build.
 */
export function databaseForBuild(database: ChatDatabaseConfig, rootDir: string): Required<ChatDatabaseConfig> {
  const { connector } = database
  const options = SQLITE_FILE_CONNECTORS.has(connector)
    ? defu(database.options, { cwd: rootDir, path: DEFAULT_SQLITE_PATH })
    : URL_CONNECTORS.has(connector) ? defu(database.options, { url: '' }) : { ...database.options }
  return { connector, url: database.url ?? '', options }
}

/**
 * The options the connector opens the database with: `url` (NUXT_CHAT_DATABASE_URL) over
 * `options.url`; an empty `url` is left out (db0's PostgreSQL connector would take it as the
 * whole configuration and drop the other options).
 */
export function connectorOptions(database: ChatDatabaseConfig): Record<string, unknown> {
  const options: Record<string, unknown> = { ...database.options }
  for (const key of TEXT_OPTIONS) if (typeof options[key] === 'number') options[key] = String(options[key])
  const url = (typeof database.url === 'number' ? String(database.url) : database.url) || options.url
  if (url) options.url = url
  else delete options.url
  // An empty path (NUXT_CHAT_DATABASE_OPTIONS_PATH=): the chat's default file, not db0's `.data/db.sqlite`.
  if (SQLITE_FILE_CONNECTORS.has(database.connector) && options.path === '') options.path = DEFAULT_SQLITE_PATH
  return options
}

/** The first database setting that is not text (an override that parsed as JSON), named by its variable. */
function nonTextSetting(database: ChatDatabaseConfig): string | undefined {
  const isText = (value: unknown) => value === undefined || value === null || typeof value === 'string' || typeof value === 'number'
  if (!isText(database.url)) return 'NUXT_CHAT_DATABASE_URL'
  const key = TEXT_OPTIONS.find(name => !isText(database.options?.[name]))
  return key && `NUXT_CHAT_DATABASE_OPTIONS_${envKey(key)}`
}

/**
 * Why the server cannot open its database with these settings, as one line naming what to set;
 * `undefined` when it can. A server database with nowhere to connect to, or a URL given to a
 * SQLite file connector (which would ignore it and write a file nobody asked for).
 */
export function databaseProblem(database: ChatDatabaseConfig, env: Record<string, string | undefined> = process.env): string | undefined {
  const { connector } = database
  const notText = nonTextSetting(database)
  if (notText) return `[nuxt-chat] ${notText} must be text (a file name, host, URL or credential), not JSON: the server cannot open its database with it.`
  const options = connectorOptions(database)
  if (SQLITE_FILE_CONNECTORS.has(connector) && (database.url || options.url)) {
    return `[nuxt-chat] a database URL is set (NUXT_CHAT_DATABASE_URL or chat.database.options.url) but chat.database uses the "${connector}" connector, which opens a file: set NUXT_CHAT_DATABASE_OPTIONS_PATH instead, or build with another connector (e.g. connector: 'postgresql').`
  }
  const reachable = connector === 'postgresql'
    ? Boolean(options.url || options.connectionString || options.host || PG_ENV.some(name => env[name]))
    : !URL_CONNECTORS.has(connector) || Boolean(options.url)
  if (!reachable) return `[nuxt-chat] chat.database uses the "${connector}" connector but no database URL is set: set NUXT_CHAT_DATABASE_URL when the server starts.`
  return undefined
}

/**
 * The options the Redis channel is derived from (bus.ts `deploymentChannel`). Earlier builds
 * merged SQLite's default `path` into every server database's options: it still counts, so during
 * a rolling deploy old and new instances of one PostgreSQL deployment derive the same channel.
 */
export function channelOptions(database: ChatDatabaseConfig): Record<string, unknown> {
  const options = connectorOptions(database)
  return SQLITE_FILE_CONNECTORS.has(database.connector) ? options : { path: DEFAULT_SQLITE_PATH, ...options }
}

/** Does this build-time `chat.database` hold a password (in a URL or as an option)? It would be built into `.output`. */
export function holdsPassword(database: ChatDatabaseConfig): boolean {
  const options = database.options ?? {}
  const urls = [database.url, options.url, options.connectionString].filter((url): url is string => typeof url === 'string' && URL.canParse(url))
  return urls.some(url => new URL(url).password !== '') || (typeof options.password === 'string' && options.password !== '')
}

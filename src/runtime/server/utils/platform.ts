/** What the configured store needs from the platform, checked at build time (module setup) and at server start. */
import { resolve } from 'node:path'

/** db0 connectors that open SQLite through Node's built-in `node:sqlite`. */
const NODE_SQLITE_CONNECTORS = new Set(['node-sqlite', 'sqlite'])

/** db0 connectors whose `path` option names a file, resolved against their `cwd` option; with the extension of their default file. */
export const SQLITE_FILE_CONNECTORS = new Map([
  ['node-sqlite', '.sqlite'], ['sqlite', '.sqlite'], ['better-sqlite3', '.sqlite3'], ['sqlite3', '.sqlite3'], ['bun-sqlite', '.bun.sqlite'], ['bun', '.bun.sqlite'],
])

/** The Node.js version that first has `node:sqlite`. */
export const NODE_SQLITE_MIN_VERSION = '22.5'

function hasNodeSqlite(): boolean {
  try {
    // `getBuiltinModule` exists from Node 20.16 / 22.3; it answers undefined for a module this Node lacks.
    return Boolean((globalThis.process as { getBuiltinModule?: (id: string) => unknown } | undefined)?.getBuiltinModule?.('node:sqlite'))
  }
  catch {
    return false
  }
}

/**
 * Why this runtime cannot run the store built on `connector`, as one line naming the version
 * it needs; `undefined` when it can (or when the store does not depend on the runtime).
 */
export function unsupportedStoreReason(connector: string | undefined): string | undefined {
  if (!connector || !NODE_SQLITE_CONNECTORS.has(connector) || hasNodeSqlite()) return undefined
  return `[nuxt-chat] The SQLite history (db0 connector "${connector}", node:sqlite) needs Node.js >= ${NODE_SQLITE_MIN_VERSION}; this is Node.js ${globalThis.process?.version ?? 'unknown'}. Upgrade Node.js, or set chat.database to another connector (e.g. postgresql) or false.`
}

/**
 * The SQLite file a db0 file connector opens with these options (as db0 resolves it), or
 * `undefined` for any other connector.
 */
export function sqliteFileOf(connector: string, options: Record<string, unknown> = {}): string | undefined {
  const extension = SQLITE_FILE_CONNECTORS.get(connector)
  if (!extension || options.name === ':memory:') return undefined
  return resolve(String(options.cwd || '.'), String(options.path || `.data/${options.name || 'db'}${extension}`))
}

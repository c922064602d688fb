/** The room log on every store the unit tests run it on, and the files and connections they open. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { afterAll } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'

/** This machine's PostgreSQL (trust auth), its shared `test` database. */
export const POSTGRES_URL = 'postgresql://postgres@127.0.0.1:5432/test'

/** A fresh SQLite file in a directory of its own. */
export const sqlitePath = (prefix = 'nuxt-chat-log-') => join(mkdtempSync(join(tmpdir(), prefix)), 'chat.sqlite')

/** The memory store, a fresh SQLite file and the shared PostgreSQL database, by name. */
export function roomLogBackends(prefix?: string): [string, () => RoomLog][] {
  return [
    ['memory', () => createMemoryRoomLog()],
    ['sqlite', () => createDb0RoomLog(() => createDatabase(nodeSqlite({ path: sqlitePath(prefix) })))],
    ['postgresql', () => createDb0RoomLog(() => createDatabase(postgresql({ url: POSTGRES_URL })))],
  ]
}

/** A list for the logs a test file opens: every one is closed after the file's tests. */
export function closedAfterAll(): RoomLog[] {
  const opened: RoomLog[] = []
  afterAll(async () => {
    await Promise.all(opened.map(log => log.close()))
  })
  return opened
}

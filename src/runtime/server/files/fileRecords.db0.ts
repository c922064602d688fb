import type { Database } from 'db0'
import { addColumnInPlace, isConnectionFault, isWritableFile } from '../utils/roomLog.db0'
import type { FileRecord, FileRecords } from './fileRecords'

interface FileRow {
  id: string
  room: string
  uid: string
  name: string
  size: number | string
  type: string
  width: number | string | null
  height: number | string | null
  preview: string | null
  message: number | string | null
  created: number | string
  quota: string | null
}

const COLUMNS = 'id, room, uid, name, size, type, width, height, preview, message, created, quota'
// SQLite: another writer (the room log) holds the lock for a moment; waited out on timers, not inside SQLite (which blocks the event loop).
const BUSY_RETRIES = 100
const BUSY_DELAY = 20

function toRecord(row: FileRow): FileRecord {
  const record: FileRecord = { id: row.id, room: row.room, uid: row.uid, quota: row.quota ?? row.uid, name: row.name, size: Number(row.size), type: row.type, created: Number(row.created) }
  if (row.width !== null && row.width !== undefined) record.width = Number(row.width)
  if (row.height !== null && row.height !== undefined) record.height = Number(row.height)
  if (row.preview) record.preview = row.preview
  if (row.message !== null && row.message !== undefined) record.message = Number(row.message)
  return record
}

/**
 * The uploads' records in the chat's database (`chat_files`, next to `chat_messages`, whose
 * liveness the sweep reads in the same statement), on a connection of their own.
 */
export function createDb0FileRecords(open: () => Database): FileRecords {
  let opening: Promise<Database> | undefined
  /** The driver reported the connection dead: the next call opens another. */
  let lost = false
  /** SQLite opened the file for reading only (it could not be written then): its handle, replaced once the file can be. */
  let readOnly: { location?: () => string | null } | undefined
  const connect = () => {
    if (lost || (readOnly && isWritableFile(readOnly))) reset()
    return opening ??= (async () => {
      const db = open()
      try {
        const instance = await db.getInstance() as { on?: (event: string, listener: () => void) => void, location?: () => string | null }
        // A server connection that drops says so with 'error' (without a listener, an uncaught exception) or 'end'.
        if (db.dialect !== 'sqlite' && typeof instance.on === 'function') {
          instance.on('error', () => lost = true)
          instance.on('end', () => lost = true)
        }
        await createSchema(db)
        readOnly = db.dialect === 'sqlite' && !isWritableFile(instance) ? instance : undefined
        return db
      }
      catch (error) {
        opening = undefined
        void Promise.resolve().then(() => db.dispose()).catch(() => {})
        throw error
      }
    })()
  }
  function reset() {
    lost = false
    readOnly = undefined
    const dropped = opening
    opening = undefined
    void dropped?.then(db => db.dispose()).catch(() => {})
  }
  const query = async <T>(method: 'all' | 'get' | 'run', sql: string, ...params: unknown[]): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      const db = await connect()
      try {
        return await (db.prepare(sql) as unknown as Record<string, (...args: unknown[]) => Promise<T>>)[method]!(...params)
      }
      catch (error) {
        if (db.dialect === 'sqlite' && /SQLITE_BUSY|database is locked/i.test(String((error as Error)?.message)) && attempt < BUSY_RETRIES) {
          await new Promise(resolve => setTimeout(resolve, BUSY_DELAY))
          continue
        }
        // The call that met a dead link, a closed file or a dropped table fails; the next opens again (and makes the table).
        if (isConnectionFault(db.dialect, error)) lost = true
        throw error
      }
    }
  }
  const placeholders = (count: number) => Array.from({ length: count }, () => '?').join(', ')

  return {
    async add(record) {
      await query('run', `INSERT INTO chat_files (${COLUMNS}, gone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, 0)`, record.id, record.room, record.uid, record.name, record.size, record.type, record.width ?? null, record.height ?? null, record.preview ?? null, record.created, record.quota)
    },
    async get(id) {
      const row = await query<FileRow | undefined>('get', `SELECT ${COLUMNS} FROM chat_files WHERE id = ? AND gone = 0`, id)
      return row ? toRecord(row) : undefined
    },
    async usedSince(quota, since) {
      const row = await query<{ used: number | string | null } | undefined>('get', 'SELECT SUM(size) AS used FROM chat_files WHERE quota = ? AND created > ?', quota, since)
      return Number(row?.used ?? 0)
    },
    async claim(ids, room, uid, token, now, staleBefore) {
      await query('run', `UPDATE chat_files SET claim = ?, claimed_at = ? WHERE id IN (${placeholders(ids.length)}) AND room = ? AND uid = ? AND message IS NULL AND gone = 0 AND (claim IS NULL OR claimed_at < ? OR claim = ?)`, token, now, ...ids, room, uid, staleBefore, token)
      const rows = await query<FileRow[]>('all', `SELECT ${COLUMNS} FROM chat_files WHERE claim = ?`, token)
      return rows.map(toRecord)
    },
    async release(token) {
      await query('run', 'UPDATE chat_files SET claim = NULL, claimed_at = NULL WHERE claim = ?', token)
    },
    async attach(token, id) {
      await query('run', 'UPDATE chat_files SET message = ?, claim = NULL, claimed_at = NULL WHERE claim = ?', id, token)
    },
    async ofMessage(room, id) {
      const rows = await query<{ id: string }[]>('all', 'SELECT id FROM chat_files WHERE room = ? AND message = ? AND gone = 0', room, id)
      return rows.map(row => row.id)
    },
    async sweepable(orphanBefore, staleBefore, limit) {
      const rows = await query<{ id: string }[]>('all', `SELECT f.id FROM chat_files f WHERE f.gone = 0 AND (
        (f.message IS NULL AND f.created < ? AND (f.claim IS NULL OR f.claimed_at < ?))
        OR (f.message IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chat_messages m WHERE m.room = f.room AND m.id = f.message AND m.kind IS NULL AND m.deleted = 0))
      ) LIMIT ?`, orphanBefore, staleBefore, limit)
      return rows.map(row => row.id)
    },
    async markGone(ids) {
      if (!ids.length) return
      await query('run', `UPDATE chat_files SET gone = 1 WHERE id IN (${placeholders(ids.length)})`, ...ids)
    },
    async forget(before) {
      await query('run', 'DELETE FROM chat_files WHERE gone = 1 AND created < ?', before)
    },
    async close() {
      const db = await opening?.catch(() => undefined)
      opening = undefined
      await db?.dispose()
    },
  }
}

async function createSchema(db: Database) {
  if (db.dialect === 'sqlite') await db.exec('PRAGMA busy_timeout = 10')
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_files (
    id TEXT NOT NULL PRIMARY KEY,
    room TEXT NOT NULL,
    uid TEXT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    type TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    preview TEXT,
    message BIGINT,
    claim TEXT,
    claimed_at BIGINT,
    gone SMALLINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    quota TEXT
  )`)
  // Tables made before previews, or before guests' uploads counted by address, lack the column.
  await addColumnInPlace(db, 'chat_files', 'preview', 'TEXT')
  if (await addColumnInPlace(db, 'chat_files', 'quota', 'TEXT')) await db.exec('UPDATE chat_files SET quota = uid WHERE quota IS NULL')
  // The quota (bytes of the day), a message's files, the sweep's orphans.
  await db.exec('DROP INDEX IF EXISTS chat_files_uploader')
  await db.exec('CREATE INDEX IF NOT EXISTS chat_files_quota ON chat_files (quota, created)')
  await db.exec('CREATE INDEX IF NOT EXISTS chat_files_message ON chat_files (room, message) WHERE message IS NOT NULL')
  await db.exec('CREATE INDEX IF NOT EXISTS chat_files_claim ON chat_files (claim) WHERE claim IS NOT NULL')
}

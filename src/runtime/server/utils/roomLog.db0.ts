import type { Database } from 'db0'
import { startSqliteCheckpointer, type SqliteCheckpointer } from './sqliteCheckpoint'
import { checkAppendInput, MAX_UNREAD, READ_SCAN, RoomLogInputError, storedMessage, type AppendInput, type AppendResult, type ReadState, type RetentionPolicy, type RoomLog, type StoredMessage } from './roomLog'

interface MessageRow {
  id: number | string
  name: string
  body: string
  ts: number | string
  cid: string | null
  sender: string
  guest: number | string | null
  kind: string | null
  target: number | string | null
  edited: number | string | null
  deleted: number | string | null
}

/** node:sqlite's synchronous database and statement, as far as the room log uses them. */
interface NativeDatabase {
  exec: (sql: string) => void
  location?: () => string | null
  prepare: (sql: string) => NativeStatement
  readonly isTransaction?: boolean
}
interface NativeStatement {
  all: (...params: unknown[]) => unknown[]
  get: (...params: unknown[]) => unknown
  run: (...params: unknown[]) => unknown
}

/** One open database with its schema in place. */
interface Connection {
  db: Database
  /** node:sqlite's own handle: statements prepared once, transactions run synchronously. */
  native?: NativeDatabase
  statements: Map<string, NativeStatement>
  /** The driver reported the connection dead: the next call opens a new one. */
  lost: boolean
  disposed?: boolean
  /** The open attempt that made it, to forget it once it is lost. */
  opened?: Promise<Connection>
  /** node:sqlite: WAL checkpoints in a worker thread, off the event loop. */
  checkpointer?: SqliteCheckpointer
  /** node:sqlite: another process holds a lock, so calls do not wait for it inside SQLite (busy_timeout 0) until one gets it. */
  lockedOut?: boolean
}

type Method = 'all' | 'get' | 'run'

const COLUMNS = 'id, sender, name, body, ts, cid, guest, kind, target, edited, deleted'
// A racing writer (another instance, same room) took the id we computed: try again.
const MAX_APPEND_ATTEMPTS = 50
// SQLite waits this long for a lock inside a call, blocking the event loop; longer waits are retried off it (without this wait).
const SQLITE_BUSY_TIMEOUT = 10
/** How long an append waits for another process's write lock on the SQLite file before it fails. */
export const SQLITE_LOCK_WAIT = 2000
const SQLITE_RETRY_MAX_DELAY = 100
/**
 * Most appends in one transaction; the rest go in the next turn. The batch's fan-out runs in the
 * same task: 64 messages to rooms of 20 cost ~4 ms of SQLite and ~20 ms of socket writes, so a
 * backlog (after a GC or a busy moment) no longer grows into one task of 40-70 ms. Not smaller:
 * the frames of one task leave together, and 32 cost 1.4-1.8x the CPU per delivery at 3,000 msg/s.
 */
export const SQLITE_BATCH_MAX = 64
const INSERT = `INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest, kind, target)
  SELECT CAST(? AS TEXT), COALESCE(MAX(id), 0) + 1, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS SMALLINT), CAST(? AS TEXT), CAST(? AS BIGINT)
  FROM chat_messages WHERE room = ? RETURNING id`
/**
 * node:sqlite, inside a batch (which holds the write lock): the id is known, so no `MAX(id)` and no
 * RETURNING per row (10-11 µs a row instead of 18-20).
 */
const INSERT_WITH_ID = 'INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'
const LAST_ID = 'SELECT MAX(id) AS id FROM chat_messages WHERE room = ?'
/** The INSERT's parameters for one append. */
const insertParams = (input: AppendInput) => [input.room, input.sender, input.user, input.message, input.ts, input.cid ?? null, input.guest ? 1 : 0, input.kind ?? null, input.kind ? input.target : null, input.room]
// An edit of a message deleted before it was stored keeps no text either (a tombstone).
const EDIT_OF_DELETED = `CAST(? AS TEXT) = 'edit' AND EXISTS (SELECT 1 FROM chat_messages WHERE room = CAST(? AS TEXT) AND id = CAST(? AS BIGINT) AND deleted = 1)`
const EVENT_INSERT = `INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest, kind, target, deleted)
  SELECT CAST(? AS TEXT), COALESCE(MAX(id), 0) + 1, CAST(? AS TEXT), CAST(? AS TEXT), CASE WHEN ${EDIT_OF_DELETED} THEN '' ELSE CAST(? AS TEXT) END, CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS SMALLINT), CAST(? AS TEXT), CAST(? AS BIGINT), CASE WHEN ${EDIT_OF_DELETED} THEN 1 ELSE 0 END
  FROM chat_messages WHERE room = ? RETURNING id`
/** EVENT_INSERT's parameters for one event. */
const eventParams = (input: AppendInput) => {
  const tombstone = [input.kind, input.room, input.target]
  return [input.room, input.sender, input.user, ...tombstone, input.message, input.ts, input.cid ?? null, input.guest ? 1 : 0, input.kind, input.target, ...tombstone, input.room]
}
/**
 * The statement that applies an event to its target. `eventId`: the event's id, or absent
 * inside PostgreSQL's one-statement append, where the id comes from the INSERT (`ins`).
 */
function applyStatement(input: AppendInput, eventId?: number): { sql: string, params: unknown[] } {
  const id = eventId === undefined ? '(SELECT id FROM ins)' : 'CAST(? AS BIGINT)'
  const ids = eventId === undefined ? [] : [eventId]
  const { room, target } = input
  switch (input.kind) {
    case 'edit':
      // A newer edit may have been applied first (another instance): the newest one wins.
      return { sql: `UPDATE chat_messages SET body = CAST(? AS TEXT), edited = ${id} WHERE room = ? AND id = ? AND deleted = 0 AND (edited IS NULL OR edited < ${id})`, params: [input.message, ...ids, room, target, ...ids] }
    case 'delete':
      // Two index seeks (the target by its key, its edits by chat_messages_edits), never a scan of the room.
      return { sql: `UPDATE chat_messages SET body = '', deleted = 1 WHERE (room = ? AND id = ?) OR (room = ? AND kind = 'edit' AND target = ?)`, params: [room, target, room, target] }
    default:
      return input.message[0] === '+'
        ? { sql: 'INSERT INTO chat_reactions (room, target, emoji, uid) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', params: [room, target, input.message.slice(1), input.sender] }
        : { sql: 'DELETE FROM chat_reactions WHERE room = ? AND target = ? AND emoji = ? AND uid = ?', params: [room, target, input.message.slice(1), input.sender] }
  }
}
/** PostgreSQL: an event and its effect in one statement (one db0 client serves every query, so no BEGIN of our own). */
function pgEventAppend(input: AppendInput): { sql: string, params: unknown[] } {
  const apply = applyStatement(input)
  return { sql: `WITH ins AS (${EVENT_INSERT}), applied AS (${apply.sql}) SELECT id FROM ins`, params: [...eventParams(input), ...apply.params] }
}
const READ_STATE = `SELECT r.id AS read_id,
  (SELECT COUNT(*) FROM (SELECT 1 AS one FROM chat_messages m WHERE m.room = r.room AND m.id > r.id AND m.id <= r.id + ${READ_SCAN} AND m.kind IS NULL AND m.deleted = 0 AND m.sender <> r.uid LIMIT ${MAX_UNREAD}) AS counted) AS unread,
  (SELECT MAX(id) FROM chat_messages WHERE room = r.room) AS up_to
  FROM chat_reads r WHERE r.uid = ? AND r.room = ?`
// Forward only, never past the room's newest id, and only an existing position: a read never creates one (joining does).
const MARK_READ = `UPDATE chat_reads SET id = target.id, ts = CAST(? AS BIGINT)
  FROM (SELECT CASE WHEN CAST(? AS BIGINT) < COALESCE(MAX(id), 0) THEN CAST(? AS BIGINT) ELSE COALESCE(MAX(id), 0) END AS id FROM chat_messages WHERE room = ?) AS target
  WHERE chat_reads.uid = ? AND chat_reads.room = ? AND target.id > chat_reads.id`
const JOIN_READ = `INSERT INTO chat_reads (uid, room, id, ts)
  SELECT CAST(? AS TEXT), CAST(? AS TEXT), COALESCE(MAX(id), 0), CAST(? AS BIGINT) FROM chat_messages WHERE room = ?
  ON CONFLICT (uid, room) DO NOTHING RETURNING id`
// The user's positions but the one just made and the newest `max - 1` others (the order of their rooms list).
const EVICT_READS = `DELETE FROM chat_reads WHERE uid = ? AND room <> ?
  AND room NOT IN (SELECT room FROM chat_reads WHERE uid = ? AND room <> ? ORDER BY ts DESC, room LIMIT ?) RETURNING room`
// Positions idle past retention in rooms whose newest row is too (or that have none): two index seeks per position.
const PRUNE_READS = `DELETE FROM chat_reads WHERE (uid, room) IN (SELECT r.uid, r.room FROM chat_reads r WHERE r.ts < CAST(? AS BIGINT)
  AND NOT EXISTS (SELECT 1 FROM chat_messages m WHERE m.room = r.room AND m.id = (SELECT MAX(id) FROM chat_messages WHERE room = r.room) AND m.ts >= CAST(? AS BIGINT))
  LIMIT ?) RETURNING uid, room`
/** Columns added after the first release, with their definitions: added to older tables on open. */
const ADDED_COLUMNS: [string, string][] = [
  ['guest', 'SMALLINT NOT NULL DEFAULT 0'],
  ['kind', 'TEXT'],
  ['target', 'BIGINT'],
  ['edited', 'BIGINT'],
  ['deleted', 'SMALLINT NOT NULL DEFAULT 0'],
]
const BY_CID = `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND sender = ? AND cid = ?`

/**
 * The room log in any SQL database db0 connects to (SQLite by default, PostgreSQL for
 * several instances). The database assigns ids: `MAX(id) + 1` inside the INSERT, guarded by
 * the primary key, so ids are contiguous per room and commit in id order even with several
 * writers (a writer can only take id N+1 once N is committed).
 *
 * The connection is opened, and the schema created, on first use and again after the
 * connection was found dead (database down at boot, restarted, file replaced): a fault costs
 * the calls that met it, never the later ones.
 */
export function createDb0RoomLog(open: () => Database): RoomLog {
  let connecting: Promise<Connection> | undefined
  let closed = false

  const drop = (connection: Connection) => {
    connection.lost = true
    if (connecting === connection.opened) connecting = undefined
    connection.checkpointer?.stop()
    if (connection.disposed) return
    connection.disposed = true
    void Promise.resolve().then(() => connection.db.dispose()).catch(() => {})
  }
  const connect = async (): Promise<Connection> => {
    for (;;) {
      if (closed) throw new Error('[nuxt-chat] the room log is closed')
      if (!connecting) {
        const attempt: Promise<Connection> = openConnection(open).then(connection => Object.assign(connection, { opened: attempt }))
        connecting = attempt
        // A failed open is not kept: the next call tries again.
        attempt.catch(() => connecting === attempt && (connecting = undefined))
      }
      const connection = await connecting
      if (!connection.lost) return connection
      drop(connection)
    }
  }
  const query = async <T>(method: Method, sql: string, ...params: unknown[]): Promise<T> => {
    const connection = await connect()
    try {
      if (connection.native) return await whileLocked(() => nativeStatement(connection, sql)[method](...params) as T, locked => lockedOut(connection, locked))
      return await (connection.db.prepare(sql) as unknown as Record<Method, (...args: unknown[]) => Promise<T>>)[method](...params)
    }
    catch (error) {
      if (isConnectionFault(connection, error)) drop(connection)
      throw error
    }
  }

  /** Attach who reacted with what to the messages among `messages` (one read for the id range). */
  const withReactions = async (room: string, messages: StoredMessage[]): Promise<StoredMessage[]> => {
    if (!messages.length) return messages
    const rows = await query<{ target: number | string, emoji: string, uid: string }[]>('all', 'SELECT target, emoji, uid FROM chat_reactions WHERE room = ? AND target >= ? AND target <= ? ORDER BY target, emoji, uid', room, messages[0]!.id, messages[messages.length - 1]!.id)
    if (!rows.length) return messages
    const byId = new Map(messages.map(message => [message.id, message]))
    for (const { target, emoji, uid } of rows) {
      const message = byId.get(Number(target))
      if (!message || message.kind) continue
      ;((message.reactions ??= {})[emoji] ??= []).push(uid)
    }
    return messages
  }

  const lastId = async (room: string) => {
    const row = await query<{ id: number | string | null } | undefined>('get', LAST_ID, room)
    return Number(row?.id ?? 0)
  }

  /** Insert one row; an event together with its effect on its target (one statement on PostgreSQL; elsewhere one after the other). */
  const insert = async (input: AppendInput): Promise<number> => {
    if (!input.kind) return Number((await query<{ id: number | string }[]>('all', INSERT, ...insertParams(input)))[0]!.id)
    if ((await connect()).db.dialect === 'postgresql') {
      const { sql, params } = pgEventAppend(input)
      return Number((await query<{ id: number | string }[]>('all', sql, ...params))[0]!.id)
    }
    const id = Number((await query<{ id: number | string }[]>('all', EVENT_INSERT, ...eventParams(input)))[0]!.id)
    const { sql, params } = applyStatement(input, id)
    await query('run', sql, ...params)
    return id
  }

  const appendNow = async (input: AppendInput): Promise<AppendResult> => {
    const cid = input.cid ?? null
    for (let attempt = 1; ; attempt++) {
      try {
        return { message: storedMessage(await insert(input), input), duplicate: false }
      }
      catch (error) {
        if (!isUniqueViolation(error)) throw error
        if (cid !== null) {
          const stored = await query<MessageRow | undefined>('get', BY_CID, input.room, input.sender, cid)
          if (stored) return { message: toMessage(input.room, stored), duplicate: true }
        }
        if (attempt >= MAX_APPEND_ATTEMPTS) throw error
      }
    }
  }
  const appendInOrder = appendInRoomOrder(appendNow)
  const appendBatched = appendInBatches(connect, drop)

  return {
    async append(input) {
      checkAppendInput(input)
      // On node:sqlite the commit is most of an append's cost: appends of one event-loop turn share one.
      return (await connect()).native ? appendBatched(input) : appendInOrder(input)
    },
    async replaySince(room, after, limit) {
      const rows = await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id > ? ORDER BY id DESC LIMIT ?`, room, after ?? -1, limit)
      return withReactions(room, rows.reverse().map(row => toMessage(room, row)))
    },
    async before(room, before, limit) {
      const rows = await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?`, room, before, limit)
      return withReactions(room, rows.reverse().map(row => toMessage(room, row)))
    },
    async between(room, after, before) {
      const rows = await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id > ? AND id < ? ORDER BY id`, room, after, before)
      return withReactions(room, rows.map(row => toMessage(room, row)))
    },
    async byCid(room, sender, cid) {
      const row = await query<MessageRow | undefined>('get', BY_CID, room, sender, cid)
      return row ? toMessage(room, row) : undefined
    },
    async message(room, id) {
      const row = await query<MessageRow | undefined>('get', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id = ?`, room, id)
      return row ? (await withReactions(room, [toMessage(room, row)]))[0] : undefined
    },
    lastId,
    async prune(room, policy: RetentionPolicy, limit = 1000) {
      if (!(policy.max > 0) && !(policy.maxAge > 0)) return 0
      const last = await lastId(room)
      // The oldest rows, never the newest (it carries the room's id counter): delete the prefix retention allows.
      const oldest = await query<{ id: number | string, ts: number | string }[]>('all', 'SELECT id, ts FROM chat_messages WHERE room = ? AND id < ? ORDER BY id LIMIT ?', room, last, limit)
      const byCount = policy.max > 0 ? last - policy.max : 0
      const byAge = policy.maxAge > 0 ? Date.now() - policy.maxAge : -Infinity
      let upTo = 0
      let count = 0
      for (const row of oldest) {
        if (Number(row.id) > byCount && !(Number(row.ts) < byAge)) break
        upTo = Number(row.id)
        count++
      }
      if (count) {
        await query('run', 'DELETE FROM chat_messages WHERE room = ? AND id <= ?', room, upTo)
        await query('run', 'DELETE FROM chat_reactions WHERE room = ? AND target <= ?', room, upTo)
      }
      return count
    },
    async markRead(room, uid, id = Number.MAX_SAFE_INTEGER) {
      await query('run', MARK_READ, Date.now(), id, id, room, uid, room)
      const row = await query<{ id: number | string } | undefined>('get', 'SELECT id FROM chat_reads WHERE uid = ? AND room = ?', uid, room)
      return row ? Number(row.id) : undefined
    },
    async forgetRead(room, uid) {
      return (await query<unknown[]>('all', 'DELETE FROM chat_reads WHERE uid = ? AND room = ? RETURNING uid', uid, room)).length > 0
    },
    async joinRead(room, uid, max = 0) {
      const created = (await query<unknown[]>('all', JOIN_READ, uid, room, Date.now(), room)).length > 0
      if (!created || !(max > 0)) return { created, evicted: [] }
      const evicted = await query<{ room: string }[]>('all', EVICT_READS, uid, room, uid, room, max - 1)
      return { created, evicted: evicted.map(row => row.room) }
    },
    async pruneReads(maxAge, limit) {
      const before = Date.now() - maxAge
      return (await query<{ uid: string, room: string }[]>('all', PRUNE_READS, before, before, limit)).map(({ uid, room }) => ({ uid, room }))
    },
    async readState(room, uid, withLast) {
      const row = await query<{ read_id: number | string, unread: number | string, up_to: number | string | null } | undefined>('get', READ_STATE, uid, room)
      if (!row) return undefined
      const state: ReadState = { room, read: Number(row.read_id), unread: Number(row.unread), upTo: Number(row.up_to ?? 0) }
      const last = withLast ? await query<MessageRow | undefined>('get', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id > ? AND kind IS NULL AND deleted = 0 ORDER BY id DESC LIMIT 1`, room, state.upTo - READ_SCAN) : undefined
      if (last) state.last = toMessage(room, last)
      return state
    },
    async readRooms(uid, limit) {
      return (await query<{ room: string }[]>('all', 'SELECT room FROM chat_reads WHERE uid = ? ORDER BY ts DESC, room LIMIT ?', uid, limit)).map(row => row.room)
    },
    async rooms(after, limit) {
      // One index seek per room (a loose index scan): never a scan of every message.
      const names: string[] = []
      let cursor = after ?? ''
      while (names.length < limit) {
        const row = await query<{ room: string | null } | undefined>('get', 'SELECT MIN(room) AS room FROM chat_messages WHERE room > ?', cursor)
        if (row?.room === null || row?.room === undefined) break
        names.push(cursor = row.room)
      }
      return names
    },
    async close() {
      closed = true
      const connection = await connecting?.catch(() => undefined)
      connection?.checkpointer?.stop()
      if (connection && !connection.disposed) {
        connection.disposed = connection.lost = true
        await connection.db.dispose()
      }
    },
  }
}

function toMessage(room: string, row: MessageRow): StoredMessage {
  const message: StoredMessage = { id: Number(row.id), room, user: row.name, message: row.body, ts: Number(row.ts) }
  if (row.cid !== null && row.cid !== undefined) message.cid = row.cid
  if (row.sender) message.uid = row.sender
  if (Number(row.guest) === 1) message.guest = true
  if (row.kind === 'edit' || row.kind === 'delete' || row.kind === 'reaction') {
    message.kind = row.kind
    message.target = Number(row.target)
  }
  if (row.edited !== null && row.edited !== undefined) message.edited = Number(row.edited)
  if (Number(row.deleted) === 1) message.deleted = true
  return message
}

/** Open the database and create the schema; a connection that fails on the way is closed again. */
async function openConnection(open: () => Database): Promise<Connection> {
  const db = open()
  const connection: Connection = { db, statements: new Map(), lost: false }
  try {
    const instance = await db.getInstance()
    const DatabaseSync = globalThis.process?.getBuiltinModule?.('node:sqlite')?.DatabaseSync
    if (DatabaseSync && instance instanceof DatabaseSync) connection.native = instance as unknown as NativeDatabase
    // A server connection that drops while idle says so with 'error' (without a listener, an uncaught exception) or 'end'.
    const events = instance as { on?: (event: string, listener: () => void) => void }
    if (db.dialect !== 'sqlite' && typeof events.on === 'function') {
      events.on('error', () => connection.lost = true)
      events.on('end', () => connection.lost = true)
    }
    await whileLocked(() => createSchema(db))
    if (connection.native) connection.checkpointer = startSqliteCheckpointer(connection.native)
    return connection
  }
  catch (error) {
    void Promise.resolve().then(() => db.dispose()).catch(() => {})
    throw error
  }
}

function nativeStatement(connection: Connection, sql: string): NativeStatement {
  let statement = connection.statements.get(sql)
  if (!statement) connection.statements.set(sql, statement = connection.native!.prepare(sql))
  return statement
}

/**
 * Run `task`, again with backoff on timers while SQLite answers that another process holds a
 * lock, for up to `SQLITE_LOCK_WAIT` (reads in WAL mode rarely wait; opening the file may).
 * `onLock(true)` when it meets the lock, `onLock(false)` once a retry got through.
 */
async function whileLocked<T>(task: () => T | Promise<T>, onLock?: (locked: boolean) => void): Promise<T> {
  const started = Date.now()
  for (let retry = 0; ; retry++) {
    try {
      const result = await task()
      if (retry) onLock?.(false)
      return result
    }
    catch (error) {
      if (!isBusy(error) || Date.now() - started >= SQLITE_LOCK_WAIT) throw error
      onLock?.(true)
      await new Promise(resolve => setTimeout(resolve, retryDelay(retry)))
    }
  }
}

/**
 * While another process holds a lock, retries fail at once (busy_timeout 0) and wait on timers:
 * SQLite's own wait would block the event loop for `SQLITE_BUSY_TIMEOUT` at every try (~12 % busy).
 * Once a call gets through, short waits inside SQLite are back (brief locks of other writers cost no timer).
 */
function lockedOut(connection: Connection, locked: boolean) {
  if (connection.lockedOut === locked || !connection.native || connection.lost) return
  try {
    connection.native.exec(`PRAGMA busy_timeout = ${locked ? 0 : SQLITE_BUSY_TIMEOUT}`)
    connection.lockedOut = locked
  }
  catch {
    // A connection that cannot run a pragma fails its next statement and is replaced.
  }
}

/** Backoff between two tries for a lock: 5, 10, 20, … ms, at most `SQLITE_RETRY_MAX_DELAY`. */
function retryDelay(retry: number) {
  return Math.min(SQLITE_RETRY_MAX_DELAY, 5 * 2 ** retry)
}

interface BatchJob {
  input: AppendInput
  /** When the append was handed over: it waits for a lock at most `SQLITE_LOCK_WAIT` from here. */
  at: number
  resolve: (result: AppendResult) => void
  reject: (error: unknown) => void
}

/**
 * node:sqlite: run the appends that arrive in one event-loop turn inside one transaction, in
 * arrival order (so ids follow it), synchronously from BEGIN to COMMIT (nothing else can read
 * the uncommitted rows), and settle every one of them whatever happens. While another process
 * holds the write lock, BEGIN is retried with backoff on timers, so the event loop stays free;
 * an append that waited `SQLITE_LOCK_WAIT` fails (the client retries it).
 */
function appendInBatches(connect: () => Promise<Connection>, drop: (connection: Connection) => void) {
  let waiting: BatchJob[] = []
  let scheduled = false
  let retries = 0

  const schedule = (delay: number) => {
    scheduled = true
    const run = () => void connect().then(flush, (error) => {
      scheduled = false
      for (const job of waiting.splice(0)) job.reject(error)
    })
    if (delay) setTimeout(run, delay)
    else setImmediate(run)
  }

  function flush(connection: Connection) {
    scheduled = false
    const jobs = waiting.length > SQLITE_BATCH_MAX ? waiting.splice(0, SQLITE_BATCH_MAX) : waiting
    waiting = jobs === waiting ? [] : waiting
    if (!jobs.length) return
    const native = connection.native!
    try {
      native.exec('BEGIN IMMEDIATE')
    }
    catch (error) {
      if (!isBusy(error)) {
        if (isConnectionFault(connection, error)) drop(connection)
        for (const job of jobs) job.reject(error)
        if (waiting.length) schedule(0)
        return
      }
      const now = Date.now()
      for (const job of jobs) {
        if (now - job.at >= SQLITE_LOCK_WAIT) job.reject(new Error(`the database file is locked by another process (waited ${now - job.at} ms)`, { cause: error }))
      }
      lockedOut(connection, true)
      // Jobs still in time go first, ahead of those that arrived meanwhile.
      waiting = [...jobs.filter(job => now - job.at < SQLITE_LOCK_WAIT), ...waiting]
      if (waiting.length) schedule(retryDelay(retries++))
      return
    }
    retries = 0
    lockedOut(connection, false)
    // A burst bigger than one batch: the rest after a turn of the loop (I/O, timers) in between.
    if (waiting.length) schedule(0)
    // room → its next id in this transaction (the batch holds the write lock: no other writer moves it).
    const nextIds = new Map<string, number>()
    const results = jobs.map((job): { value: AppendResult } | { error: unknown } => {
      try {
        return { value: appendSync(connection, job.input, nextIds) }
      }
      catch (error) {
        return { error }
      }
    })
    try {
      native.exec('COMMIT')
    }
    catch (error) {
      // A COMMIT that failed may leave the transaction open; one that SQLite rolled back leaves none (ROLLBACK would throw).
      try {
        if (native.isTransaction !== false) native.exec('ROLLBACK')
      }
      catch {
        drop(connection)
      }
      if (isConnectionFault(connection, error)) drop(connection)
      for (const job of jobs) job.reject(error)
      return
    }
    results.forEach((result, index) => 'value' in result ? jobs[index]!.resolve(result.value) : jobs[index]!.reject(result.error))
    // A statement that failed on the file (read-only, I/O error) asks for a fresh connection next time.
    if (results.some(result => 'error' in result && isConnectionFault(connection, result.error))) drop(connection)
  }

  return (input: AppendInput) => new Promise<AppendResult>((resolve, reject) => {
    waiting.push({ input, at: Date.now(), resolve, reject })
    if (!scheduled) schedule(0)
  })
}

/** One append inside the batch's transaction (a failed statement there does not abort it); `nextIds`: the batch's next id per room. */
function appendSync(connection: Connection, input: AppendInput, nextIds: Map<string, number>): AppendResult {
  const cid = input.cid ?? null
  try {
    if (input.kind) {
      const eventId = appendEventSync(connection, input)
      nextIds.set(input.room, eventId + 1)
      return { message: storedMessage(eventId, input), duplicate: false }
    }
    const id = nextIds.get(input.room) ?? Number((nativeStatement(connection, LAST_ID).get(input.room) as { id: number | string | null }).id ?? 0) + 1
    nativeStatement(connection, INSERT_WITH_ID).run(input.room, id, input.sender, input.user, input.message, input.ts, cid, input.guest ? 1 : 0)
    nextIds.set(input.room, id + 1)
    return { message: storedMessage(id, input), duplicate: false }
  }
  catch (error) {
    if (cid === null || !isUniqueViolation(error)) throw error
    const stored = nativeStatement(connection, BY_CID).get(input.room, input.sender, cid) as MessageRow | undefined
    if (!stored) throw error
    return { message: toMessage(input.room, stored), duplicate: true }
  }
}

/** An event and its effect on its target, all or nothing: a savepoint inside the batch's transaction. */
function appendEventSync(connection: Connection, input: AppendInput): number {
  const native = connection.native!
  native.exec('SAVEPOINT chat_event')
  try {
    const id = Number((nativeStatement(connection, EVENT_INSERT).all(...eventParams(input)) as { id: number | string }[])[0]!.id)
    const { sql, params } = applyStatement(input, id)
    nativeStatement(connection, sql).run(...params)
    native.exec('RELEASE chat_event')
    return id
  }
  catch (error) {
    native.exec('ROLLBACK TO chat_event')
    native.exec('RELEASE chat_event')
    throw error
  }
}

/**
 * One append at a time per room on this instance, so ids follow the order appends were
 * handed over even when one must retry after another instance took its id.
 */
function appendInRoomOrder(appendNow: (input: AppendInput) => Promise<AppendResult>) {
  const tails = new Map<string, Promise<unknown>>()
  return (input: AppendInput): Promise<AppendResult> => {
    const result = (tails.get(input.room) ?? Promise.resolve()).then(() => appendNow(input))
    const tail = result.catch(() => {})
    tails.set(input.room, tail)
    // The chain of a quiet room is forgotten once its last append is done.
    void tail.then(() => tails.get(input.room) === tail && tails.delete(input.room))
    return result
  }
}

async function createSchema(db: Database) {
  if (db.dialect === 'sqlite') {
    // Short: a lock held by another process is waited out on timers, not inside SQLite (which blocks the event loop).
    await db.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT}`)
    // WAL + NORMAL: a commit is a write to the log, not an fsync; readers never block the writer.
    await db.exec('PRAGMA journal_mode = WAL')
    await db.exec('PRAGMA synchronous = NORMAL')
  }
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_messages (
    room TEXT NOT NULL,
    id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    ts BIGINT NOT NULL,
    cid TEXT,
    guest SMALLINT NOT NULL DEFAULT 0,
    kind TEXT,
    target BIGINT,
    edited BIGINT,
    deleted SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room, id)
  )`)
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_reactions (
    room TEXT NOT NULL,
    target BIGINT NOT NULL,
    emoji TEXT NOT NULL,
    uid TEXT NOT NULL,
    PRIMARY KEY (room, target, emoji, uid)
  )`)
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_reads (
    uid TEXT NOT NULL,
    room TEXT NOT NULL,
    id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (uid, room)
  )`)
  await db.exec('CREATE INDEX IF NOT EXISTS chat_reads_recent ON chat_reads (uid, ts)')
  // Retention finds idle positions by age (added in 0.5: built at open on older databases; older versions ignore it).
  await db.exec('CREATE INDEX IF NOT EXISTS chat_reads_idle ON chat_reads (ts)')
  await db.exec('CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_cid ON chat_messages (room, sender, cid) WHERE cid IS NOT NULL')
  // Tables made by earlier versions lack some columns. Looked up first: ALTER TABLE locks the table.
  for (const [column, definition] of ADDED_COLUMNS) {
    const exists = db.dialect === 'sqlite'
      ? await db.prepare(`SELECT name FROM pragma_table_info('chat_messages') WHERE name = ?`).get(column)
      : await db.prepare(`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'chat_messages' AND column_name = ?`).get(column)
    if (exists) continue
    await db.exec(`ALTER TABLE chat_messages ADD COLUMN ${column} ${definition}`).catch((error) => {
      // Another instance added it meanwhile.
      if (!/duplicate column|already exists/i.test(String((error as Error)?.message))) throw error
    })
  }
  // A delete finds its target's edits here (after the columns: older tables lack them); built at open on databases made before it.
  await db.exec(`CREATE INDEX IF NOT EXISTS chat_messages_edits ON chat_messages (room, target) WHERE kind = 'edit'`)
}

function isUniqueViolation(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown, message?: unknown }
  return code === '23505' || (typeof message === 'string' && /UNIQUE constraint failed|duplicate key/i.test(message))
}

/** SQLite's primary result code of a node:sqlite error (`errcode` holds the extended one). */
function sqliteCode(error: unknown): number | undefined {
  const { errcode } = (error ?? {}) as { errcode?: unknown }
  return typeof errcode === 'number' ? errcode & 0xFF : undefined
}

function isBusy(error: unknown): boolean {
  const code = sqliteCode(error)
  return code === 5 /* SQLITE_BUSY */ || code === 6 /* SQLITE_LOCKED */ || (code === undefined && /database is locked/i.test(String((error as Error)?.message)))
}

/**
 * Is the connection itself at fault (closed, file gone, read-only, corrupt; for a server: the
 * link or the server's session), rather than the statement? Only then is it replaced: a bad
 * value or a lock must not cost other requests their connection.
 */
function isConnectionFault(connection: Connection, error: unknown): boolean {
  if (error instanceof RoomLogInputError || isUniqueViolation(error)) return false
  if (connection.db.dialect === 'sqlite') {
    const code = sqliteCode(error)
    // BUSY, LOCKED, CONSTRAINT, TOOBIG, MISMATCH, RANGE: the statement's fault; anything else (READONLY, IOERR, CORRUPT, CANTOPEN, NOTADB, a closed handle) reopens.
    return code === undefined ? !isBusy(error) : ![5, 6, 18, 19, 20, 25].includes(code)
  }
  const { code } = (error ?? {}) as { code?: unknown }
  // No SQLSTATE: a socket error (ECONNREFUSED, ECONNRESET) or a client that is no longer queryable.
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true
  // 08: connection exception; 57P: the server shut down or killed the session; 42P01: the table is gone (recreated on reopen).
  return code.startsWith('08') || code.startsWith('57P') || code === '42P01'
}

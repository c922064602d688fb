import type { Database } from 'db0'
import { storedMessage, type AppendInput, type AppendResult, type RetentionPolicy, type RoomLog, type StoredMessage } from './roomLog'

interface MessageRow {
  id: number | string
  sender: string
  name: string
  body: string
  ts: number | string
  cid: string | null
  guest: number | string | null
}

const COLUMNS = 'id, sender, name, body, ts, cid, guest'
// A racing writer (another instance, same room) took the id we computed: try again.
const MAX_APPEND_ATTEMPTS = 50

/**
 * The room log in any SQL database db0 connects to (SQLite by default, PostgreSQL for
 * several instances). The database assigns ids: `MAX(id) + 1` inside the INSERT, guarded by
 * the primary key, so ids are contiguous per room and commit in id order even with several
 * writers (a writer can only take id N+1 once N is committed).
 */
export function createDb0RoomLog(open: () => Database): RoomLog {
  let db = open()
  const ready = createSchema(db)
  const toMessage = (room: string, row: MessageRow): StoredMessage => {
    const message: StoredMessage = { id: Number(row.id), room, user: row.name, message: row.body, ts: Number(row.ts) }
    if (row.cid !== null && row.cid !== undefined) message.cid = row.cid
    if (row.sender) message.uid = row.sender
    if (Number(row.guest) === 1) message.guest = true
    return message
  }
  // A server connection that failed (database restarted, connection killed) is never
  // queryable again in db0: open a new one for the next call. SQLite has no connection to lose.
  const reopen = () => {
    const broken = db
    db = open()
    listenForErrors(db)
    void broken.dispose().catch(() => {})
  }
  const listenForErrors = (database: Database) => {
    // Without a listener, a dropped connection's 'error' event is an uncaught exception.
    Promise.resolve(database.getInstance()).then(client => (client as { on?: (event: 'error', listener: () => void) => void }).on?.('error', () => {}), () => {})
  }
  const onServer = (sql: string): LogStatement => {
    const use = async <T>(call: (statement: LogStatement) => Promise<T>): Promise<T> => {
      const used = db
      try {
        return await call(used.prepare(sql) as unknown as LogStatement)
      }
      catch (error) {
        // Queries failing together on one dead connection replace it once.
        if (!isUniqueViolation(error) && used === db) reopen()
        throw error
      }
    }
    return {
      all: (...params) => use(statement => statement.all(...params)),
      get: (...params) => use(statement => statement.get(...params)),
      run: (...params) => use(statement => statement.run(...params)),
    }
  }
  if (db.dialect !== 'sqlite') listenForErrors(db)
  const prepare = (sql: string) => db.dialect === 'sqlite' ? preparedOnce(db, sql) : onServer(sql)
  const insert = prepare(
    `INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest)
     SELECT CAST(? AS TEXT), COALESCE(MAX(id), 0) + 1, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS SMALLINT)
     FROM chat_messages WHERE room = ? RETURNING id`,
  )
  const byCid = prepare(`SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND sender = ? AND cid = ?`)
  const newest = prepare(`SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id > ? ORDER BY id DESC LIMIT ?`)
  const range = prepare(`SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id > ? AND id < ? ORDER BY id`)
  const maxId = prepare('SELECT MAX(id) AS id FROM chat_messages WHERE room = ?')
  const pruneCount = prepare('DELETE FROM chat_messages WHERE room = ? AND id <= ?')
  const pruneAge = prepare('DELETE FROM chat_messages WHERE room = ? AND ts < ? AND id < ?')

  const lastId = async (room: string) => {
    await ready
    const row = await maxId.get(room) as { id: number | string | null } | undefined
    return Number(row?.id ?? 0)
  }

  const appendNow = async (input: AppendInput): Promise<AppendResult> => {
    await ready
    const cid = input.cid ?? null
    for (let attempt = 1; ; attempt++) {
      try {
        const rows = await insert.all(input.room, input.sender, input.user, input.message, input.ts, cid, input.guest ? 1 : 0, input.room) as { id: number | string }[]
        return { message: storedMessage(Number(rows[0]!.id), input), duplicate: false }
      }
      catch (error) {
        if (!isUniqueViolation(error)) throw error
        if (cid !== null) {
          const stored = await byCid.get(input.room, input.sender, cid) as MessageRow | undefined
          if (stored) return { message: toMessage(input.room, stored), duplicate: true }
        }
        if (attempt >= MAX_APPEND_ATTEMPTS) throw error
      }
    }
  }

  return {
    // On SQLite the commit is most of an append's cost: appends of one event-loop turn share one.
    append: db.dialect === 'sqlite' ? appendInBatches(db, ready, appendNow) : appendInRoomOrder(appendNow),
    async replaySince(room, after, limit) {
      await ready
      const rows = await newest.all(room, after ?? -1, limit) as MessageRow[]
      return rows.reverse().map(row => toMessage(room, row))
    },
    async between(room, after, before) {
      await ready
      const rows = await range.all(room, after, before) as MessageRow[]
      return rows.map(row => toMessage(room, row))
    },
    lastId,
    async prune(room, policy: RetentionPolicy) {
      const last = await lastId(room)
      if (last > policy.max) await pruneCount.run(room, last - policy.max)
      // The newest message always stays: it carries the room's id counter.
      if (policy.maxAge > 0) await pruneAge.run(room, Date.now() - policy.maxAge, last)
    },
    async close() {
      await ready.catch(() => {})
      await db.dispose()
    },
  }
}

/**
 * Run the appends that arrive in one event-loop turn inside one transaction, in arrival order
 * (so ids follow it), and settle them once it committed. SQLite only: a failed statement
 * there does not abort the transaction around it.
 */
function appendInBatches(db: Database, ready: Promise<void>, appendNow: (input: AppendInput) => Promise<AppendResult>) {
  let batch: { input: AppendInput, resolve: (result: AppendResult) => void, reject: (error: unknown) => void }[] | undefined
  // One transaction at a time, also with an asynchronous SQLite driver.
  let flushing = Promise.resolve()

  async function flush() {
    const jobs = batch!
    batch = undefined
    await ready.catch(() => {})
    let results: PromiseSettledResult<AppendResult>[]
    try {
      await db.exec('BEGIN IMMEDIATE')
      results = await Promise.allSettled(jobs.map(job => appendNow(job.input)))
      await db.exec('COMMIT')
    }
    catch (error) {
      await db.exec('ROLLBACK').catch(() => {})
      for (const job of jobs) job.reject(error)
      return
    }
    results.forEach((result, index) => result.status === 'fulfilled' ? jobs[index]!.resolve(result.value) : jobs[index]!.reject(result.reason))
  }

  return (input: AppendInput) => new Promise<AppendResult>((resolve, reject) => {
    if (!batch) {
      batch = []
      setImmediate(() => {
        flushing = flushing.then(flush)
      })
    }
    batch.push({ input, resolve, reject })
  })
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

/** The parts of a db0 statement the room log uses. */
interface LogStatement {
  all: (...params: unknown[]) => Promise<unknown[]>
  get: (...params: unknown[]) => Promise<unknown>
  run: (...params: unknown[]) => Promise<unknown>
}

interface NativeStatement {
  all: (...params: unknown[]) => unknown[]
  get: (...params: unknown[]) => unknown
  run: (...params: unknown[]) => unknown
}

/**
 * db0's node:sqlite connector prepares the SQL again on every call (about a third of an
 * append's cost): on node:sqlite, prepare it once, on first use (after the schema exists).
 * Any other SQLite driver keeps db0's statement.
 */
function preparedOnce(db: Database, sql: string): LogStatement {
  let statement: Promise<NativeStatement | LogStatement> | undefined
  const resolve = () => statement ??= Promise.resolve(db.getInstance()).then((instance) => {
    const DatabaseSync = globalThis.process?.getBuiltinModule?.('node:sqlite')?.DatabaseSync
    return DatabaseSync && instance instanceof DatabaseSync ? instance.prepare(sql) as unknown as NativeStatement : db.prepare(sql) as unknown as LogStatement
  }).catch((error) => {
    // A failed prepare is not cached: the next call tries again.
    statement = undefined
    throw error
  })
  return {
    all: async (...params) => (await resolve()).all(...params),
    get: async (...params) => (await resolve()).get(...params),
    run: async (...params) => (await resolve()).run(...params),
  }
}

async function createSchema(db: Database) {
  if (db.dialect === 'sqlite') {
    // WAL + NORMAL: a commit is a write to the log, not an fsync; readers never block the writer.
    await db.exec('PRAGMA journal_mode = WAL')
    await db.exec('PRAGMA synchronous = NORMAL')
    await db.exec('PRAGMA busy_timeout = 5000')
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
    PRIMARY KEY (room, id)
  )`)
  await db.exec('CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_cid ON chat_messages (room, sender, cid) WHERE cid IS NOT NULL')
  // Tables made before nuxt-chat 0.2 have no `guest` column. Looked up first: ALTER TABLE locks the table.
  const hasGuest = db.dialect === 'sqlite'
    ? await db.prepare(`SELECT name FROM pragma_table_info('chat_messages') WHERE name = 'guest'`).get()
    : await db.prepare(`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'chat_messages' AND column_name = 'guest'`).get()
  if (!hasGuest) {
    await db.exec('ALTER TABLE chat_messages ADD COLUMN guest SMALLINT NOT NULL DEFAULT 0').catch((error) => {
      // Another instance added it meanwhile.
      if (!/duplicate column|already exists/i.test(String((error as Error)?.message))) throw error
    })
  }
}

function isUniqueViolation(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown, message?: unknown }
  return code === '23505' || (typeof message === 'string' && /UNIQUE constraint failed|duplicate key/i.test(message))
}

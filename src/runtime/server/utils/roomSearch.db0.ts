/**
 * Search in the room log's own database (docs/PROTOCOL.md, "Search"): SQLite's FTS5 or
 * PostgreSQL's full-text search, kept in step with every append, edit, delete and prune by the
 * database itself (triggers, an index on an expression), so no code path can forget it.
 */
import type { Database } from 'db0'
import { fts5Match } from '../../shared/search'
import { decodeSearchCursor, encodeSearchCursor, SEARCH_INDEXED_TEXT, type SearchQuery } from './roomLog'

/** SQLite: an external-content FTS5 table over the live messages' text (the text is not stored twice). */
const FTS_TABLE = 'chat_messages_fts'
/** The rowid up to which messages are indexed: appends never wait for the index, which catches up behind them. */
const INDEXED_TO = 'SELECT indexed_to FROM chat_search_state WHERE id = 1'
const LIVE = (row: string) => `${row}.kind IS NULL AND ${row}.deleted = 0`
const SQLITE_SEARCH_SCHEMA = [
  `CREATE VIRTUAL TABLE ${FTS_TABLE} USING fts5(body, content='chat_messages', content_rowid='rowid')`,
  'CREATE TABLE IF NOT EXISTS chat_search_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_to INTEGER NOT NULL)',
  // 0: every message stored before the index (an upgrade) is indexed by the catch-up, a chunk at a time.
  'INSERT OR REPLACE INTO chat_search_state (id, indexed_to) VALUES (1, 0)',
  // An edit (new text) or a delete (text gone) of an indexed row: out with the old text, in with the new if it is still a live message.
  `CREATE TRIGGER IF NOT EXISTS chat_messages_fts_update AFTER UPDATE OF body, deleted, kind ON chat_messages WHEN old.rowid <= (${INDEXED_TO}) BEGIN
    INSERT INTO ${FTS_TABLE} (${FTS_TABLE}, rowid, body) SELECT 'delete', old.rowid, old.body WHERE ${LIVE('old')};
    INSERT INTO ${FTS_TABLE} (rowid, body) SELECT new.rowid, new.body WHERE ${LIVE('new')};
  END`,
  // A row deleted (retention): out of the index if it was in. If it was the newest row, SQLite may give its rowid to the next
  // message: the mark comes down to the newest row left, so that message is indexed too.
  `CREATE TRIGGER IF NOT EXISTS chat_messages_fts_delete AFTER DELETE ON chat_messages BEGIN
    INSERT INTO ${FTS_TABLE} (${FTS_TABLE}, rowid, body) SELECT 'delete', old.rowid, old.body WHERE ${LIVE('old')} AND old.rowid <= (${INDEXED_TO});
    UPDATE chat_search_state SET indexed_to = (SELECT COALESCE(MAX(rowid), 0) FROM chat_messages) WHERE id = 1 AND indexed_to > (SELECT COALESCE(MAX(rowid), 0) FROM chat_messages);
  END`,
]

/** Messages indexed at most per catch-up step (one write transaction of a few ms). */
export const SEARCH_CATCH_UP_ROWS = 2000

/**
 * One catch-up step of the SQLite index, as statements run in order inside one write
 * transaction (by the store's indexer every 100 ms and before a search, on the store's own handle):
 * `from` the mark, `to` the rowid `SEARCH_CATCH_UP_ROWS` rows further (null: nothing new),
 * `index` the live messages in between, `mark` the new mark.
 */
const SQLITE_CATCH_UP = {
  from: INDEXED_TO,
  to: `SELECT MAX(rowid) AS upto FROM (SELECT rowid FROM chat_messages WHERE rowid > ? ORDER BY rowid LIMIT ${SEARCH_CATCH_UP_ROWS})`,
  index: `INSERT INTO ${FTS_TABLE} (rowid, body) SELECT rowid, body FROM chat_messages WHERE rowid > ? AND rowid <= ? AND kind IS NULL AND deleted = 0`,
  mark: 'UPDATE chat_search_state SET indexed_to = ? WHERE id = 1',
}

/** node:sqlite's synchronous handle, as far as a catch-up needs it. */
interface SyncDatabase {
  exec: (sql: string) => void
  prepare: (sql: string) => { get: (...params: unknown[]) => unknown, run: (...params: unknown[]) => unknown }
}

/**
 * Index the messages stored since the mark, a step at a time, synchronously (nothing else runs on
 * the connection meanwhile); stops after `maxSteps`. Returns whether it caught up. Throws what
 * SQLite throws (a lock held by another connection: SQLITE_BUSY).
 */
export function catchUpSqliteIndex(db: SyncDatabase, maxSteps = Number.POSITIVE_INFINITY): boolean {
  for (let step = 0; step < maxSteps; step++) {
    db.exec('BEGIN IMMEDIATE')
    try {
      const from = (db.prepare(SQLITE_CATCH_UP.from).get() as { indexed_to: number } | undefined)?.indexed_to
      const to = from === undefined ? null : (db.prepare(SQLITE_CATCH_UP.to).get(from) as { upto: number | null }).upto
      if (to === null || to === undefined) {
        db.exec('COMMIT')
        return true
      }
      db.prepare(SQLITE_CATCH_UP.index).run(from, to)
      db.prepare(SQLITE_CATCH_UP.mark).run(to)
      db.exec('COMMIT')
    }
    catch (error) {
      try {
        db.exec('ROLLBACK')
      }
      catch {
        // Nothing open.
      }
      throw error
    }
  }
  return false
}

/** PostgreSQL: the words of a message's text with the `simple` configuration (no stemming, no stop words: any language), kept in a stored generated column. */
const PG_VECTOR = `to_tsvector('simple', left(body, ${SEARCH_INDEXED_TEXT}))`

/**
 * Create the search index unless it is there, indexing the messages already stored (an upgrade).
 * SQLite: inside one write transaction, so two processes opening one file index once.
 * PostgreSQL: a stored generated column of each message's words (adding it rewrites the table once;
 * writes wait meanwhile), a GIN index on it and an index by time for newest-first walks.
 */
export async function createSearchIndex(db: Database): Promise<void> {
  if (db.dialect === 'postgresql') {
    // Looked up first: ALTER TABLE locks the table (and this one rewrites it, once).
    const exists = await db.prepare(`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'chat_messages' AND column_name = 'body_words'`).get()
    if (!exists) await db.exec(`ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS body_words tsvector GENERATED ALWAYS AS (${PG_VECTOR}) STORED`)
    await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_words ON chat_messages USING GIN (body_words) WHERE kind IS NULL AND deleted = 0')
    // Newest first without reading every hit: for a common word the planner walks this backwards, checking each message's stored words.
    await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_recent ON chat_messages (ts) WHERE kind IS NULL AND deleted = 0')
    return
  }
  if (db.dialect !== 'sqlite') return
  const exists = () => db.prepare(`SELECT 1 AS found FROM sqlite_master WHERE name = '${FTS_TABLE}'`).get()
  if (await exists()) return
  await db.exec('BEGIN IMMEDIATE')
  try {
    if (!await exists()) {
      for (const statement of SQLITE_SEARCH_SCHEMA) await db.exec(statement)
    }
    await db.exec('COMMIT')
  }
  catch (error) {
    await db.exec('ROLLBACK').catch(() => {})
    // A SQLite built without FTS5: the chat works, searches answer `unavailable` (they find no table).
    if (/no such module: fts5/i.test(String((error as Error)?.message))) return
    throw error
  }
}

/**
 * Matches of the words one search page reads at most, newest first (SQLite: a few ms on the event loop; PostgreSQL: tens
 * of ms on the store's one connection): a common word in rooms the searcher may not read, or under a filter nothing
 * passes, no longer walks every message.
 */
export const SEARCH_SCAN_HITS = 10_000

/** One page's statement for a search, and the cursor of a page that ends at `row`. */
export interface SearchStatement {
  sql: string
  params: unknown[]
  cursorOf: (row: { hit?: number | string | null, ts?: number | string, room?: string, id?: number | string }) => string
  /** How many matches the page read and the position of the oldest (a row `cursorOf` takes), asked when the page is not full. */
  scan: { sql: string, params: unknown[] }
}

/**
 * The statement of one search page (`limit + 1` rows: one more tells there is a next page). The
 * user's words are bound parameters: for FTS5 each a quoted string (`fts5Match`), for PostgreSQL
 * `plainto_tsquery` (which reads no operators), so no text of theirs is ever SQL or query syntax.
 */
export function searchStatement(dialect: string, columns: string, query: SearchQuery): SearchStatement {
  const filters: string[] = []
  const params: unknown[] = []
  if (query.author !== undefined) {
    filters.push('m.sender = ?')
    params.push(query.author)
  }
  if (query.before !== undefined) {
    filters.push('m.ts < ?')
    params.push(query.before)
  }
  if (query.after !== undefined) {
    filters.push('m.ts >= ?')
    params.push(query.after)
  }
  const selected = columns.split(', ').map(column => `m.${column}`).join(', ')
  if (dialect === 'postgresql') {
    // Newest first by (ts, room, id): PostgreSQL has no row order of its own to page by.
    const from = query.cursor === undefined ? [] : decodeSearchCursor(query.cursor, 'nsn')
    // The page's next SEARCH_SCAN_HITS matches, newest first, their keys alone (the filters below read them, not the table).
    const scanned = `SELECT m.ts, m.room, m.id, m.sender FROM chat_messages m
      WHERE m.body_words @@ plainto_tsquery('simple', CAST(? AS TEXT)) AND m.kind IS NULL AND m.deleted = 0${from.length ? ' AND (m.ts, m.room, m.id) < (CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT))' : ''}
      ORDER BY m.ts DESC, m.room DESC, m.id DESC LIMIT ${SEARCH_SCAN_HITS}`
    const scanParams = [query.text, ...from]
    return {
      // No filter reaches inside the scan's LIMIT, so it stays bounded whatever the plan; a walk by time stops once the page is full.
      sql: `WITH scanned AS (${scanned}),
        page AS (SELECT m.room, m.id, m.ts FROM scanned m WHERE m.room = ANY(CAST(? AS TEXT[]))${filters.map(filter => ` AND ${filter}`).join('')}
          ORDER BY m.ts DESC, m.room DESC, m.id DESC LIMIT ?)
        SELECT m.room, ${selected} FROM page JOIN chat_messages m ON m.room = page.room AND m.id = page.id
        ORDER BY page.ts DESC, page.room DESC, page.id DESC`,
      params: [...scanParams, query.rooms, ...params, query.limit + 1],
      cursorOf: row => encodeSearchCursor([Number(row.ts), String(row.room), Number(row.id)]),
      scan: { sql: `SELECT COUNT(*) OVER () AS scanned, s.ts, s.room, s.id FROM (${scanned}) s ORDER BY s.ts, s.room, s.id LIMIT 1`, params: scanParams },
    }
  }
  // SQLite: newest stored first, the index's own order (rowid), which it walks backwards without sorting; at most SEARCH_SCAN_HITS matches a page.
  const from = query.cursor === undefined ? [] : decodeSearchCursor(query.cursor, 'n')
  if (from.length) {
    filters.push(`${FTS_TABLE}.rowid < ?`)
    params.push(from[0])
  }
  // The page's next SEARCH_SCAN_HITS matches, newest first (the index's rowids alone: no row is read for them).
  const scanned = `SELECT rowid AS hit FROM ${FTS_TABLE} WHERE ${FTS_TABLE} MATCH ?${from.length ? ' AND rowid < ?' : ''} ORDER BY rowid DESC LIMIT ${SEARCH_SCAN_HITS}`
  const scanParams = [fts5Match(query.words), ...from]
  // Walked down to the oldest of them, no further (a subquery SQLite runs once).
  filters.push(`${FTS_TABLE}.rowid >= (SELECT MIN(hit) FROM (${scanned}))`)
  params.push(...scanParams)
  return {
    sql: `SELECT ${FTS_TABLE}.rowid AS hit, m.room, ${selected} FROM ${FTS_TABLE} JOIN chat_messages m ON m.rowid = ${FTS_TABLE}.rowid
      WHERE ${FTS_TABLE} MATCH ? AND m.kind IS NULL AND m.deleted = 0
      AND m.room IN (${query.rooms.map(() => '?').join(', ')})${filters.map(filter => ` AND ${filter}`).join('')}
      ORDER BY ${FTS_TABLE}.rowid DESC LIMIT ?`,
    params: [fts5Match(query.words), ...query.rooms, ...params, query.limit + 1],
    cursorOf: row => encodeSearchCursor([Number(row.hit)]),
    scan: { sql: `SELECT COUNT(*) AS scanned, MIN(hit) AS hit FROM (${scanned})`, params: scanParams },
  }
}

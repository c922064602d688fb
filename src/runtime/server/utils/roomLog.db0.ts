import { accessSync, constants } from 'node:fs'
import type { Database } from 'db0'
import { addReactor, MAX_TIME, REPLY_EXCERPT_LENGTH, type ChatFile } from '../../shared/protocol'
import { startSqliteCheckpointer, type SqliteCheckpointer } from './sqliteCheckpoint'
import { catchUpSqliteIndex, createSearchIndex, SEARCH_SCAN_HITS, searchStatement } from './roomSearch.db0'
import { cleanRoomFields, type MemberRole, type RoomMember, type RoomRecord } from './roomMembers'
import { cleanShownText } from './names'
import { createDb0PushLog, createPushTables } from './roomLog.push'
import { changeRefusal, checkAppendInput, lastRepliers, MENTION_ALL_UID, MAX_EMOJIS_PER_MESSAGE, MAX_REACTIONS_PER_PERSON, MAX_UNREAD, READ_SCAN, replyOf, RoomLogInputError, RoomLogRefusal, sequenceOf, storedMessage, type AppendInput, type AppendResult, type ReadState, type RetentionPolicy, type RoomLog, type StoredMessage } from './roomLog'

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
  rev: number | string | null
  reply_to: number | string | null
  mentions: string | null
  mentions_all: string | null
  thread: number | string | null
  also_in_room: number | string | null
  files: string | null
  stream_owner?: string | null
  incomplete?: string | null
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
  /** node:sqlite: the search index's catch-up behind the appends (./roomSearch.db0.ts). */
  indexer?: ReturnType<typeof setInterval>
  /** node:sqlite: another process holds a lock, so calls do not wait for it inside SQLite (busy_timeout 0) until one gets it. */
  lockedOut?: boolean
  /** node:sqlite: the file could not be written when it was opened, so SQLite opened it for reading only (and keeps it so). */
  readOnly?: boolean
}

type Method = 'all' | 'get' | 'run'

const COLUMNS = 'id, sender, name, body, ts, cid, guest, kind, target, edited, deleted, rev, reply_to, mentions, mentions_all, thread, also_in_room, files, stream_owner, incomplete'
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
/**
 * The room's newest number: its newest row, or the number kept in `chat_room_counters` once
 * retention removed its rows (revision 5: an emptied room never reuses a number). Parameters: room, room.
 */
const NEWEST = `SELECT MAX(id) AS id FROM (SELECT MAX(id) AS id FROM chat_messages WHERE room = ? UNION ALL SELECT last_id AS id FROM chat_room_counters WHERE room = ?) AS ids`
/** The next number of a room, as a one-row table `n(next)`. Parameters: room, room. */
const NEXT = `(SELECT COALESCE(MAX(id), 0) + 1 AS next FROM (${NEWEST}) AS newest)`
const INSERT = `INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest, reply_to, mentions, mentions_all, thread, also_in_room, files, stream_owner, stream_beat)
  SELECT CAST(? AS TEXT), n.next, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS SMALLINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS SMALLINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT)
  FROM ${NEXT} AS n RETURNING id`
/**
 * node:sqlite, inside a batch (which holds the write lock): the id is known, so no `MAX(id)` and no
 * RETURNING per row (10-11 µs a row instead of 18-20).
 */
const INSERT_WITH_ID = 'INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest, reply_to, mentions, mentions_all, thread, also_in_room, files, stream_owner, stream_beat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
const LAST_ID = NEWEST
/** The INSERT's parameters for one message. */
const insertParams = (input: AppendInput) => [input.room, input.sender, input.user, input.message, input.ts, input.cid ?? null, input.guest ? 1 : 0, ...replyAndMentions(input), ...streamColumns(input), input.room, input.room]
/** A message's `reply_to`, `mentions` (JSON), `mentions_all`, `thread`, `also_in_room` and `files` (JSON) columns. */
const replyAndMentions = (input: AppendInput) => [input.replyTo ?? null, input.mentions?.length ? JSON.stringify(input.mentions) : null, input.mentionsAll ?? null, input.thread ?? null, input.thread !== undefined && input.alsoInRoom ? 1 : 0, input.files?.length ? JSON.stringify(input.files) : null]
/** A streaming message's `stream_owner` and `stream_beat` (its first heartbeat: `ts`), stored with it. */
const streamColumns = (input: AppendInput) => [input.streamOwner ?? null, input.streamOwner === undefined ? null : input.ts]
/** The unread-mention rows of a message: one per member named, one under `MENTION_ALL_UID` for `@room` / `@here`. */
const mentionUids = (input: AppendInput) => [...input.mentions ?? [], ...input.mentionsAll ? [MENTION_ALL_UID] : []]
const INSERT_MENTION = 'INSERT INTO chat_mentions (room, uid, id, sender) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING'
/** PostgreSQL: a message and its mention rows in one statement. Parameters: the INSERT's, then room, sender, and the uids. */
const pgMessageWithMentions = (count: number) => `WITH ins AS (${INSERT}), mentioned AS (INSERT INTO chat_mentions (room, uid, id, sender)
  SELECT CAST(? AS TEXT), u.uid, ins.id, CAST(? AS TEXT) FROM ins, (VALUES ${Array.from({ length: count }, () => '(CAST(? AS TEXT))').join(', ')}) AS u(uid) ON CONFLICT DO NOTHING) SELECT id FROM ins`
/** Keep a room's newest number before retention deletes rows (two instances may race: the higher number stays). */
const KEEP_NEWEST = `INSERT INTO chat_room_counters (room, last_id) VALUES (?, ?)
  ON CONFLICT (room) DO UPDATE SET last_id = CASE WHEN excluded.last_id > chat_room_counters.last_id THEN excluded.last_id ELSE chat_room_counters.last_id END`
/** Has `uid` reacted to the message with the emoji? Parameters: room, target, emoji, uid. */
const MY_REACTION = 'SELECT 1 FROM chat_reactions r WHERE r.room = ? AND r.target = ? AND r.emoji = ? AND r.uid = ?'

/**
 * Store a change of a live message, or nothing: the INSERT checks its target (and a reaction's
 * bounds) in the same statement that takes the change's number. The number is taken from what
 * the statement sees (`MAX(id) + 1`, guarded by the primary key), so a change that is stored
 * saw every change before it: the bounds hold across instances without a check-then-append.
 * Returns the change's `id` and `body` (a reaction: `+emoji` when added, `-emoji` when taken back).
 */
function changeInsert(input: AppendInput): { sql: string, params: unknown[] } {
  const { room, target, sender, message } = input
  const reaction = input.kind === 'reaction'
  const body = reaction ? `CASE WHEN EXISTS (${MY_REACTION}) THEN '-' ELSE '+' END || CAST(? AS TEXT)` : 'CAST(? AS TEXT)'
  const bodyParams = reaction ? [room, target, message, sender, message] : [message]
  const bounds = reaction
    ? ` AND (EXISTS (${MY_REACTION}) OR ((EXISTS (SELECT 1 FROM chat_reactions r WHERE r.room = ? AND r.target = ? AND r.emoji = ?)
        OR (SELECT COUNT(DISTINCT r.emoji) FROM chat_reactions r WHERE r.room = ? AND r.target = ?) < ${MAX_EMOJIS_PER_MESSAGE})
      AND (SELECT COUNT(*) FROM chat_reactions r WHERE r.room = ? AND r.target = ? AND r.uid = ?) < ${MAX_REACTIONS_PER_PERSON}))`
    : ''
  const boundParams = reaction ? [room, target, message, sender, room, target, message, room, target, room, target, sender] : []
  return {
    sql: `INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest, kind, target)
  SELECT CAST(? AS TEXT), n.next, CAST(? AS TEXT), CAST(? AS TEXT), ${body}, CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS SMALLINT), CAST(? AS TEXT), CAST(? AS BIGINT)
  FROM ${NEXT} AS n
  WHERE EXISTS (SELECT 1 FROM chat_messages t WHERE t.room = ? AND t.id = ? AND t.kind IS NULL AND t.deleted = 0)${bounds}
  RETURNING id, body`,
    params: [room, sender, input.user, ...bodyParams, input.ts, input.cid ?? null, input.guest ? 1 : 0, input.kind, target, room, room, room, target, ...boundParams],
  }
}

/**
 * The statements that apply a stored change to its target and make the change's number the
 * target's `rev`. `change`: its number and body, or absent inside PostgreSQL's one-statement
 * append, where they come from the INSERT (`ins`) and every statement runs only if it stored one.
 */
function applyStatements(input: AppendInput, change?: { id: number, body: string }): { sql: string, params: unknown[] }[] {
  const id = change ? 'CAST(? AS BIGINT)' : '(SELECT id FROM ins)'
  const ids = change ? [change.id] : []
  const stored = change ? '' : ' AND EXISTS (SELECT 1 FROM ins)'
  const { room, target } = input
  switch (input.kind) {
    case 'edit':
      // A stream's final text is no one's edit: `edited` stays as it was (NULL).
      return input.endsStream
        ? [{ sql: `UPDATE chat_messages SET body = CAST(? AS TEXT), rev = ${id} WHERE room = ? AND id = ?${stored}`, params: [input.message, ...ids, room, target] }]
        : [{ sql: `UPDATE chat_messages SET body = CAST(? AS TEXT), edited = ${id}, rev = ${id} WHERE room = ? AND id = ?${stored}`, params: [input.message, ...ids, ...ids, room, target] }]
    case 'delete':
      // Two index seeks (the target by its key, its edits by chat_messages_edits), never a scan of the room.
      return [
        { sql: `UPDATE chat_messages SET body = '', deleted = 1, rev = ${id} WHERE room = ? AND id = ?${stored}`, params: [...ids, room, target] },
        { sql: `UPDATE chat_messages SET body = '', deleted = 1 WHERE room = ? AND kind = 'edit' AND target = ?${stored}`, params: [room, target] },
        // A deleted message mentions no one any more: its unread mentions go.
        { sql: `DELETE FROM chat_mentions WHERE room = ? AND id = ?${stored}`, params: [room, target] },
      ]
    default: {
      const touch = { sql: `UPDATE chat_messages SET rev = ${id} WHERE room = ? AND id = ?${stored}`, params: [...ids, room, target] }
      const reaction = [room, target, input.message, input.sender]
      if (!change) {
        return [touch, { sql: `INSERT INTO chat_reactions (room, target, emoji, uid) SELECT CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT) FROM ins WHERE substr(ins.body, 1, 1) = '+' ON CONFLICT DO NOTHING`, params: reaction }, { sql: `DELETE FROM chat_reactions WHERE room = ? AND target = ? AND emoji = ? AND uid = ? AND EXISTS (SELECT 1 FROM ins WHERE substr(ins.body, 1, 1) = '-')`, params: reaction }]
      }
      return [touch, change.body[0] === '+'
        ? { sql: 'INSERT INTO chat_reactions (room, target, emoji, uid) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', params: reaction }
        : { sql: 'DELETE FROM chat_reactions WHERE room = ? AND target = ? AND emoji = ? AND uid = ?', params: reaction }]
    }
  }
}
/** PostgreSQL: a change, its checks and its effect in one statement (one db0 client serves every query, so no BEGIN of our own). */
function pgChangeAppend(input: AppendInput): { sql: string, params: unknown[] } {
  const insert = changeInsert(input)
  const effects = applyStatements(input)
  return {
    sql: `WITH ins AS (${insert.sql}), ${effects.map((effect, index) => `effect${index} AS (${effect.sql})`).join(', ')} SELECT id, body FROM ins`,
    params: [...insert.params, ...effects.flatMap(effect => effect.params)],
  }
}
/** Replies read per thread for its summary's people (their distinct senders, newest first). */
const THREAD_SENDERS_READ = 50
/** A row of the room's main timeline: no thread reply, unless also sent to the room (docs/PROTOCOL.md, "Threads"). */
const MAIN_TIMELINE = (table: string) => `(${table}.thread IS NULL OR ${table}.also_in_room = 1)`
// Messages only (revision 5): changes are not rows a count scans.
const READ_STATE = `SELECT r.id AS read_id,
  (SELECT COUNT(*) FROM (SELECT 1 AS one FROM (SELECT m.deleted, m.sender, m.thread, m.also_in_room FROM chat_messages m WHERE m.room = r.room AND m.id > r.id AND m.kind IS NULL ORDER BY m.id LIMIT ${READ_SCAN}) AS scanned WHERE scanned.deleted = 0 AND scanned.sender <> r.uid AND ${MAIN_TIMELINE('scanned')} LIMIT ${MAX_UNREAD}) AS counted) AS unread,
  (SELECT MAX(id) FROM (SELECT MAX(id) AS id FROM chat_messages WHERE room = r.room UNION ALL SELECT last_id AS id FROM chat_room_counters WHERE room = r.room) AS ids) AS up_to,
  (SELECT COUNT(*) FROM (SELECT 1 AS one FROM chat_mentions x WHERE x.room = r.room AND x.uid IN (r.uid, '${MENTION_ALL_UID}') AND x.id > r.id AND x.sender <> r.uid LIMIT ${MAX_UNREAD}) AS mentioned) AS mentions
  FROM chat_reads r WHERE r.uid = ? AND r.room = ?`
/** A room's newest live message among its newest `READ_SCAN` messages. Parameters: room, room. */
const LAST_LIVE = `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND kind IS NULL AND deleted = 0 AND ${MAIN_TIMELINE('chat_messages')}
  AND id >= COALESCE((SELECT id FROM chat_messages WHERE room = ? AND kind IS NULL ORDER BY id DESC LIMIT 1 OFFSET ${READ_SCAN - 1}), 0) ORDER BY id DESC LIMIT 1`
// Forward only, never past the room's newest id, and only an existing position: a read never creates one (joining does).
const MARK_READ = `UPDATE chat_reads SET id = target.id, ts = CAST(? AS BIGINT)
  FROM (SELECT CASE WHEN CAST(? AS BIGINT) < COALESCE(MAX(id), 0) THEN CAST(? AS BIGINT) ELSE COALESCE(MAX(id), 0) END AS id FROM chat_messages WHERE room = ?) AS target
  WHERE chat_reads.uid = ? AND chat_reads.room = ? AND target.id > chat_reads.id`
const JOIN_READ = `INSERT INTO chat_reads (uid, room, id, ts)
  SELECT CAST(? AS TEXT), CAST(? AS TEXT), COALESCE(MAX(id), 0), CAST(? AS BIGINT) FROM chat_messages WHERE room = ?
  ON CONFLICT (uid, room) DO NOTHING RETURNING id`
// The user's positions but the one just made and the newest `max - 1` others (the order of their rooms list).
// A kept membership's position (a role above `member`, a private room: invited, a direct room) neither goes nor counts
// against the cap; a plain membership of a public room (joined, spoken in) is bounded with positions. One seek each.
const KEPT_MEMBERSHIP = (reads: string) => `EXISTS (SELECT 1 FROM chat_members mb WHERE mb.room = ${reads}.room AND mb.uid = ${reads}.uid AND mb.banned = 0 AND mb.mute_only = 0
  AND (mb.role <> 'member' OR EXISTS (SELECT 1 FROM chat_rooms c WHERE c.id = mb.room AND c.visibility = 'private')))`
const EVICT_READS = `DELETE FROM chat_reads WHERE uid = ? AND room <> ? AND NOT ${KEPT_MEMBERSHIP('chat_reads')}
  AND room NOT IN (SELECT room FROM chat_reads r WHERE r.uid = ? AND r.room <> ? AND NOT ${KEPT_MEMBERSHIP('r')} ORDER BY r.ts DESC, r.room LIMIT ?) RETURNING room`
// Positions idle past retention in rooms whose newest row is too (or that have none): two index seeks per position.
const PRUNE_READS = `DELETE FROM chat_reads WHERE (uid, room) IN (SELECT r.uid, r.room FROM chat_reads r WHERE r.ts < CAST(? AS BIGINT)
  AND NOT ${KEPT_MEMBERSHIP('r')}
  AND NOT EXISTS (SELECT 1 FROM chat_messages m WHERE m.room = r.room AND m.id = (SELECT MAX(id) FROM chat_messages WHERE room = r.room) AND m.ts >= CAST(? AS BIGINT))
  LIMIT ?) RETURNING uid, room`
/**
 * A membership ends (`plain`: only a plain one, whose position went by the cap or retention; a kept
 * one was never chosen): one that holds a mute not ended at the time given becomes a mute-only row
 * (first statement), any other goes (second); a ban stays. Parameters of each: room, uid, now.
 */
const END_MEMBERSHIP = (plain: boolean) => {
  const which = `room = ? AND uid = ? AND banned = 0 AND mute_only = 0${plain ? ' AND role = \'member\'' : ''}`
  return [
    `UPDATE chat_members SET mute_only = 1, role = 'member' WHERE ${which} AND muted_until > CAST(? AS BIGINT) RETURNING uid`,
    `DELETE FROM chat_members WHERE ${which} AND (muted_until IS NULL OR muted_until <= CAST(? AS BIGINT)) RETURNING uid`,
  ] as const
}
/**
 * Up to a number of mute-only rows whose mute ended (by the partial index, which holds mute-only rows alone); the
 * conditions again on the rows deleted, so a row made a membership or muted again meanwhile stays. Parameters: now, limit, now.
 */
const ENDED_MUTE = 'mute_only = 1 AND banned = 0 AND (muted_until IS NULL OR muted_until <= CAST(? AS BIGINT))'
const PRUNE_ENDED_MUTES = `DELETE FROM chat_members WHERE (room, uid) IN (SELECT room, uid FROM chat_members WHERE ${ENDED_MUTE} LIMIT ?) AND ${ENDED_MUTE} RETURNING uid`
/** A person's memberships, most recently active first: by the `chat_members_user` index, one position seek each. */
const MEMBER_ROOMS = `SELECT m.room FROM chat_members m LEFT JOIN chat_reads r ON r.uid = m.uid AND r.room = m.room
  WHERE m.uid = ? AND m.banned = 0 AND m.mute_only = 0 ORDER BY COALESCE(r.ts, m.joined_at) DESC, m.room LIMIT ?`
/** The schema step that made memberships of read positions (done once per database). */
const MEMBERS_FROM_READS = 'members-from-reads'
/** Columns added after the first release, with their definitions: added to older tables on open. */
const ADDED_COLUMNS: [string, string][] = [
  ['guest', 'SMALLINT NOT NULL DEFAULT 0'],
  ['kind', 'TEXT'],
  ['target', 'BIGINT'],
  ['edited', 'BIGINT'],
  ['deleted', 'SMALLINT NOT NULL DEFAULT 0'],
  ['rev', 'BIGINT'],
  ['reply_to', 'BIGINT'],
  ['mentions', 'TEXT'],
  ['mentions_all', 'TEXT'],
  ['thread', 'BIGINT'],
  ['also_in_room', 'SMALLINT NOT NULL DEFAULT 0'],
  ['files', 'TEXT'],
  // Streaming messages (docs/PROTOCOL.md, "Streaming messages"): the instance writing it and its heartbeat; why it was cut.
  ['stream_owner', 'TEXT'],
  ['stream_beat', 'BIGINT'],
  ['incomplete', 'TEXT'],
]
const BY_CID = `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND sender = ? AND cid = ?`
/**
 * A replay after a cursor (revision 5): the newest messages after it and the most recently changed
 * ones at or below it. One statement, one snapshot: read apart, a change committed between the two
 * reads gave a state numbered past a new message the first read missed, so the client skipped it.
 * Parameters: room, after, limit, room, after, after, limit.
 */
const REPLAY_AFTER = `SELECT ${COLUMNS} FROM (SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND kind IS NULL AND id > ? ORDER BY id DESC LIMIT ?) AS added
  UNION ALL SELECT ${COLUMNS} FROM (SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND kind IS NULL AND rev > ? AND id <= ? ORDER BY rev DESC LIMIT ?) AS changed`

interface RoomRow {
  id: string
  title: string
  topic: string
  visibility: string
  kind: string
  created_by: string | null
  created_at: number | string
}
interface MemberRow {
  room: string
  uid: string
  role: string
  joined_at: number | string
  muted_until: number | string | null
  banned: number | string
  mute_only: number | string
}
const MEMBER_COLUMNS = 'room, uid, role, joined_at, muted_until, banned, mute_only'
const MEMBER_VALUES = (member: RoomMember) => [member.room, member.uid, member.role, member.joinedAt, member.mutedUntil ?? null, member.banned ? 1 : 0, member.muteOnly ? 1 : 0]
const INSERT_MEMBER = `INSERT INTO chat_members (${MEMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`

// Cleaned as read too: a title stored before the rule (docs/PROTOCOL.md, "Names and titles") loads without its bidi controls.
function toRecord(row: RoomRow): RoomRecord {
  return { id: row.id, ...cleanRoomFields({ title: row.title, topic: row.topic }), visibility: row.visibility === 'private' ? 'private' : 'public', kind: row.kind === 'dm' ? 'dm' : 'room', createdBy: row.created_by ?? null, createdAt: Number(row.created_at) }
}

function toMember(row: MemberRow): RoomMember {
  const member: RoomMember = { room: row.room, uid: row.uid, role: row.role as MemberRole, joinedAt: Number(row.joined_at) }
  // A mute stored before times were bounded (an endless one was 2^53 - 1) lasts, as the latest time a Date holds.
  if (row.muted_until !== null && row.muted_until !== undefined) member.mutedUntil = Math.min(Number(row.muted_until), MAX_TIME)
  if (Number(row.banned) === 1) member.banned = true
  if (Number(row.mute_only) === 1) member.muteOnly = true
  return member
}

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
    clearInterval(connection.indexer)
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
      // Opened for reading while the file could not be written: replaced once it can, or the next write would fail too.
      if (connection.readOnly && isWritableFile(connection.native!)) connection.lost = true
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
      if (isConnectionFault(connection.db.dialect, error)) drop(connection)
      throw error
    }
  }

  /** Attach who reacted with what to the messages among `messages` (one read for their id range, or for their ids when scattered). */
  const withReactions = async (room: string, messages: StoredMessage[]): Promise<StoredMessage[]> => {
    if (!messages.length) return messages
    const ids = messages.map(message => message.id)
    const low = Math.min(...ids)
    const high = Math.max(...ids)
    const rows = high - low < 4 * ids.length
      ? await query<{ target: number | string, emoji: string, uid: string }[]>('all', 'SELECT target, emoji, uid FROM chat_reactions WHERE room = ? AND target >= ? AND target <= ? ORDER BY target, emoji, uid', room, low, high)
      : await query<{ target: number | string, emoji: string, uid: string }[]>('all', `SELECT target, emoji, uid FROM chat_reactions WHERE room = ? AND target IN (${ids.map(() => '?').join(', ')}) ORDER BY target, emoji, uid`, room, ...ids)
    if (!rows.length) return messages
    const byId = new Map(messages.map(message => [message.id, message]))
    for (const { target, emoji, uid } of rows) {
      const message = byId.get(Number(target))
      if (!message || message.kind) continue
      addReactor(message, emoji, uid)
    }
    return messages
  }

  /** Fill the replies among `messages` with their originals' authors and current text (one read of the originals): an edit costs nothing more, a replay one read. */
  const withReplies = async (room: string, messages: StoredMessage[]): Promise<StoredMessage[]> => {
    const ids = [...new Set(messages.flatMap(message => message.replyTo ? [message.replyTo.id] : []))]
    if (!ids.length) return messages
    const rows = await query<{ id: number | string, name: string, sender: string, excerpt: string, deleted: number | string }[]>('all', `SELECT id, name, sender, substr(body, 1, ${REPLY_EXCERPT_LENGTH}) AS excerpt, deleted FROM chat_messages WHERE room = ? AND kind IS NULL AND id IN (${ids.map(() => '?').join(', ')})`, room, ...ids)
    const byId = new Map(rows.map(row => [Number(row.id), row]))
    for (const message of messages) {
      if (!message.replyTo) continue
      const row = byId.get(message.replyTo.id)
      message.replyTo = replyOf(message.replyTo.id, row && { user: row.name, uid: row.sender || undefined, message: row.excerpt, deleted: Number(row.deleted) === 1 ? true : undefined })
    }
    return messages
  }
  /** Give the thread parents among `messages` their summaries: one grouped read of the replies' index, then one read of the parents' latest repliers. */
  const withThreads = async (room: string, messages: StoredMessage[]): Promise<StoredMessage[]> => {
    const parents = messages.filter(message => !message.kind && !message.deleted && message.thread === undefined)
    if (!parents.length) return messages
    const ids = parents.map(message => message.id)
    const marks = ids.map(() => '?').join(', ')
    const rows = await query<{ thread: number | string, count: number | string, last_id: number | string, last_ts: number | string }[]>('all', `SELECT thread, COUNT(*) AS count, MAX(id) AS last_id, MAX(ts) AS last_ts FROM chat_messages WHERE room = ? AND thread IN (${marks}) AND kind IS NULL AND deleted = 0 GROUP BY thread`, room, ...ids)
    if (!rows.length) return messages
    // The newest replies of every parent that has some, in one statement (a window per thread, newest first).
    const answered = rows.map(row => row.thread)
    const senders = await query<{ thread: number | string, sender: string }[]>('all', `SELECT thread, sender FROM (SELECT thread, sender, id, ROW_NUMBER() OVER (PARTITION BY thread ORDER BY id DESC) AS n FROM chat_messages WHERE room = ? AND thread IN (${answered.map(() => '?').join(', ')}) AND kind IS NULL AND deleted = 0) AS latest WHERE n <= ${THREAD_SENDERS_READ} ORDER BY thread, id DESC`, room, ...answered)
    const byId = new Map(parents.map(message => [message.id, message]))
    for (const row of rows) {
      const thread = Number(row.thread)
      const users = lastRepliers(senders.filter(sender => Number(sender.thread) === thread).map(({ sender }) => sender))
      byId.get(thread)!.replies = { count: Number(row.count), lastId: Number(row.last_id), lastTs: Number(row.last_ts), users }
    }
    return messages
  }
  /** Reactions, replies and thread summaries: the state a served message frame shows. */
  const served = async (room: string, messages: StoredMessage[]) => withThreads(room, await withReplies(room, await withReactions(room, messages)))

  const lastId = async (room: string) => {
    const row = await query<{ id: number | string | null } | undefined>('get', LAST_ID, room, room)
    return Number(row?.id ?? 0)
  }

  /** One stored message (not a change) with its reactions. */
  const messageById = async (room: string, id: number) => {
    const row = await query<MessageRow | undefined>('get', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id = ? AND kind IS NULL`, room, id)
    return row ? (await served(room, [toMessage(room, row)]))[0] : undefined
  }

  /** Insert a message, or a change with its checks and its effect (one statement on PostgreSQL; elsewhere one after the other); `undefined`: the change was refused. */
  const insert = async (input: AppendInput): Promise<{ id: number, body: string } | undefined> => {
    if (!input.kind) {
      const uids = mentionUids(input)
      if (uids.length && (await connect()).db.dialect === 'postgresql') {
        return { id: Number((await query<{ id: number | string }[]>('all', pgMessageWithMentions(uids.length), ...insertParams(input), input.room, input.sender, ...uids))[0]!.id), body: input.message }
      }
      const id = Number((await query<{ id: number | string }[]>('all', INSERT, ...insertParams(input)))[0]!.id)
      for (const uid of uids) await query('run', INSERT_MENTION, input.room, uid, id, input.sender)
      return { id, body: input.message }
    }
    const { sql, params } = (await connect()).db.dialect === 'postgresql' ? pgChangeAppend(input) : changeInsert(input)
    const row = (await query<{ id: number | string, body: string }[]>('all', sql, ...params))[0]
    if (!row) return undefined
    const change = { id: Number(row.id), body: row.body }
    if ((await connect()).db.dialect !== 'postgresql') {
      for (const effect of applyStatements(input, change)) await query('run', effect.sql, ...effect.params)
    }
    return change
  }

  const appendNow = async (input: AppendInput): Promise<AppendResult> => {
    const cid = input.cid ?? null
    for (let attempt = 1; ; attempt++) {
      try {
        const stored = await insert(input)
        if (stored) return { message: storedMessage(stored.id, input, stored.body), duplicate: false }
        // Refused by the store's own check: say why (or, if the target changed meanwhile, try again).
        const duplicate = cid === null ? undefined : await query<MessageRow | undefined>('get', BY_CID, input.room, input.sender, cid)
        if (duplicate) return { message: toMessage(input.room, duplicate), duplicate: true }
        const refusal = changeRefusal(await messageById(input.room, input.target!), input)
        if (refusal || attempt >= MAX_APPEND_ATTEMPTS) throw refusal ?? new RoomLogRefusal('not_found', `No message ${input.target} in this room`)
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
  /** A plain membership whose position went (cap, retention) goes with it; its mute stays until it ends. */
  const endPlainMembership = async (room: string, uid: string) => {
    const now = Date.now()
    for (const statement of END_MEMBERSHIP(true)) await query('run', statement, room, uid, now)
  }
  const appendBatched = appendInBatches(connect, drop)

  return {
    ...createDb0PushLog(query),
    async roomRecord(room) {
      const row = await query<RoomRow | undefined>('get', 'SELECT id, title, topic, visibility, kind, created_by, created_at FROM chat_rooms WHERE id = ?', room)
      return row ? toRecord(row) : undefined
    },
    async createRoom(record) {
      const rows = await query<unknown[]>('all', 'INSERT INTO chat_rooms (id, title, topic, visibility, kind, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id', record.id, record.title, record.topic, record.visibility, record.kind, record.createdBy, record.createdAt)
      return rows.length > 0
    },
    async updateRoom(room, fields) {
      // Absent fields keep their value (COALESCE with NULL), so one statement serves every update.
      const rows = await query<unknown[]>('all', 'UPDATE chat_rooms SET title = COALESCE(CAST(? AS TEXT), title), topic = COALESCE(CAST(? AS TEXT), topic), visibility = COALESCE(CAST(? AS TEXT), visibility) WHERE id = ? RETURNING id', fields.title ?? null, fields.topic ?? null, fields.visibility ?? null, room)
      return rows.length > 0
    },
    async member(room, uid) {
      const row = await query<MemberRow | undefined>('get', `SELECT ${MEMBER_COLUMNS} FROM chat_members WHERE room = ? AND uid = ?`, room, uid)
      return row ? toMember(row) : undefined
    },
    async members(room, after, limit) {
      const rows = await query<MemberRow[]>('all', `SELECT ${MEMBER_COLUMNS} FROM chat_members WHERE room = ? AND uid > ? ORDER BY uid LIMIT ?`, room, after ?? '', limit)
      return rows.map(toMember)
    },
    async saveMember(member) {
      await query('run', `${INSERT_MEMBER} ON CONFLICT (room, uid) DO UPDATE SET role = excluded.role, joined_at = excluded.joined_at, muted_until = excluded.muted_until, banned = excluded.banned, mute_only = excluded.mute_only`, ...MEMBER_VALUES(member))
    },
    async addMemberIfAbsent(member) {
      // A mute-only row becomes the membership, its mute kept (one conditional statement: a membership or a ban that is there stays as it is).
      return (await query<unknown[]>('all', `${INSERT_MEMBER} ON CONFLICT (room, uid) DO UPDATE SET role = excluded.role, joined_at = excluded.joined_at, mute_only = 0 WHERE chat_members.mute_only = 1 RETURNING uid`, ...MEMBER_VALUES(member))).length > 0
    },
    async deleteMember(room, uid) {
      return (await query<unknown[]>('all', 'DELETE FROM chat_members WHERE room = ? AND uid = ? RETURNING uid', room, uid)).length > 0
    },
    async endMembership(room, uid, now) {
      let ended = false
      for (const statement of END_MEMBERSHIP(false)) ended = (await query<unknown[]>('all', statement, room, uid, now)).length > 0 || ended
      return ended
    },
    async pruneEndedMutes(now, limit) {
      return (await query<unknown[]>('all', PRUNE_ENDED_MUTES, now, limit, now)).length
    },
    async saveUserName(uid, name, seenAt) {
      await query('run', 'INSERT INTO chat_users (uid, name, seen_at) VALUES (?, ?, ?) ON CONFLICT (uid) DO UPDATE SET name = excluded.name, seen_at = excluded.seen_at', uid, name, seenAt)
    },
    async userNames(uids) {
      if (!uids.length) return new Map()
      const rows = await query<{ uid: string, name: string }[]>('all', `SELECT uid, name FROM chat_users WHERE uid IN (${uids.map(() => '?').join(', ')})`, ...uids)
      return new Map(rows.map(row => [row.uid, row.name]))
    },
    async memberNames(room, limit) {
      return query<{ uid: string, name: string }[]>('all', 'SELECT m.uid, COALESCE(u.name, \'\') AS name FROM chat_members m LEFT JOIN chat_users u ON u.uid = m.uid WHERE m.room = ? AND m.banned = 0 AND m.mute_only = 0 LIMIT ?', room, limit)
    },
    async append(input) {
      checkAppendInput(input)
      // On node:sqlite the commit is most of an append's cost: appends of one event-loop turn share one.
      const result = await ((await connect()).native ? appendBatched(input) : appendInOrder(input))
      // Read after the reply is stored: an edit of the original stored before it shows; one after it is numbered after it.
      if (result.message.replyTo) await withReplies(input.room, [result.message])
      return result
    },
    async replaySince(room, after, limit) {
      if (after === undefined) {
        const rows = await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND kind IS NULL ORDER BY id DESC LIMIT ?`, room, limit)
        return (await served(room, rows.reverse().map(row => toMessage(room, row)))).sort((a, b) => sequenceOf(a) - sequenceOf(b))
      }
      // The new messages and those the client holds that changed after its cursor (once each, as they are now), in one statement: one snapshot, so no state is newer than a message it would skip.
      const rows = await query<MessageRow[]>('all', REPLAY_AFTER, room, after, limit, room, after, after, limit)
      return served(room, rows.map(row => toMessage(room, row)).sort((a, b) => sequenceOf(a) - sequenceOf(b)))
    },
    async before(room, before, limit, thread) {
      const rows = thread === undefined
        ? await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND kind IS NULL AND id < ? AND ${MAIN_TIMELINE('chat_messages')} ORDER BY id DESC LIMIT ?`, room, before, limit)
        : await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND thread = ? AND kind IS NULL AND id < ? ORDER BY id DESC LIMIT ?`, room, thread, before, limit)
      return served(room, rows.reverse().map(row => toMessage(room, row)))
    },
    async between(room, after, before) {
      const rows = await query<MessageRow[]>('all', `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id > ? AND id < ? ORDER BY id`, room, after, before)
      return served(room, rows.map(row => toMessage(room, row)))
    },
    async byCid(room, sender, cid) {
      const row = await query<MessageRow | undefined>('get', BY_CID, room, sender, cid)
      return row ? (await withReplies(room, [toMessage(room, row)]))[0] : undefined
    },
    message: messageById,
    lastId,
    async streamCheckpoint(room, id, owner, text, beat) {
      const rows = await query<unknown[]>('all', 'UPDATE chat_messages SET body = ?, stream_beat = ? WHERE room = ? AND id = ? AND stream_owner = ? AND deleted = 0 RETURNING id', text, beat, room, id, owner)
      return rows.length > 0
    },
    async streamEnd(room, id, owner, incomplete) {
      // Conditional on the owner: of a stream's end and a sweep of it, one closes it.
      const rows = await query<unknown[]>('all', 'UPDATE chat_messages SET stream_owner = NULL, stream_beat = NULL, incomplete = ? WHERE room = ? AND id = ? AND stream_owner = ? RETURNING id', incomplete ?? null, room, id, owner)
      return rows.length > 0
    },
    async staleStreams(beat, limit) {
      const rows = await query<{ room: string, id: number | string, stream_owner: string, name: string, sender: string, body: string }[]>('all', 'SELECT room, id, stream_owner, name, sender, body FROM chat_messages WHERE stream_owner IS NOT NULL AND stream_beat < ? ORDER BY stream_beat LIMIT ?', beat, limit)
      return rows.map(row => ({ room: row.room, id: Number(row.id), owner: row.stream_owner, user: row.name, uid: row.sender, message: row.body }))
    },
    async prune(room, policy: RetentionPolicy, limit = 1000) {
      if (!(policy.max > 0) && !(policy.maxAge > 0)) return 0
      // Messages are counted and aged (revision 5); the oldest first, a prefix of them.
      const keepFrom = policy.max > 0 ? Number((await query<{ id: number | string } | undefined>('get', 'SELECT id FROM chat_messages WHERE room = ? AND kind IS NULL ORDER BY id DESC LIMIT 1 OFFSET ?', room, policy.max - 1))?.id ?? 0) : 0
      const oldest = await query<{ id: number | string, ts: number | string }[]>('all', 'SELECT id, ts FROM chat_messages WHERE room = ? AND kind IS NULL ORDER BY id LIMIT ?', room, limit)
      const byAge = policy.maxAge > 0 ? Date.now() - policy.maxAge : -Infinity
      let upTo = 0
      let count = 0
      for (const row of oldest) {
        if (Number(row.id) >= keepFrom && !(Number(row.ts) < byAge)) break
        upTo = Number(row.id)
        count++
      }
      // Changes: none older than the oldest message kept (all of them when none is), at most `max` of them.
      const firstKept = count < oldest.length
        ? Number(oldest[count]!.id)
        : Number((await query<{ id: number | string } | undefined>('get', 'SELECT id FROM chat_messages WHERE room = ? AND kind IS NULL AND id > ? ORDER BY id LIMIT 1', room, upTo))?.id ?? Number.MAX_SAFE_INTEGER)
      const beyondMax = policy.max > 0 ? Number((await query<{ id: number | string } | undefined>('get', 'SELECT id FROM chat_messages WHERE room = ? AND kind IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?', room, policy.max))?.id ?? 0) : 0
      const changesUpTo = Math.max(beyondMax, firstKept - 1)
      // The room's newest number stays when its newest rows may go (no message left after this step), so its next message never takes an old one.
      if (count || firstKept === Number.MAX_SAFE_INTEGER) await query('run', KEEP_NEWEST, room, await lastId(room))
      if (count) {
        await query('run', 'DELETE FROM chat_messages WHERE room = ? AND id <= ?', room, upTo)
        await query('run', 'DELETE FROM chat_reactions WHERE room = ? AND target <= ?', room, upTo)
        await query('run', 'DELETE FROM chat_mentions WHERE room = ? AND id <= ?', room, upTo)
      }
      // A step of at most `limit` changes too: a pass never holds the database for long.
      const changes = changesUpTo > upTo ? (await query<unknown[]>('all', 'DELETE FROM chat_messages WHERE room = ? AND kind IS NOT NULL AND id IN (SELECT id FROM chat_messages WHERE room = ? AND kind IS NOT NULL AND id <= ? ORDER BY id LIMIT ?) RETURNING id', room, room, changesUpTo, limit)).length : 0
      return count + changes
    },
    async markRead(room, uid, id = Number.MAX_SAFE_INTEGER) {
      await query('run', MARK_READ, Date.now(), id, id, room, uid, room)
      const row = await query<{ id: number | string } | undefined>('get', 'SELECT id FROM chat_reads WHERE uid = ? AND room = ?', uid, room)
      return row ? Number(row.id) : undefined
    },
    async forgetRead(room, uid) {
      return (await query<unknown[]>('all', 'DELETE FROM chat_reads WHERE uid = ? AND room = ? RETURNING uid', uid, room)).length > 0
    },
    async joinRead(room, uid, max = 0, movedAt = Date.now()) {
      const created = (await query<unknown[]>('all', JOIN_READ, uid, room, movedAt, room)).length > 0
      if (!created || !(max > 0)) return { created, evicted: [] }
      const evicted = (await query<{ room: string }[]>('all', EVICT_READS, uid, room, uid, room, max - 1)).map(row => row.room)
      for (const gone of evicted) await endPlainMembership(gone, uid)
      return { created, evicted }
    },
    async pruneReads(maxAge, limit) {
      const before = Date.now() - maxAge
      const pruned = (await query<{ uid: string, room: string }[]>('all', PRUNE_READS, before, before, limit)).map(({ uid, room }) => ({ uid, room }))
      for (const { uid, room } of pruned) await endPlainMembership(room, uid)
      return pruned
    },
    async readState(room, uid, withLast) {
      const row = await query<{ read_id: number | string, unread: number | string, up_to: number | string | null, mentions: number | string } | undefined>('get', READ_STATE, uid, room)
      if (!row) return undefined
      const state: ReadState = { room, read: Number(row.read_id), unread: Number(row.unread), mentions: Number(row.mentions), upTo: Number(row.up_to ?? 0) }
      const last = withLast ? await query<MessageRow | undefined>('get', LAST_LIVE, room, room) : undefined
      if (last) state.last = (await withReplies(room, [toMessage(room, last)]))[0]
      return state
    },
    async memberReads(room, limit) {
      // From the members (primary key room, uid) to each one's position (primary key uid, room): two index seeks per member.
      const rows = await query<{ uid: string, id: number | string | null }[]>('all', 'SELECT m.uid, r.id FROM chat_members m LEFT JOIN chat_reads r ON r.uid = m.uid AND r.room = m.room WHERE m.room = ? AND m.banned = 0 AND m.mute_only = 0 LIMIT ?', room, limit + 1)
      if (!rows.length || rows.length > limit) return undefined
      return new Map(rows.map(row => [row.uid, Number(row.id ?? 0)]))
    },
    async readRooms(uid, limit) {
      return (await query<{ room: string }[]>('all', 'SELECT room FROM chat_reads WHERE uid = ? ORDER BY ts DESC, room LIMIT ?', uid, limit)).map(row => row.room)
    },
    async memberRooms(uid, limit) {
      return (await query<{ room: string }[]>('all', MEMBER_ROOMS, uid, limit)).map(row => row.room)
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
    async search(search) {
      if (!search.rooms.length) return { messages: [] }
      const connection = await connect()
      if (connection.db.dialect === 'sqlite') await catchUpBeforeSearch(connection)
      const { sql, params, cursorOf, scan } = searchStatement(connection.db.dialect, COLUMNS, search)
      const rows = await query<(MessageRow & { room: string, hit?: number | string })[]>('all', sql, ...params)
      const page = rows.slice(0, search.limit)
      const messages = page.map(row => toMessage(row.room, row))
      if (rows.length > search.limit) return { messages, cursor: cursorOf(page.at(-1)!) }
      // Not full: the page stopped at its bound, and the next one goes on from there.
      const bound = await query<{ scanned: number | string, hit?: number | string | null, ts?: number | string, room?: string, id?: number | string } | undefined>('get', scan.sql, ...scan.params)
      return bound && Number(bound.scanned) >= SEARCH_SCAN_HITS ? { messages, cursor: cursorOf(bound) } : { messages }
    },
    async close() {
      closed = true
      const connection = await connecting?.catch(() => undefined)
      connection?.checkpointer?.stop()
      if (connection) clearInterval(connection.indexer)
      if (connection && !connection.disposed) {
        connection.disposed = connection.lost = true
        await connection.db.dispose()
      }
    },
  }
}

/** How often the SQLite search index catches up with the appends (one step of `SEARCH_CATCH_UP_ROWS` at most). */
const SQLITE_INDEX_INTERVAL = 100

/**
 * Index new messages for search behind the appends, on the store's own handle between its
 * batches: a message costs its index entry once per step of many (FTS5's cost is per commit,
 * so indexing in each append's transaction cost 2-3x the append).
 */
function startSqliteIndexer(connection: Connection) {
  const timer = setInterval(() => {
    if (connection.lost || !connection.native) return
    try {
      catchUpSqliteIndex(connection.native, 1)
    }
    catch {
      // Busy (another process writes) or no index (no FTS5): the next tick, or the next search, tries again.
    }
  }, SQLITE_INDEX_INTERVAL)
  timer.unref?.()
  return timer
}

/** Steps of the SQLite index's catch-up a search runs first (up to 10,000 messages, tens of ms at most; the indexer's ticks do the rest). */
const SEARCH_CATCH_UP_STEPS = 5

/**
 * SQLite: index what was stored since the index's mark before searching, so a search finds every
 * message stored before it. Synchronous on the store's own handle (node:sqlite, or a synchronous
 * driver's); a lock another process holds is not waited for (its appends are found once it lets go).
 */
async function catchUpBeforeSearch(connection: Connection) {
  const handle = connection.native ?? await connection.db.getInstance() as Partial<NativeDatabase>
  if (typeof handle.exec !== 'function' || typeof handle.prepare !== 'function') return
  try {
    catchUpSqliteIndex(handle as NativeDatabase, SEARCH_CATCH_UP_STEPS)
  }
  catch (error) {
    if (!isBusy(error)) throw error
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
  if (row.rev !== null && row.rev !== undefined && !message.kind) message.rev = Number(row.rev)
  // The excerpt is read from the original when served (`withReplies`), so it is always its current text.
  if (row.reply_to !== null && row.reply_to !== undefined) message.replyTo = { id: Number(row.reply_to), user: '', excerpt: '', deleted: true }
  if (row.mentions) message.mentions = JSON.parse(row.mentions) as string[]
  if (row.mentions_all === 'room' || row.mentions_all === 'here') message.mentionsAll = row.mentions_all
  if (row.thread !== null && row.thread !== undefined) message.thread = Number(row.thread)
  if (message.thread !== undefined && Number(row.also_in_room) === 1) message.alsoInRoom = true
  // A deleted message's files are gone with it (docs/PROTOCOL.md, "Attachments").
  // Names cleaned as read: one stored before the rule (docs/PROTOCOL.md, "Names and titles") loads without its bidi controls.
  if (row.files && Number(row.deleted) !== 1) message.files = (JSON.parse(row.files) as ChatFile[]).map(file => ({ ...file, name: cleanShownText(file.name).trim() }))
  if (row.stream_owner) message.streaming = true
  if (row.incomplete) message.incomplete = row.incomplete as StoredMessage['incomplete']
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
    if (connection.native) {
      connection.readOnly = !isWritableFile(connection.native)
      connection.checkpointer = startSqliteCheckpointer(connection.native)
      connection.indexer = startSqliteIndexer(connection)
    }
    return connection
  }
  catch (error) {
    void Promise.resolve().then(() => db.dispose()).catch(() => {})
    throw error
  }
}

/**
 * Can this process write the database file? SQLite opens a file it cannot write (read-only, immutable, a read-only
 * mount) for reading only and stays that way; reads go on meanwhile. An in-memory database has no file: writable.
 */
export function isWritableFile(native: { location?: () => string | null }): boolean {
  try {
    const file = typeof native.location === 'function' ? native.location() : null
    if (file) accessSync(file, constants.W_OK)
    return true
  }
  catch {
    // Not writable (or a closed handle, which has no file to tell of).
    return false
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
        if (isConnectionFault(connection.db.dialect, error)) drop(connection)
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
      if (isConnectionFault(connection.db.dialect, error)) drop(connection)
      for (const job of jobs) job.reject(error)
      return
    }
    results.forEach((result, index) => 'value' in result ? jobs[index]!.resolve(result.value) : jobs[index]!.reject(result.error))
    // A statement that failed on the file (read-only, I/O error) asks for a fresh connection next time.
    if (results.some(result => 'error' in result && isConnectionFault(connection.db.dialect, result.error))) drop(connection)
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
      // A change already stored under this cid is answered as it was (its target may be gone since).
      const stored = cid === null ? undefined : nativeStatement(connection, BY_CID).get(input.room, input.sender, cid) as MessageRow | undefined
      if (stored) return { message: toMessage(input.room, stored), duplicate: true }
      const change = appendChangeSync(connection, input)
      nextIds.set(input.room, change.id + 1)
      return { message: storedMessage(change.id, input, change.body), duplicate: false }
    }
    const id = nextIds.get(input.room) ?? Number((nativeStatement(connection, LAST_ID).get(input.room, input.room) as { id: number | string | null }).id ?? 0) + 1
    nativeStatement(connection, INSERT_WITH_ID).run(input.room, id, input.sender, input.user, input.message, input.ts, cid, input.guest ? 1 : 0, ...replyAndMentions(input), ...streamColumns(input))
    for (const uid of mentionUids(input)) nativeStatement(connection, INSERT_MENTION).run(input.room, uid, id, input.sender)
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

/** A change and its effect on its target, all or nothing: a savepoint inside the batch's transaction (which holds the write lock, so its checks hold). */
function appendChangeSync(connection: Connection, input: AppendInput): { id: number, body: string } {
  const native = connection.native!
  native.exec('SAVEPOINT chat_event')
  try {
    const insert = changeInsert(input)
    const row = (nativeStatement(connection, insert.sql).all(...insert.params) as { id: number | string, body: string }[])[0]
    if (!row) {
      throw changeRefusal(messageSync(connection, input.room, input.target!), input) ?? new RoomLogRefusal('not_found', `No message ${input.target} in this room`)
    }
    const change = { id: Number(row.id), body: row.body }
    for (const effect of applyStatements(input, change)) nativeStatement(connection, effect.sql).run(...effect.params)
    native.exec('RELEASE chat_event')
    return change
  }
  catch (error) {
    native.exec('ROLLBACK TO chat_event')
    native.exec('RELEASE chat_event')
    throw error
  }
}

/** One stored message with its reactions, read inside the batch's transaction. */
function messageSync(connection: Connection, room: string, id: number): StoredMessage | undefined {
  const row = nativeStatement(connection, `SELECT ${COLUMNS} FROM chat_messages WHERE room = ? AND id = ? AND kind IS NULL`).get(room, id) as MessageRow | undefined
  if (!row) return undefined
  const message = toMessage(room, row)
  for (const { emoji, uid } of nativeStatement(connection, 'SELECT emoji, uid FROM chat_reactions WHERE room = ? AND target = ? ORDER BY emoji, uid').all(room, id) as { emoji: string, uid: string }[]) addReactor(message, emoji, uid)
  return message
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

/** Add `column` to a table an earlier version made without it; false when it was there. Looked up first: ALTER TABLE locks the table. */
export async function addColumnInPlace(db: Database, table: string, column: string, definition: string): Promise<boolean> {
  const exists = db.dialect === 'sqlite'
    ? await db.prepare(`SELECT name FROM pragma_table_info('${table}') WHERE name = ?`).get(column)
    : await db.prepare(`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '${table}' AND column_name = ?`).get(column)
  if (exists) return false
  await db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`).catch((error) => {
    // Another instance added it meanwhile.
    if (!/duplicate column|already exists/i.test(String((error as Error)?.message))) throw error
  })
  return true
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
  // A room's newest number once retention removed its rows (revision 5): one small row per emptied room.
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_room_counters (
    room TEXT NOT NULL PRIMARY KEY,
    last_id BIGINT NOT NULL
  )`)
  // Rooms with members (docs/PROTOCOL.md, "Rooms and members"): new tables, so older databases open with every message as it was.
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_rooms (
    id TEXT NOT NULL PRIMARY KEY,
    title TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL
  )`)
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_members (
    room TEXT NOT NULL,
    uid TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    muted_until BIGINT,
    banned SMALLINT NOT NULL DEFAULT 0,
    mute_only SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room, uid)
  )`)
  // A mute kept without a membership (docs/PROTOCOL.md, "Moderation commands"): added to tables made before it.
  await addColumnInPlace(db, 'chat_members', 'mute_only', 'SMALLINT NOT NULL DEFAULT 0')
  // A person's memberships (their rooms list).
  await db.exec('CREATE INDEX IF NOT EXISTS chat_members_user ON chat_members (uid)')
  // Mute-only rows by when their mute ends: retention finds the ended ones without reading every membership.
  await db.exec('CREATE INDEX IF NOT EXISTS chat_members_mute_only ON chat_members (muted_until) WHERE mute_only = 1')
  await membersFromReads(db)
  // Signed-in users' names as last seen (a direct room's title).
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_users (
    uid TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    seen_at BIGINT NOT NULL
  )`)
  // Unread mentions (docs/PROTOCOL.md, "Mentions"): a user's rows of a room above their position, by the primary key.
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_mentions (
    room TEXT NOT NULL,
    uid TEXT NOT NULL,
    id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (room, uid, id)
  )`)
  // Tables made by earlier versions lack some columns. Looked up first: ALTER TABLE locks the table.
  for (const [column, definition] of ADDED_COLUMNS) {
    if (!await addColumnInPlace(db, 'chat_messages', column, definition)) continue
    // Revision 5, in place: the messages changed by stored events get the number of their latest one (idempotent).
    if (column === 'rev') {
      await db.exec(`UPDATE chat_messages SET rev = changed.rev
        FROM (SELECT room, target, MAX(id) AS rev FROM chat_messages WHERE kind IS NOT NULL GROUP BY room, target) AS changed
        WHERE chat_messages.room = changed.room AND chat_messages.id = changed.target AND chat_messages.kind IS NULL`)
    }
  }
  // A delete finds its target's edits here (after the columns: older tables lack them); built at open on databases made before it.
  await db.exec(`CREATE INDEX IF NOT EXISTS chat_messages_edits ON chat_messages (room, target) WHERE kind = 'edit'`)
  // Revision 5: replay, unread and retention walk messages only; a resume finds changed messages by `rev`; retention bounds changes apart.
  await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_live ON chat_messages (room, id) WHERE kind IS NULL')
  await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_rev ON chat_messages (room, rev) WHERE kind IS NULL AND rev IS NOT NULL')
  await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_changes ON chat_messages (room, id) WHERE kind IS NOT NULL')
  // A thread's replies (its page, its parent's summary): only rows that are replies.
  await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_thread ON chat_messages (room, thread, id) WHERE thread IS NOT NULL')
  // The sweep of streams left open by a dead instance: only open streams are indexed.
  await db.exec('CREATE INDEX IF NOT EXISTS chat_messages_streams ON chat_messages (stream_beat) WHERE stream_owner IS NOT NULL')
  // Search (docs/PROTOCOL.md, "Search"): built at open on databases made before it, over the messages they hold.
  await createSearchIndex(db)
  // Web Push (docs/PROTOCOL.md, "Notifications"): tables of its own.
  await createPushTables(db)
}

/**
 * Once per database (issue 23): the rooms list is made of memberships, no longer of read
 * positions, so each signed-in user's position in a room that is not private becomes a plain
 * membership (joined when it last moved): nobody's list empties on upgrade. Guests never had
 * positions; existing memberships and bans stay as they are.
 */
async function membersFromReads(db: Database) {
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_schema_steps (
    step TEXT NOT NULL PRIMARY KEY,
    done_at BIGINT NOT NULL
  )`)
  if (await db.prepare('SELECT step FROM chat_schema_steps WHERE step = ?').get(MEMBERS_FROM_READS)) return
  // Two instances opening at once both run it: every row is "unless it is there".
  await db.exec(`INSERT INTO chat_members (room, uid, role, joined_at, muted_until, banned)
    SELECT r.room, r.uid, 'member', r.ts, NULL, 0 FROM chat_reads r
    WHERE r.uid NOT LIKE 'guest:%' AND NOT EXISTS (SELECT 1 FROM chat_rooms c WHERE c.id = r.room AND c.visibility = 'private')
    ON CONFLICT (room, uid) DO NOTHING`)
  await db.prepare('INSERT INTO chat_schema_steps (step, done_at) VALUES (?, ?) ON CONFLICT (step) DO NOTHING').run(MEMBERS_FROM_READS, Date.now())
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
export function isConnectionFault(dialect: string, error: unknown): boolean {
  if (error instanceof RoomLogInputError || error instanceof RoomLogRefusal || isUniqueViolation(error)) return false
  if (dialect === 'sqlite') {
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

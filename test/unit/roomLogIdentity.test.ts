/**
 * The room log keeps who sent each message (uid and the guest flag), on every backend, and a
 * table made before nuxt-chat 0.2 (no `guest` column) is migrated in place on SQLite and
 * PostgreSQL, its old rows replayed as they were.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { createDatabase, type Database } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'

const POSTGRES_ADMIN = 'postgresql://postgres@127.0.0.1:5432/test'
const sqlitePath = () => join(mkdtempSync(join(tmpdir(), 'nuxt-chat-log-')), 'chat.sqlite')
const cleanups: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** A PostgreSQL database of this test's own (the shared `test` database keeps its table as it is). */
async function ownPostgresDatabase(): Promise<string> {
  const name = `chat_identity_${randomUUID().slice(0, 8)}`
  const admin = createDatabase(postgresql({ url: POSTGRES_ADMIN }))
  await admin.exec(`CREATE DATABASE ${name}`)
  cleanups.push(async () => {
    await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.dispose()
  })
  return `postgresql://postgres@127.0.0.1:5432/${name}`
}

const LEGACY_SCHEMA = `CREATE TABLE chat_messages (
  room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL,
  body TEXT NOT NULL, ts BIGINT NOT NULL, cid TEXT, PRIMARY KEY (room, id))`

const backends: [string, () => Promise<() => Database>][] = [
  ['sqlite', async () => {
    const path = sqlitePath()
    return () => createDatabase(nodeSqlite({ path }))
  }],
  ['postgresql', async () => {
    const url = await ownPostgresDatabase()
    return () => createDatabase(postgresql({ url }))
  }],
]

function track(log: RoomLog): RoomLog {
  cleanups.push(() => log.close())
  return log
}

describe('uid and guest are stored', () => {
  it.each([
    ['memory', async () => track(createMemoryRoomLog())],
    ['sqlite', async () => track(createDb0RoomLog(() => createDatabase(nodeSqlite({ path: sqlitePath() }))))],
    ['postgresql', async () => track(createDb0RoomLog(() => createDatabase(postgresql({ url: POSTGRES_ADMIN }))))],
  ] as const)('%s: append, replay, between and a duplicate carry the sender', async (_name, open) => {
    const log = await open()
    const room = `uid-${randomUUID().slice(0, 8)}`
    const ts = Date.now()
    const user = await log.append({ room, user: 'Alice', sender: 'u-alice', message: 'signed in', ts, cid: 'c-1' })
    const guest = await log.append({ room, user: 'guest-abcdef', sender: 'guest:abcdefghijklmnopqrstuv', guest: true, message: 'guest', ts, cid: 'c-1' })
    expect(user.message).toMatchObject({ uid: 'u-alice' })
    expect(user.message).not.toHaveProperty('guest')
    expect(guest.message).toMatchObject({ uid: 'guest:abcdefghijklmnopqrstuv', guest: true, id: 2 })
    const replayed = await log.replaySince(room, undefined, 10)
    expect(replayed).toEqual([user.message, guest.message])
    expect(await log.between(room, 0, 3)).toEqual([user.message, guest.message])
    const again = await log.append({ room, user: 'guest-abcdef', sender: 'guest:abcdefghijklmnopqrstuv', guest: true, message: 'guest', ts, cid: 'c-1' })
    expect(again).toEqual({ message: guest.message, duplicate: true })
  })
})

describe.each(backends)('migration of a 0.1 table: %s', (_name, prepare) => {
  it('adds the guest column to an existing table and keeps its rows', async () => {
    const openDatabase = await prepare()
    const legacy = openDatabase()
    await legacy.exec(LEGACY_SCHEMA)
    await legacy.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts, cid) VALUES ('old', 1, '', 'anon', 'from 0.1', 1, 'c-1'), ('old', 2, 'u-bob', 'Bob', 'bob in 0.1', 2, NULL)`)
    await legacy.dispose()

    const log = track(createDb0RoomLog(openDatabase))
    expect(await log.replaySince('old', undefined, 10)).toEqual([
      { id: 1, room: 'old', user: 'anon', message: 'from 0.1', ts: 1, cid: 'c-1' },
      { id: 2, room: 'old', user: 'Bob', message: 'bob in 0.1', ts: 2, uid: 'u-bob' },
    ])
    const appended = await log.append({ room: 'old', user: 'guest-abcdef', sender: 'guest:abcdefghijklmnopqrstuv', guest: true, message: 'new', ts: 3, cid: 'c-1' })
    expect(appended).toMatchObject({ duplicate: false, message: { id: 3, uid: 'guest:abcdefghijklmnopqrstuv', guest: true } })
    // Opening it again (a restart, a second instance) finds the column there.
    const reopened = track(createDb0RoomLog(openDatabase))
    expect((await reopened.replaySince('old', 2, 10))[0]).toMatchObject({ id: 3, guest: true })
  })
})

/** A table as nuxt-chat 0.4 made it: edits, deletes and reactions stored as rows (revision 3). */
const REVISION3_SCHEMA = [`CREATE TABLE chat_messages (
  room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL,
  cid TEXT, guest SMALLINT NOT NULL DEFAULT 0, kind TEXT, target BIGINT, edited BIGINT, deleted SMALLINT NOT NULL DEFAULT 0,
  PRIMARY KEY (room, id))`, `CREATE TABLE chat_reactions (room TEXT NOT NULL, target BIGINT NOT NULL, emoji TEXT NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (room, target, emoji, uid))`]

describe.each(backends)('migration of a revision 3 table (events as rows): %s', (_name, prepare) => {
  it('keeps the event rows as changes, gives their messages their rev in place, and counts messages only', async () => {
    const openDatabase = await prepare()
    const legacy = openDatabase()
    for (const statement of REVISION3_SCHEMA) await legacy.exec(statement)
    // Message 1 edited (2) and reacted to (3, 4); message 5; 40 toggles after it (6-45), as 0.4 stored them.
    await legacy.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts, kind, target, edited) VALUES
      ('r3', 1, 'u-a', 'A', 'edited', 1, NULL, NULL, 2), ('r3', 2, 'u-a', 'A', 'edited', 2, 'edit', 1, NULL),
      ('r3', 3, 'u-b', 'B', '+👍', 3, 'reaction', 1, NULL), ('r3', 4, 'u-c', 'C', '+👍', 4, 'reaction', 1, NULL),
      ('r3', 5, 'u-a', 'A', 'five', 5, NULL, NULL, NULL)`)
    for (let id = 6; id <= 45; id++) await legacy.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts, kind, target) VALUES ('r3', ${id}, 'u-b', 'B', '${id % 2 ? '-' : '+'}🎉', ${id}, 'reaction', 5)`)
    await legacy.exec(`INSERT INTO chat_reactions (room, target, emoji, uid) VALUES ('r3', 1, '👍', 'u-b'), ('r3', 1, '👍', 'u-c')`)
    await legacy.dispose()

    const log = track(createDb0RoomLog(openDatabase))
    const replayed = await log.replaySince('r3', undefined, 2)
    expect(replayed.map(message => [message.id, message.rev, message.message])).toEqual([[1, 4, 'edited'], [5, 45, 'five']])
    expect(replayed[0]!.reactions).toEqual({ '👍': ['u-b', 'u-c'] })
    // A client holding both since 5 gets message 5 once, not 40 toggles; the event rows still fill gaps.
    expect((await log.replaySince('r3', 5, 10)).map(message => message.id)).toEqual([5])
    expect((await log.between('r3', 5, 8)).map(message => [message.id, message.kind])).toEqual([[6, 'reaction'], [7, 'reaction']])
    expect((await log.append({ room: 'r3', user: 'A', sender: 'u-a', message: 'next', ts: 46 })).message.id).toBe(46)
    // Opening it again (a restart, a second instance) changes nothing.
    const reopened = track(createDb0RoomLog(openDatabase))
    expect((await reopened.replaySince('r3', undefined, 3)).map(message => [message.id, message.rev])).toEqual([[1, 4], [5, 45], [46, undefined]])
  })
})

/** A table as nuxt-chat 0.6 made it before replies and mentions (issue 24). */
const BEFORE_MENTIONS_SCHEMA = `CREATE TABLE chat_messages (
  room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL,
  cid TEXT, guest SMALLINT NOT NULL DEFAULT 0, kind TEXT, target BIGINT, edited BIGINT, deleted SMALLINT NOT NULL DEFAULT 0, rev BIGINT,
  PRIMARY KEY (room, id))`

describe.each(backends)('migration of a table from before replies and mentions: %s', (_name, prepare) => {
  it('adds reply_to, mentions and mentions_all in place, keeps its rows, and stores replies and mentions from then on', async () => {
    const openDatabase = await prepare()
    const legacy = openDatabase()
    await legacy.exec(BEFORE_MENTIONS_SCHEMA)
    await legacy.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts, cid) VALUES ('old', 1, 'u-ann', 'Ann', 'from 0.6', 1, 'c-1')`)
    await legacy.dispose()

    const log = track(createDb0RoomLog(openDatabase))
    expect(await log.replaySince('old', undefined, 10)).toEqual([{ id: 1, room: 'old', user: 'Ann', uid: 'u-ann', message: 'from 0.6', ts: 1, cid: 'c-1' }])
    await log.joinRead('old', 'u-bob')
    const reply = await log.append({ room: 'old', user: 'Cat', sender: 'u-cat', message: '@Bob see this', ts: 2, replyTo: 1, mentions: ['u-bob'] })
    expect(reply.message).toMatchObject({ id: 2, replyTo: { id: 1, user: 'Ann', uid: 'u-ann', excerpt: 'from 0.6' }, mentions: ['u-bob'] })
    expect((await log.readState('old', 'u-bob'))?.mentions).toBe(1)
    // Opening it again (a restart, a second instance) finds the columns there.
    const reopened = track(createDb0RoomLog(openDatabase))
    expect((await reopened.replaySince('old', 1, 10))[0]).toMatchObject({ id: 2, replyTo: { id: 1, excerpt: 'from 0.6' }, mentions: ['u-bob'] })
  })
})

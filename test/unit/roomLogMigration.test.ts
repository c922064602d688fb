/**
 * The rooms list made of memberships (issue 23), migrated in place: a database written by an
 * earlier version, whose lists were its read positions, opens with each signed-in user's position
 * in a room that is not private as a plain membership, once. SQLite and PostgreSQL (a database of
 * this file's own), through the real db0 room log.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDatabase, type Database } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { ownPostgresDatabase, POSTGRES_URL } from '../utils/server'

const pg = ownPostgresDatabase('nuxt_chat_migration')
afterAll(() => pg.drop())

const backends: [string, () => () => Database][] = [
  ['sqlite', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'nuxt-chat-migration-')), 'chat.sqlite')
    return () => createDatabase(nodeSqlite({ path }))
  }],
  ['postgresql', () => () => createDatabase(postgresql({ url: POSTGRES_URL.replace(/\/test$/, `/${pg.name}`) }))],
]

/** The tables an earlier version made (rooms with members, lists from positions), with its rows. */
async function earlierVersion(db: Database, now: number) {
  await db.exec(`CREATE TABLE chat_messages (room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL, cid TEXT, PRIMARY KEY (room, id))`)
  await db.exec(`CREATE TABLE chat_reads (uid TEXT NOT NULL, room TEXT NOT NULL, id BIGINT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (uid, room))`)
  await db.exec(`CREATE TABLE chat_rooms (id TEXT NOT NULL PRIMARY KEY, title TEXT NOT NULL, topic TEXT NOT NULL DEFAULT '', visibility TEXT NOT NULL, kind TEXT NOT NULL, created_by TEXT, created_at BIGINT NOT NULL)`)
  await db.exec(`CREATE TABLE chat_members (room TEXT NOT NULL, uid TEXT NOT NULL, role TEXT NOT NULL, joined_at BIGINT NOT NULL, muted_until BIGINT, banned SMALLINT NOT NULL DEFAULT 0, PRIMARY KEY (room, uid))`)
  await db.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts) VALUES ('lobby', 1, 'bob', 'Bob', 'hello', ${now})`)
  await db.exec(`INSERT INTO chat_rooms (id, title, visibility, kind, created_at) VALUES ('team', 'Team', 'public', 'room', 1), ('secret', 'Secret', 'private', 'room', 1)`)
  // Alice: positions in a room without a record, a public room where she moderates, a public room, a private one she was removed from.
  await db.exec(`INSERT INTO chat_reads (uid, room, id, ts) VALUES ('alice', 'lobby', 1, ${now - 3000}), ('alice', 'team', 0, ${now - 2000}), ('alice', 'lounge', 0, ${now - 1000}), ('alice', 'secret', 0, ${now})`)
  await db.exec(`INSERT INTO chat_members (room, uid, role, joined_at, banned) VALUES ('team', 'alice', 'moderator', 5, 0), ('lounge', 'carol', 'member', 5, 1)`)
  // Carol, banned from the lounge, still had a position there (a ban made before positions went with it).
  await db.exec(`INSERT INTO chat_reads (uid, room, id, ts) VALUES ('carol', 'lounge', 0, ${now})`)
}

describe.each(backends)('memberships from read positions: %s', (_name, database) => {
  it('an earlier version\'s positions open as memberships (not a private room\'s, a ban stays, roles kept), once: a position made later lists nothing', async () => {
    const open = database()
    const now = Date.now()
    const old = open()
    await earlierVersion(old, now)
    await old.dispose()

    const log = createDb0RoomLog(open)
    try {
      expect(await log.memberRooms('alice', 10)).toEqual(['lounge', 'team', 'lobby'])
      expect(await log.member('lobby', 'alice')).toEqual({ room: 'lobby', uid: 'alice', role: 'member', joinedAt: now - 3000 })
      expect(await log.member('team', 'alice')).toMatchObject({ role: 'moderator', joinedAt: 5 })
      expect(await log.member('secret', 'alice')).toBeUndefined()
      expect(await log.member('lounge', 'carol')).toMatchObject({ banned: true })
      expect(await log.memberRooms('carol', 10)).toEqual([])
      // Read state is untouched: the unread marker is the position.
      expect(await log.readState('lobby', 'alice')).toMatchObject({ read: 1, unread: 0, upTo: 1 })
      // A position made from now on is no membership, and a reopen does not make it one.
      expect((await log.joinRead('later', 'alice')).created).toBe(true)
    }
    finally {
      await log.close()
    }
    const reopened = createDb0RoomLog(open)
    try {
      expect(await reopened.memberRooms('alice', 10)).toEqual(['lounge', 'team', 'lobby'])
      expect(await reopened.readRooms('alice', 10)).toContain('later')
    }
    finally {
      await reopened.close()
    }
  })
})

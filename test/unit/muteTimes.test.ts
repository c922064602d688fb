/**
 * Bounded times and clean titles (docs/PROTOCOL.md, "Times", "Names and titles") where the server
 * decides them: moderation (the command's and `useChatServer().mute`'s one path), the room
 * fields' cleaning, and rows stored before the rules, on every store.
 */
import { randomUUID } from 'node:crypto'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { createHooks } from 'hookable'
import { describe, expect, it } from 'vitest'
import { MAX_TIME } from '../../src/runtime/shared/protocol'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import { createRoomModeration } from '../../src/runtime/server/utils/roomModeration'
import { cleanRoomFields, MUTED_FOREVER } from '../../src/runtime/server/utils/roomMembers'
import type { ChatRuntimeHooks } from '../../src/runtime/types'
import { closedAfterAll, POSTGRES_URL, sqlitePath } from '../utils/roomLogs'

const opened = closedAfterAll()
const silent = { error: () => {} }

describe('mute times', () => {
  const setup = () => {
    const store = createMemoryRoomLog()
    const changed: unknown[] = []
    const moderation = createRoomModeration({ store, hooks: createHooks<ChatRuntimeHooks>(), logger: silent, changed: frame => changed.push(frame) })
    return { store, moderation, changed }
  }

  it('an `until` that is no time a Date holds is bad_request from server code, and nothing is stored', async () => {
    const { store, moderation, changed } = setup()
    for (const until of [MAX_TIME + 1, Number.MAX_SAFE_INTEGER, 1e300, Infinity, -Infinity, Number.NaN, 1.5, -1, '5' as unknown as number]) {
      const result = await moderation.act('lobby', { type: 'mute', user: 'bob', until })
      expect(result, String(until)).toMatchObject({ status: 400, error: { code: 'bad_request', message: expect.stringContaining('until') } })
    }
    expect(await store.member('lobby', 'bob')).toBeUndefined()
    expect(changed).toEqual([])
  })

  it('the latest time passes; an endless mute is that time, a valid Date', async () => {
    const { store, moderation } = setup()
    expect(MUTED_FOREVER).toBe(MAX_TIME)
    expect(MAX_TIME).toBe(8.64e15)
    expect(new Date(MAX_TIME).toISOString()).toBe('+275760-09-13T00:00:00.000Z')
    expect(await moderation.act('lobby', { type: 'mute', user: 'bob', until: MAX_TIME })).toMatchObject({ frame: { mutedUntil: MAX_TIME } })
    const endless = await moderation.act('lobby', { type: 'mute', user: 'cat' })
    expect(endless).toMatchObject({ frame: { mutedUntil: MAX_TIME } })
    expect((await store.member('lobby', 'cat'))?.mutedUntil).toBe(MAX_TIME)
    // Cat was no member: the endless mute was a mute-only row, and unmuting takes it away (no membership is left).
    expect(await moderation.act('lobby', { type: 'mute', user: 'cat', until: 0 })).toEqual({ frame: { type: 'member', room: 'lobby', uid: 'cat' } })
  })
})

describe('room fields', () => {
  it('titles and topics lose control, format, bidi and invisible characters; right-to-left letters stay', () => {
    expect(cleanRoomFields({ title: 'admin\u202Egnp.exe', topic: 'a\u200Bb\u2066c\u2069 \uFEFFd' })).toEqual({ title: 'admingnp.exe', topic: 'abc d' })
    expect(cleanRoomFields({ title: '\u0000x\u0085y\u061Cz\u2060\u{E0041}' })).toEqual({ title: 'x yz' })
    expect(cleanRoomFields({ title: 'שלום עולם', topic: 'مرحبا بالعالم' })).toEqual({ title: 'שלום עולם', topic: 'مرحبا بالعالم' })
    // Tabs and line breaks: spaces in a title; a topic keeps its line feeds.
    expect(cleanRoomFields({ title: 'a\tb\nc\r\nd', topic: 'one\r\ntwo\nthree\u2029four\tfive' })).toEqual({ title: 'a b c  d', topic: 'one\ntwo\nthree\nfour five' })
    expect(cleanRoomFields({ visibility: 'private' })).toEqual({ visibility: 'private' })
  })
})

// Rows written by servers before the rules (an endless mute as 2^53 - 1, a larger `until`, a title with bidi controls) still load.
describe.each([
  ['sqlite', () => {
    const path = sqlitePath('nuxt-chat-bounds-')
    return () => createDatabase(nodeSqlite({ path }))
  }],
  ['postgresql', () => () => createDatabase(postgresql({ url: POSTGRES_URL }))],
] as const)('rows stored before: %s', (_name, database) => {
  it('a later mute reads as the latest time (still muted); a title with bidi controls loads cleaned', async () => {
    const open = database()
    const log = createDb0RoomLog(open)
    opened.push(log)
    const room = `bounds-${randomUUID().slice(0, 8)}`
    await log.createRoom({ id: room, title: 'x', topic: '', visibility: 'public', kind: 'room', createdBy: null, createdAt: 1 })
    const db = open()
    try {
      await db.sql`UPDATE chat_rooms SET title = ${'admin\u202Egnp.exe'}, topic = ${'t\u2066op\nic'} WHERE id = ${room}`
      await db.sql`INSERT INTO chat_members (room, uid, role, joined_at, muted_until, banned) VALUES (${room}, ${'old'}, ${'member'}, ${1}, ${Number.MAX_SAFE_INTEGER}, ${0}), (${room}, ${'later'}, ${'member'}, ${1}, ${MAX_TIME + 5}, ${0})`
    }
    finally {
      await db.dispose()
    }
    expect(await log.roomRecord(room)).toMatchObject({ title: 'admingnp.exe', topic: 'top\nic' })
    for (const uid of ['old', 'later']) {
      const member = await log.member(room, uid)
      expect(member?.mutedUntil, uid).toBe(MAX_TIME)
      expect(new Date(member!.mutedUntil!).toISOString()).toBe('+275760-09-13T00:00:00.000Z')
    }
    expect((await log.members(room, undefined, 10)).map(member => member.mutedUntil)).toEqual([MAX_TIME, MAX_TIME])
    // An attachment's name as server code stored it before the rule: the store keeps what it is given, and serves it cleaned.
    const file = { id: 'f'.repeat(22), name: 'chart\u202Egnp.exe', size: 1, type: 'image/png' }
    const { message: { id } } = await log.append({ room, user: 'bot', sender: 'bot', message: '', ts: Date.now(), files: [file] })
    expect((await log.message(room, id))?.files).toEqual([{ ...file, name: 'chartgnp.exe' }])
    expect((await log.before(room, id + 1, 1))[0]?.files?.[0]?.name).toBe('chartgnp.exe')
  })
})

/**
 * Rooms with members (docs/PROTOCOL.md, "Rooms and members"): the role rules, the direct room
 * id, the admission decision, the stored records and members on every backend, and a database
 * made before them opened in place with every message kept.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash, randomUUID } from 'node:crypto'
import { createDatabase, type Database } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import type { ConsolaInstance } from 'consola'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'
import { directPair, directRoomId, mayAct, memberIdProblem, membershipOf, rankOf, roomFieldsProblem, type MemberRole, type RoomMember } from '../../src/runtime/server/utils/roomMembers'
import type { ChatMemberAction } from '../../src/runtime/shared/protocol'
import { createRoomAccess, ROOM_ACCESS_TTL } from '../../src/runtime/server/utils/roomAccess'
import { withRetention } from '../../src/runtime/server/utils/retention'

const POSTGRES_ADMIN = 'postgresql://postgres@127.0.0.1:5432/test'
const sqlitePath = () => join(mkdtempSync(join(tmpdir(), 'nuxt-chat-members-')), 'chat.sqlite')
const cleanups: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

async function ownPostgresDatabase(): Promise<string> {
  const name = `chat_members_${randomUUID().slice(0, 8)}`
  const admin = createDatabase(postgresql({ url: POSTGRES_ADMIN }))
  await admin.exec(`CREATE DATABASE ${name}`)
  cleanups.push(async () => {
    await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.dispose()
  })
  return `postgresql://postgres@127.0.0.1:5432/${name}`
}

function track(log: RoomLog): RoomLog {
  cleanups.push(() => log.close())
  return log
}

const as = (role: MemberRole, extra: Partial<RoomMember> = {}): RoomMember => ({ room: 'r', uid: `u-${role}`, role, joinedAt: 1, ...extra })

describe('what a person is told of their membership on joining', () => {
  it('the role unless banned, and the mute only while it lasts', () => {
    expect(membershipOf(undefined)).toEqual({})
    expect(membershipOf(as('owner'))).toEqual({ role: 'owner' })
    expect(membershipOf(as('member', { mutedUntil: 2000 }), 1000)).toEqual({ role: 'member', mutedUntil: 2000 })
    expect(membershipOf(as('member', { mutedUntil: 1000 }), 1000)).toEqual({ role: 'member' })
    expect(membershipOf(as('moderator', { banned: true }))).toEqual({})
  })
})

describe('room record fields (the server API\'s createRoom and updateRoom)', () => {
  it('refuses what the store would not keep as given: NUL, a lone surrogate, over-long text', () => {
    expect(roomFieldsProblem({ title: 'Team 🎉', topic: 'a\u200Db' })).toBeUndefined()
    expect(roomFieldsProblem({ title: 'Team \uD800' })).toMatch(/lone surrogates/)
    expect(roomFieldsProblem({ topic: '\uDC00 x' })).toMatch(/lone surrogates/)
    expect(roomFieldsProblem({ title: 'a\0b' })).toMatch(/NUL/)
    expect(roomFieldsProblem({ title: 'x'.repeat(201) })).toMatch(/200/)
  })
})

describe('role rules', () => {
  const owner = as('owner')
  const moderator = as('moderator')
  const member = as('member')
  it('owners and moderators moderate people of a lower role; members and outsiders nobody', () => {
    for (const action of ['remove', 'mute', 'ban'] as ChatMemberAction[]) {
      expect(mayAct(action, owner, moderator), `owner ${action} moderator`).toBe(true)
      expect(mayAct(action, owner, member), `owner ${action} member`).toBe(true)
      expect(mayAct(action, moderator, member), `moderator ${action} member`).toBe(true)
      expect(mayAct(action, moderator, undefined), `moderator ${action} an outsider`).toBe(true)
      expect(mayAct(action, moderator, as('moderator', { uid: 'u-other' })), `moderator ${action} moderator`).toBe(false)
      expect(mayAct(action, moderator, owner), `moderator ${action} owner`).toBe(false)
      expect(mayAct(action, owner, as('owner', { uid: 'u-other' })), `owner ${action} owner`).toBe(false)
      expect(mayAct(action, member, as('member', { uid: 'u-other' })), `member ${action} member`).toBe(false)
      expect(mayAct(action, undefined, member), `outsider ${action}`).toBe(false)
    }
  })
  it('invite: owners and moderators, of someone with no membership', () => {
    expect(mayAct('invite', owner, undefined)).toBe(true)
    expect(mayAct('invite', moderator, undefined)).toBe(true)
    expect(mayAct('invite', member, undefined)).toBe(false)
    expect(mayAct('invite', moderator, as('member', { banned: true }))).toBe(false)
  })
  it('only owners set roles, and only of someone below them', () => {
    expect(mayAct('role', owner, member, 'moderator')).toBe(true)
    expect(mayAct('role', owner, moderator, 'owner')).toBe(true)
    expect(mayAct('role', moderator, member, 'moderator')).toBe(false)
    expect(mayAct('role', owner, as('owner', { uid: 'u-other' }), 'member')).toBe(false)
    expect(mayAct('role', owner, undefined, 'member')).toBe(false)
  })
  it('a banned actor acts on nobody; a ban is lifted only by someone above the banned role', () => {
    expect(mayAct('ban', as('owner', { banned: true }), member)).toBe(false)
    expect(mayAct('unban', moderator, as('member', { banned: true }))).toBe(true)
    expect(mayAct('unban', moderator, as('moderator', { uid: 'u-x', banned: true }))).toBe(false)
    expect(mayAct('unban', moderator, member)).toBe(false)
  })
  it('a role that is none of the three (a store\'s odd row) ranks as no membership: it moderates nobody, and anyone above a member acts on it', () => {
    for (const role of ['god', 'toString', 'constructor', '__proto__', '']) {
      const odd = as(role as MemberRole, { uid: 'u-odd' })
      expect(rankOf(odd), role).toBe(0)
      for (const action of ['invite', 'remove', 'mute', 'ban', 'unban'] as ChatMemberAction[]) expect(mayAct(action, odd, action === 'invite' ? undefined : member), `${role} ${action}`).toBe(false)
      expect(mayAct('role', odd, member, 'owner'), role).toBe(false)
      expect(mayAct('ban', moderator, odd), role).toBe(true)
    }
  })
  it('guests and odd ids are no members', () => {
    expect(memberIdProblem('guest:abcdefghijklmnopqrstuv')).toMatch(/guests/)
    expect(memberIdProblem('')).toBeDefined()
    expect(memberIdProblem('a\nb')).toBeDefined()
    expect(memberIdProblem('x'.repeat(257))).toBeDefined()
    expect(memberIdProblem('u-alice')).toBeUndefined()
  })
})

describe('direct room id', () => {
  it('is dm: + 22 base64url characters of SHA-256 of the sorted ids joined by NUL, the same from either side', () => {
    const id = directRoomId('u-bob', 'u-alice')
    expect(id).toBe(directRoomId('u-alice', 'u-bob'))
    expect(id).toBe(`dm:${createHash('sha256').update('u-alice\0u-bob').digest('base64url').slice(0, 22)}`)
    expect(id).toMatch(/^dm:[\w-]{22}$/)
  })
  it('no two pairs share one (the NUL keeps "a"+"bc" and "ab"+"c" apart)', () => {
    expect(directRoomId('a', 'bc')).not.toBe(directRoomId('ab', 'c'))
    expect(directRoomId('u-alice', 'u-bob')).not.toBe(directRoomId('u-alice', 'u-carol'))
  })

  it('its two people are the two ids that hash to it, among its members and its maker; a third id is neither', () => {
    const room = directRoomId('u-alice', 'u-bob')
    expect(directPair(room, 'u-alice', ['u-alice', 'u-bob', 'u-eve'])).toEqual(['u-alice', 'u-bob'])
    expect(directPair(room, 'u-bob', ['u-aaron', 'u-alice', 'u-eve'])).toEqual(['u-bob', 'u-alice'])
    // The partner's row gone: the maker alone; the maker's gone: found from the partner's.
    expect(directPair(room, 'u-alice', ['u-alice', 'u-eve'])).toEqual(['u-alice'])
    expect(directPair(room, 'u-alice', ['u-bob'])).toEqual(['u-alice', 'u-bob'])
    // A maker that is none of the two (a record written by hand): the two among the members, else nobody but that maker.
    expect(directPair(room, 'u-eve', ['u-alice', 'u-bob', 'u-eve'])).toEqual(['u-alice', 'u-bob'])
    expect(directPair(room, null, ['u-eve', 'u-mallory'])).toEqual([])
  })
})

describe('room admission', () => {
  const alice = { id: 'u-alice', name: 'Alice' }
  const bob = { id: 'u-bob', name: 'Bob' }
  const guest = { id: 'guest:abcdefghijklmnopqrstuv', name: 'guest-abcdef', guest: true as const }
  const setup = () => {
    let clock = 1_000_000
    const store = createMemoryRoomLog()
    let reads = 0
    const counted = { roomRecord: (room: string) => (reads++, store.roomRecord(room)), member: (room: string, uid: string) => (reads++, store.member(room, uid)), members: (room: string, after: string | undefined, limit: number) => (reads++, store.members(room, after, limit)) }
    const access = createRoomAccess({ store: counted, logger: { error() {} }, now: () => clock })
    return { store, access, reads: () => reads, tick: (ms: number) => clock += ms, now: () => clock }
  }

  it('a room without a record is public to everyone, answered from the cache after the first look', async () => {
    const { access, reads } = setup()
    expect(await access.decide('lobby', guest, 'send')).toMatchObject({ allowed: true })
    expect(access.decide('lobby', alice, 'send')).toMatchObject({ allowed: true })
    expect(reads()).toBe(1)
  })

  it('a private room admits its members only; the refusal is one text whatever the reason', async () => {
    const { store, access } = setup()
    await store.createRoom({ id: 'secret', title: 'Secret', topic: '', visibility: 'private', kind: 'room', createdBy: 'u-alice', createdAt: 1 })
    await store.saveMember({ room: 'secret', uid: 'u-alice', role: 'owner', joinedAt: 1 })
    expect(await access.decide('secret', alice, 'read')).toMatchObject({ allowed: true, moderator: true })
    const outsider = await access.decide('secret', bob, 'read')
    const asGuest = await access.decide('secret', guest, 'read')
    const nowhere = await access.decide('dm:AAAAAAAAAAAAAAAAAAAAAA', bob, 'read')
    expect(outsider).toEqual({ allowed: false, status: 403, code: 'forbidden', message: 'Not allowed in this room' })
    expect(asGuest).toEqual(outsider)
    expect(nowhere).toEqual(outsider)
  })

  it('a ban refuses everywhere, a mute refuses sending only and ends by itself; forget makes a change count at once', async () => {
    const { store, access, tick, now } = setup()
    await store.createRoom({ id: 'open', title: 'Open', topic: '', visibility: 'public', kind: 'room', createdBy: null, createdAt: 1 })
    expect(await access.decide('open', bob, 'send')).toMatchObject({ allowed: true })
    await store.saveMember({ room: 'open', uid: 'u-bob', role: 'member', joinedAt: 1, mutedUntil: now() + 60_000 })
    // Cached: the mute is not seen until forgotten (the bus event does this on every instance) or the TTL passes.
    expect(await access.decide('open', bob, 'send')).toMatchObject({ allowed: true })
    access.forget('open', 'u-bob')
    expect(await access.decide('open', bob, 'send')).toMatchObject({ allowed: false, code: 'muted', mutedUntil: now() + 60_000 })
    expect(await access.decide('open', bob, 'read')).toMatchObject({ allowed: true })
    tick(60_001)
    expect(await access.decide('open', bob, 'send')).toMatchObject({ allowed: true })
    await store.saveMember({ room: 'open', uid: 'u-bob', role: 'member', joinedAt: 1, banned: true })
    tick(ROOM_ACCESS_TTL)
    expect(await access.decide('open', bob, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    // A guest is no member, so never banned nor muted: a public room is open to guests.
    expect(await access.decide('open', guest, 'send')).toMatchObject({ allowed: true })
  })

  it('a direct room admits its two people only: a third member is refused, and either keeps it while the other has no row', async () => {
    const { store, access } = setup()
    const room = directRoomId('u-alice', 'u-bob')
    const eve = { id: 'u-eve', name: 'Eve' }
    await store.createRoom({ id: room, title: '', topic: '', visibility: 'private', kind: 'dm', createdBy: 'u-alice', createdAt: 1 })
    for (const uid of ['u-alice', 'u-bob', 'u-eve']) await store.saveMember({ room, uid, role: 'member', joinedAt: 1 })
    expect(await access.decide(room, alice, 'send')).toMatchObject({ allowed: true })
    expect(await access.decide(room, bob, 'read')).toMatchObject({ allowed: true })
    expect(await access.decide(room, eve, 'read')).toEqual({ allowed: false, status: 403, code: 'forbidden', message: 'Not allowed in this room' })
    // Cached, and the same answer from the cache.
    expect(access.decide(room, eve, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    expect(access.decide(room, alice, 'read')).toMatchObject({ allowed: true })
    expect(await access.pair(room)).toEqual(['u-alice', 'u-bob'])
    await store.deleteMember(room, 'u-bob')
    access.forget(room, 'u-bob')
    expect(await access.decide(room, alice, 'read')).toMatchObject({ allowed: true })
    expect(await access.decide(room, bob, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    expect(await access.decide(room, eve, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
  })

  it('a store that fails answers unavailable, never lets in unchecked; a recent answer still serves', async () => {
    let failing = false
    let clock = 0
    const store = createMemoryRoomLog()
    const access = createRoomAccess({ store: { roomRecord: room => failing ? Promise.reject(new Error('down')) : store.roomRecord(room), member: store.member, members: store.members }, logger: { error() {} }, now: () => clock })
    expect(await access.decide('known', alice, 'read')).toMatchObject({ allowed: true })
    failing = true
    clock += ROOM_ACCESS_TTL + 1
    expect(await access.decide('known', alice, 'read')).toMatchObject({ allowed: true })
    expect(await access.decide('unknown', alice, 'read')).toMatchObject({ allowed: false, status: 503, code: 'unavailable' })
  })

  it('a store down since boot lets reads in unchecked (v1 rooms stay joinable), never a send nor a direct room', async () => {
    const access = createRoomAccess({ store: { roomRecord: () => Promise.reject(new Error('down')), member: () => Promise.reject(new Error('down')), members: () => Promise.reject(new Error('down')) }, logger: { error() {} } })
    expect(await access.decide('lobby', alice, 'read')).toEqual({ allowed: true, moderator: false, unchecked: true })
    expect(await access.decide('lobby', alice, 'send')).toMatchObject({ allowed: false, code: 'unavailable' })
    expect(await access.decide('dm:AAAAAAAAAAAAAAAAAAAAAA', alice, 'read')).toMatchObject({ allowed: false, code: 'unavailable' })
  })
})

const backends: [string, () => Promise<() => RoomLog>][] = [
  ['memory', async () => () => createMemoryRoomLog()],
  ['sqlite', async () => {
    const path = sqlitePath()
    return () => createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
  }],
  ['postgresql', async () => {
    const url = await ownPostgresDatabase()
    return () => createDb0RoomLog(() => createDatabase(postgresql({ url })))
  }],
]

describe.each(backends)('stored records and members: %s', (_name, prepare) => {
  it('creates a record once, updates it, and keeps, replaces, pages and deletes members', async () => {
    const log = track((await prepare())())
    const record = { id: 'team', title: 'Team', topic: '', visibility: 'private' as const, kind: 'room' as const, createdBy: 'u-alice', createdAt: 5 }
    expect(await log.roomRecord('team')).toBeUndefined()
    expect(await log.createRoom(record)).toBe(true)
    expect(await log.createRoom({ ...record, title: 'Other' })).toBe(false)
    expect(await log.roomRecord('team')).toEqual(record)
    expect(await log.updateRoom('team', { topic: 'Plans' })).toBe(true)
    expect(await log.updateRoom('none', { topic: 'Plans' })).toBe(false)
    expect(await log.roomRecord('team')).toEqual({ ...record, topic: 'Plans' })

    expect(await log.addMemberIfAbsent({ room: 'team', uid: 'u-alice', role: 'owner', joinedAt: 5 })).toBe(true)
    expect(await log.addMemberIfAbsent({ room: 'team', uid: 'u-alice', role: 'member', joinedAt: 6 })).toBe(false)
    await log.saveMember({ room: 'team', uid: 'u-bob', role: 'member', joinedAt: 7, mutedUntil: 99 })
    await log.saveMember({ room: 'team', uid: 'u-carol', role: 'member', joinedAt: 8, banned: true })
    expect(await log.member('team', 'u-alice')).toEqual({ room: 'team', uid: 'u-alice', role: 'owner', joinedAt: 5 })
    expect(await log.member('team', 'u-bob')).toEqual({ room: 'team', uid: 'u-bob', role: 'member', joinedAt: 7, mutedUntil: 99 })
    await log.saveMember({ room: 'team', uid: 'u-bob', role: 'moderator', joinedAt: 7 })
    expect(await log.member('team', 'u-bob')).toEqual({ room: 'team', uid: 'u-bob', role: 'moderator', joinedAt: 7 })
    expect((await log.members('team', undefined, 2)).map(member => member.uid)).toEqual(['u-alice', 'u-bob'])
    expect(await log.members('team', 'u-bob', 10)).toEqual([{ room: 'team', uid: 'u-carol', role: 'member', joinedAt: 8, banned: true }])
    expect(await log.deleteMember('team', 'u-bob')).toBe(true)
    expect(await log.deleteMember('team', 'u-bob')).toBe(false)
    expect(await log.member('team', 'u-bob')).toBeUndefined()
  })

  it('retention sweeps mute-only rows whose mute ended, a step at a time; never a membership, a ban, or a mute still running', async () => {
    const log = track((await prepare())())
    const now = 1_000_000
    const rows: RoomMember[] = [
      { room: 'a', uid: 'ended-1', role: 'member', joinedAt: 1, mutedUntil: now - 1, muteOnly: true },
      { room: 'b', uid: 'ended-2', role: 'member', joinedAt: 1, mutedUntil: now, muteOnly: true },
      { room: 'b', uid: 'ended-3', role: 'member', joinedAt: 1, muteOnly: true },
      { room: 'a', uid: 'running', role: 'member', joinedAt: 1, mutedUntil: now + 1, muteOnly: true },
      { room: 'a', uid: 'member', role: 'member', joinedAt: 1, mutedUntil: now - 1 },
      { room: 'a', uid: 'plain', role: 'member', joinedAt: 1 },
      { room: 'b', uid: 'banned', role: 'member', joinedAt: 1, mutedUntil: now - 1, banned: true },
    ]
    for (const row of rows) await log.saveMember(row)
    expect(await log.pruneEndedMutes(now, 2)).toBe(2)
    expect(await log.pruneEndedMutes(now, 2)).toBe(1)
    expect(await log.pruneEndedMutes(now, 2)).toBe(0)
    const left = [...await log.members('a', undefined, 10), ...await log.members('b', undefined, 10)]
    expect(left.map(member => member.uid).toSorted()).toEqual(['banned', 'member', 'plain', 'running'])
    // Its mute ends: swept on a later pass.
    expect(await log.pruneEndedMutes(now + 1, 10)).toBe(1)
    expect(await log.member('a', 'running')).toBeUndefined()
    expect(await log.member('a', 'member')).toEqual(rows[4])
  })
})

describe('the retention pass', () => {
  it('sweeps the mute-only rows whose mute ended, and keeps a mute still running', async () => {
    const log = createMemoryRoomLog()
    await log.saveMember({ room: 'r', uid: 'ended', role: 'member', joinedAt: 1, mutedUntil: Date.now() - 1, muteOnly: true })
    await log.saveMember({ room: 'r', uid: 'running', role: 'member', joinedAt: 1, mutedUntil: Date.now() + 60_000, muteOnly: true })
    track(withRetention(log, { max: 10, maxAge: 0, interval: 10 }, { warn() {}, info() {} } as unknown as ConsolaInstance))
    await vi.waitFor(async () => expect(await log.member('r', 'ended')).toBeUndefined())
    expect(await log.member('r', 'running')).toMatchObject({ muteOnly: true })
  })
})

/** Every table as nuxt-chat made them before rooms had members (the schema of the commit before this change). */
const BEFORE_MEMBERS_SCHEMA = [
  `CREATE TABLE chat_messages (room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL,
    cid TEXT, guest SMALLINT NOT NULL DEFAULT 0, kind TEXT, target BIGINT, edited BIGINT, deleted SMALLINT NOT NULL DEFAULT 0, rev BIGINT, PRIMARY KEY (room, id))`,
  'CREATE TABLE chat_reactions (room TEXT NOT NULL, target BIGINT NOT NULL, emoji TEXT NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (room, target, emoji, uid))',
  'CREATE TABLE chat_reads (uid TEXT NOT NULL, room TEXT NOT NULL, id BIGINT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (uid, room))',
  'CREATE TABLE chat_room_counters (room TEXT NOT NULL PRIMARY KEY, last_id BIGINT NOT NULL)',
  'CREATE UNIQUE INDEX chat_messages_cid ON chat_messages (room, sender, cid) WHERE cid IS NOT NULL',
]

const databases: [string, () => Promise<() => Database>][] = [
  ['sqlite', async () => {
    const path = sqlitePath()
    return () => createDatabase(nodeSqlite({ path }))
  }],
  ['postgresql', async () => {
    const url = await ownPostgresDatabase()
    return () => createDatabase(postgresql({ url }))
  }],
]

describe.each(databases)('a database made before rooms had members: %s', (_name, prepare) => {
  it('opens in place with every message, reaction and read position kept, and takes records and members', async () => {
    const openDatabase = await prepare()
    const old = openDatabase()
    for (const statement of BEFORE_MEMBERS_SCHEMA) await old.exec(statement)
    await old.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, rev) VALUES ('lobby', 1, 'u-alice', 'Alice', 'hello', 1, 'c-1', 3), ('lobby', 2, 'u-bob', 'Bob', 'hi', 2, NULL, NULL)`)
    await old.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts, kind, target) VALUES ('lobby', 3, 'u-bob', 'Bob', '+👍', 3, 'reaction', 1)`)
    await old.exec(`INSERT INTO chat_reactions (room, target, emoji, uid) VALUES ('lobby', 1, '👍', 'u-bob')`)
    await old.exec(`INSERT INTO chat_reads (uid, room, id, ts) VALUES ('u-alice', 'lobby', 1, 1)`)
    await old.dispose()

    const log = track(createDb0RoomLog(openDatabase))
    expect(await log.replaySince('lobby', undefined, 10)).toEqual([
      { id: 2, room: 'lobby', user: 'Bob', message: 'hi', ts: 2, uid: 'u-bob' },
      { id: 1, room: 'lobby', user: 'Alice', message: 'hello', ts: 1, cid: 'c-1', uid: 'u-alice', rev: 3, reactions: { '👍': ['u-bob'] } },
    ])
    expect(await log.readState('lobby', 'u-alice')).toMatchObject({ read: 1, unread: 1, upTo: 3 })
    expect(await log.roomRecord('lobby')).toBeUndefined()
    expect(await log.createRoom({ id: 'lobby', title: 'Lobby', topic: '', visibility: 'public', kind: 'room', createdBy: null, createdAt: 4 })).toBe(true)
    await log.saveMember({ room: 'lobby', uid: 'u-alice', role: 'owner', joinedAt: 4 })
    expect((await log.append({ room: 'lobby', user: 'Alice', sender: 'u-alice', message: 'after', ts: 5 })).message.id).toBe(4)
    // Opened again (a restart, a second instance): nothing changes.
    const reopened = track(createDb0RoomLog(openDatabase))
    expect(await reopened.member('lobby', 'u-alice')).toMatchObject({ role: 'owner' })
    expect((await reopened.replaySince('lobby', undefined, 10)).map(message => message.id)).toEqual([2, 1, 4])
  })
})

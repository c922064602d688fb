import { rmSync, statSync, writeFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { describe, expect, it } from 'vitest'
import { createDb0RoomLog, SQLITE_BATCH_MAX } from '../../src/runtime/server/utils/roomLog.db0'
import { SQLITE_WAL_MAX_BYTES } from '../../src/runtime/server/utils/sqliteCheckpoint'
import { READ_SCAN, RoomLogInputError, RoomLogRefusal } from '../../src/runtime/server/utils/roomLog'
import { holdSqliteLock } from '../utils/faults'
import { closedAfterAll, POSTGRES_URL, roomLogBackends, sqlitePath } from '../utils/roomLogs'

const backends = roomLogBackends('nuxt-chat-log-')
const opened = closedAfterAll()

// Not on the shared PostgreSQL: pruning by a short age there would take other test runs' positions.
describe.each(backends.filter(([name]) => name !== 'postgresql'))('read positions under retention: %s', (_name, create) => {
  it('pruneReads deletes positions idle past maxAge in rooms with no message within it (or none), and only those', async () => {
    const log = create()
    opened.push(log)
    const [stale, empty, active, fresh] = ['stale', 'empty', 'active', 'fresh'].map(name => `${name}-${randomUUID().slice(0, 8)}`) as [string, string, string, string]
    const message = (name: string, ts: number) => ({ room: name, user: 'alice', sender: 'u2', message: 'hi', ts })
    await log.append(message(stale, Date.now() - 60_000))
    await log.append(message(active, Date.now() - 60_000))
    for (const name of [stale, empty, active]) await log.joinRead(name, 'u1')
    await new Promise(resolve => setTimeout(resolve, 120))
    // A newer message keeps `active` in retention; `fresh` was joined just now.
    await log.append(message(active, Date.now()))
    await log.joinRead(fresh, 'u1')
    const first = await log.pruneReads(100, 1)
    expect(first).toHaveLength(1)
    const pruned = [...first, ...await log.pruneReads(100, 100)]
    expect(pruned.toSorted((x, y) => x.room < y.room ? -1 : 1)).toEqual([{ uid: 'u1', room: empty }, { uid: 'u1', room: stale }].toSorted((x, y) => x.room < y.room ? -1 : 1))
    expect(await log.pruneReads(100, 100)).toEqual([])
    expect((await log.readRooms('u1', 10)).toSorted()).toEqual([active, fresh].toSorted())
    expect(await log.readState(stale, 'u1')).toBeUndefined()
    expect(await log.readState(empty, 'u1')).toBeUndefined()
  })

  it('pruneReads keeps a kept membership\'s idle position (a moderator, a private room\'s member); a plain membership of a public room goes with its position; a ban stays', async () => {
    const log = create()
    opened.push(log)
    const [team, secret, joined, banned] = ['team', 'secret', 'joined', 'banned'].map(name => `${name}-${randomUUID().slice(0, 8)}`) as [string, string, string, string]
    await log.createRoom({ id: secret, title: 'Secret', topic: '', visibility: 'private', kind: 'room', createdBy: null, createdAt: 1 })
    for (const name of [team, secret, joined, banned]) {
      await log.joinRead(name, 'u1')
      await log.saveMember({ room: name, uid: 'u1', role: name === team ? 'moderator' : 'member', joinedAt: 1, ...(name === banned ? { banned: true as const } : {}) })
    }
    await new Promise(resolve => setTimeout(resolve, 120))
    expect((await log.pruneReads(100, 100)).toSorted((x, y) => x.room < y.room ? -1 : 1)).toEqual([{ uid: 'u1', room: banned }, { uid: 'u1', room: joined }].toSorted((x, y) => x.room < y.room ? -1 : 1))
    expect((await log.readRooms('u1', 10)).toSorted()).toEqual([team, secret].toSorted())
    expect((await log.memberRooms('u1', 10)).toSorted()).toEqual([team, secret].toSorted())
    expect(await log.member(joined, 'u1')).toBeUndefined()
    expect(await log.member(banned, 'u1')).toMatchObject({ banned: true })
  })
})

describe.each(backends)('room log: %s', (_name, create) => {
  const open = () => {
    const log = create()
    opened.push(log)
    return log
  }
  const room = () => `unit-${randomUUID().slice(0, 8)}`
  const input = (roomName: string, message: string, cid?: string, sender = '') => ({ room: roomName, user: 'alice', sender, message, ts: Date.now(), cid })

  it('keeps a user\'s latest name and reads back only those it has, text exactly', async () => {
    const log = open()
    const [ann, bob, nobody] = ['ann', 'bob', 'nobody'].map(name => `u-${name}-${randomUUID().slice(0, 8)}`)
    await log.saveUserName(ann!, 'Ann', 1)
    await log.saveUserName(bob!, 'Bob \'the\' 🦊', 2)
    await log.saveUserName(ann!, 'Ann B.', 3)
    const names = await log.userNames([ann!, bob!, nobody!])
    expect(Object.fromEntries(names)).toEqual({ [ann!]: 'Ann B.', [bob!]: 'Bob \'the\' 🦊' })
    expect((await log.userNames([])).size).toBe(0)
  })

  it('assigns contiguous, increasing ids per room', async () => {
    const log = open()
    const [a, b] = [room(), room()]
    const ids = []
    for (let i = 0; i < 5; i++) ids.push((await log.append(input(a, `m${i}`))).message.id)
    expect(ids).toEqual([1, 2, 3, 4, 5])
    expect((await log.append(input(b, 'other'))).message.id).toBe(1)
    expect(await log.lastId(a)).toBe(5)
    expect(await log.lastId(room())).toBe(0)
  })

  it('keeps ids unique under concurrent appends', async () => {
    const log = open()
    const name = room()
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(input(name, `c${i}`))))
    const ids = results.map(result => result.message.id).sort((x, y) => x - y)
    expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
  })

  it('replays the messages after a cursor, oldest first, newest `limit` of them', async () => {
    const log = open()
    const name = room()
    for (let i = 1; i <= 10; i++) await log.append(input(name, `m${i}`))
    expect((await log.replaySince(name, 7, 100)).map(m => m.message)).toEqual(['m8', 'm9', 'm10'])
    expect((await log.replaySince(name, undefined, 3)).map(m => m.id)).toEqual([8, 9, 10])
    expect((await log.replaySince(name, 2, 3)).map(m => m.id)).toEqual([8, 9, 10])
    expect((await log.replaySince(name, 10, 5))).toEqual([])
    expect((await log.between(name, 3, 6)).map(m => m.id)).toEqual([4, 5])
  })

  it('pages older history: the newest `limit` before an id, oldest first, also past pruned ids', async () => {
    const log = open()
    const name = room()
    for (let i = 1; i <= 10; i++) await log.append(input(name, `m${i}`))
    expect((await log.before(name, 8, 3)).map(m => m.id)).toEqual([5, 6, 7])
    expect((await log.before(name, 3, 5)).map(m => m.id)).toEqual([1, 2])
    expect((await log.before(name, 1, 5))).toEqual([])
    expect((await log.before(name, 1e9, 2)).map(m => m.message)).toEqual(['m9', 'm10'])
    await log.prune(name, { max: 4, maxAge: 0 })
    expect((await log.before(name, 9, 10)).map(m => m.id)).toEqual([7, 8])
  })

  it('stores edits and deletes as changes numbered in the sequence, applied with them, never replayed as messages; a delete leaves a tombstone without text, also of its edits', async () => {
    const log = open()
    const name = room()
    await log.append(input(name, 'secret one', 'c-1', 'u1'))
    await log.append(input(name, 'two', undefined, 'u1'))
    const editing = await log.append({ ...input(name, 'secret edited', 'c-2', 'u1'), kind: 'edit', target: 1 })
    expect(editing.message).toMatchObject({ id: 3, kind: 'edit', target: 1 })
    expect(await log.message(name, 1)).toMatchObject({ message: 'secret edited', edited: 3 })
    expect((await log.byCid(name, 'u1', 'c-2'))?.id).toBe(3)
    expect(await log.byCid(name, 'u2', 'c-2')).toBeUndefined()
    // A repeated cid stores nothing and applies nothing again.
    expect((await log.append({ ...input(name, 'secret again', 'c-2', 'u1'), kind: 'edit', target: 1 })).duplicate).toBe(true)
    expect((await log.message(name, 1))?.message).toBe('secret edited')
    await log.append({ ...input(name, '', 'c-3', 'u1'), kind: 'delete', target: 1 })
    // A change of a deleted message is refused by the store itself (revision 5): nothing stored.
    await expect(log.append({ ...input(name, 'secret late', undefined, 'u1'), kind: 'edit', target: 1 })).rejects.toMatchObject({ code: 'not_found' })
    await expect(log.append({ ...input(name, '', 'c-4', 'u1'), kind: 'delete', target: 1 })).rejects.toBeInstanceOf(RoomLogRefusal)
    expect(await log.lastId(name)).toBe(4)
    const all = await log.replaySince(name, undefined, 100)
    // In the order of their numbers: message 1 stands at its latest change.
    expect(all.map(m => [m.id, m.kind ?? 'message', m.deleted ?? false, m.rev])).toEqual([[2, 'message', false, undefined], [1, 'message', true, 4]])
    // The changes are kept for gap filling and cid de-duplication.
    const rows = await log.between(name, 0, 10)
    expect(rows.map(m => [m.id, m.kind ?? 'message', m.deleted ?? false])).toEqual([[1, 'message', true], [2, 'message', false], [3, 'edit', true], [4, 'delete', false]])
    expect(JSON.stringify([...all, ...rows])).not.toContain('secret')
    await expect(log.append({ ...input(name, 'x'), kind: 'edit', target: 0 })).rejects.toBeInstanceOf(RoomLogInputError)
  })

  it('keeps who reacted with what per message, replayed with the message', async () => {
    const log = open()
    const name = room()
    await log.append(input(name, 'hello', undefined, 'u1'))
    const react = (emoji: string, uid: string, target = 1) => log.append({ ...input(name, emoji, undefined, uid), kind: 'reaction', target })
    await react('👍', 'u1')
    await react('👍', 'u2')
    await react('🎉', 'u2')
    // The store decides the toggle: a second 🎉 from u2 takes it back.
    expect((await react('🎉', 'u2')).message).toMatchObject({ id: 5, kind: 'reaction', message: '-🎉' })
    const replayed = await log.replaySince(name, undefined, 10)
    expect(replayed).toHaveLength(1)
    expect(replayed[0]).toMatchObject({ id: 1, rev: 5, reactions: { '👍': ['u1', 'u2'] } })
    expect((await log.between(name, 1, 3))[0]).toMatchObject({ kind: 'reaction', target: 1, message: '+👍' })
    expect((await log.message(name, 1))?.reactions).toEqual({ '👍': ['u1', 'u2'] })
    expect((await log.before(name, 2, 1))[0]!.reactions).toEqual({ '👍': ['u1', 'u2'] })
    // A resume after 2 gets message 1 once, with its state.
    expect((await log.replaySince(name, 2, 10)).map(m => [m.id, m.rev])).toEqual([[1, 5]])
    // Bounds, checked by the store: 5 per person, 20 different emoji per message; a missing target is not_found.
    for (let n = 0; n < 4; n++) await react(`u1-${n}`, 'u1')
    await expect(react('u1-4', 'u1')).rejects.toMatchObject({ code: 'rejected', message: expect.stringContaining('5 reactions per person') })
    for (let n = 0; n < 15; n++) await react(`p${n}`, `p${n}`)
    await expect(react('one too many', 'u3')).rejects.toMatchObject({ code: 'rejected', message: expect.stringContaining('20 different') })
    // Taking one back, or joining an emoji already there, stays possible at the bounds.
    expect((await react('👍', 'u3')).message.message).toBe('+👍')
    const reactions = (await log.message(name, 1))!.reactions!
    expect(Object.keys(reactions)).toHaveLength(20)
    expect(Object.values(reactions).filter(users => users.includes('u1'))).toHaveLength(5)
    expect((await react('u1-0', 'u1')).message.message).toBe('-u1-0')
    await expect(react('👍', 'u3', 99)).rejects.toMatchObject({ code: 'not_found' })
  })

  it('keeps reactions named like an object\'s own keys (`__proto__`, `constructor`) as any others: the message stays readable', async () => {
    const log = open()
    const name = room()
    await log.append(input(name, 'hello', undefined, 'u1'))
    const react = (emoji: string, uid: string) => log.append({ ...input(name, emoji, undefined, uid), kind: 'reaction', target: 1 })
    for (const emoji of ['__proto__', 'constructor', 'hasOwnProperty']) expect((await react(emoji, 'u2')).message.message).toBe(`+${emoji}`)
    expect((await react('constructor', 'u2')).message.message).toBe('-constructor')
    const expected = JSON.parse('{"__proto__":["u2"],"hasOwnProperty":["u2"]}')
    for (const read of [await log.message(name, 1), (await log.replaySince(name, undefined, 10))[0], (await log.before(name, 2, 1))[0]]) {
      expect(JSON.parse(JSON.stringify(read?.reactions))).toEqual(expected)
    }
  })

  it('keeps a read position per user and room: forward only, never past the newest id, created once by a join', async () => {
    const log = open()
    const [name, other] = [room(), room()]
    expect(await log.readState(name, 'u1')).toBeUndefined()
    await log.append(input(name, 'one', undefined, 'u2'))
    expect(await log.joinRead(name, 'u1')).toEqual({ created: true, evicted: [] })
    expect(await log.joinRead(name, 'u1')).toEqual({ created: false, evicted: [] })
    expect(await log.readState(name, 'u1')).toEqual({ room: name, read: 1, unread: 0, mentions: 0, upTo: 1 })
    await log.append(input(name, 'two', undefined, 'u2'))
    await log.append(input(name, 'mine', undefined, 'u1'))
    await log.append(input(name, 'three', undefined, 'u2'))
    await log.append({ ...input(name, '', undefined, 'u2'), kind: 'delete', target: 4 })
    await log.append({ ...input(name, '👍', undefined, 'u2'), kind: 'reaction', target: 2 })
    // Unread: live messages from others above the position (not mine, not deleted, not events).
    expect(await log.readState(name, 'u1', true)).toMatchObject({ read: 1, unread: 1, upTo: 6, last: { id: 3, message: 'mine' } })
    expect(await log.markRead(name, 'u1', 2)).toBe(2)
    expect(await log.markRead(name, 'u1', 1)).toBe(2)
    expect(await log.markRead(name, 'u1', 99)).toBe(6)
    expect(await log.readState(name, 'u1')).toMatchObject({ read: 6, unread: 0 })
    expect(await log.joinRead(other, 'u1')).toEqual({ created: true, evicted: [] })
    expect(await log.readRooms('u1', 10)).toEqual(expect.arrayContaining([name, other]))
    expect(await log.readRooms('u1', 1)).toHaveLength(1)
    expect(await log.readRooms('u2', 10)).toEqual([])
  })

  it('keeps at most `max` read positions per user: a join past it deletes the least recently read, never the one it made', async () => {
    const log = open()
    // A user of this test's own: the PostgreSQL table is shared with other runs.
    const uid = `u-${randomUUID()}`
    const names = Array.from({ length: 7 }, (_, index) => `${room()}-${index}`)
    const evicted: string[] = []
    for (const name of names) {
      const joined = await log.joinRead(name, uid, 5)
      expect(joined.created).toBe(true)
      evicted.push(...joined.evicted)
      // Distinct times: which is oldest is then certain.
      await new Promise(resolve => setTimeout(resolve, 3))
    }
    expect(evicted).toEqual(names.slice(0, 2))
    // Reading one (its position moves) makes it the most recent: the next join evicts the next oldest instead.
    await log.append(input(names[2]!, 'news', undefined, 'u2'))
    expect(await log.markRead(names[2]!, uid)).toBe(1)
    await new Promise(resolve => setTimeout(resolve, 3))
    expect((await log.joinRead(`${room()}-new`, uid, 5)).evicted).toEqual([names[3]])
    expect(await log.readRooms(uid, 100)).toHaveLength(5)
    expect(await log.readState(names[0]!, uid)).toBeUndefined()
    // A join of a room already held evicts nothing, and without `max` there is no cap.
    expect(await log.joinRead(names[6]!, uid, 1)).toEqual({ created: false, evicted: [] })
    expect((await log.joinRead(`${room()}-uncapped`, uid)).evicted).toEqual([])
    expect(await log.readRooms(uid, 100)).toHaveLength(6)
  })

  it('a position made as never read (`movedAt` 0, another person\'s invite) is the first to go under the cap, before any room the user read', async () => {
    const log = open()
    const uid = `u-${randomUUID()}`
    const [own, read] = [`${room()}-own`, `${room()}-read`]
    for (const name of [own, read]) {
      await log.joinRead(name, uid, 3)
      await new Promise(resolve => setTimeout(resolve, 3))
    }
    // Three invites in a row: each keeps the one just made and the user's own two, never one of theirs for it.
    const invited = [1, 2, 3].map(index => `${room()}-invited-${index}`)
    const evicted: string[] = []
    for (const name of invited) evicted.push(...(await log.joinRead(name, uid, 3, 0)).evicted)
    expect(evicted).toEqual(invited.slice(0, 2))
    expect((await log.readRooms(uid, 10)).toSorted()).toEqual([own, read, invited[2]!].toSorted())
  })

  it('never evicts the position of a kept membership (a role above member, a private room), nor counts it against the cap; a plain membership of a public room is bounded with positions and goes with one', async () => {
    const log = open()
    const uid = `u-${randomUUID()}`
    const [team, secret, joined, banned, plain, next] = ['team', 'secret', 'joined', 'banned', 'plain', 'next'].map(name => `${room()}-${name}`) as [string, string, string, string, string, string]
    await log.createRoom({ id: secret, title: 'Secret', topic: '', visibility: 'private', kind: 'room', createdBy: null, createdAt: 1 })
    // Oldest first: the kept memberships, a plain one, the ban, a room with no membership.
    for (const name of [team, secret, joined, banned, plain]) {
      await log.joinRead(name, uid, 10)
      await new Promise(resolve => setTimeout(resolve, 3))
    }
    await log.saveMember({ room: team, uid, role: 'owner', joinedAt: 1 })
    await log.saveMember({ room: secret, uid, role: 'member', joinedAt: 1 })
    await log.saveMember({ room: joined, uid, role: 'member', joinedAt: 1 })
    await log.saveMember({ room: banned, uid, role: 'member', joinedAt: 1, banned: true })
    // At most 2 of the others: the new one and the newest other that is no kept membership.
    expect((await log.joinRead(next, uid, 2)).evicted.toSorted()).toEqual([joined, banned].toSorted())
    expect((await log.readRooms(uid, 10)).toSorted()).toEqual([team, secret, plain, next].toSorted())
    expect(await log.member(joined, uid)).toBeUndefined()
    expect(await log.member(banned, uid)).toMatchObject({ banned: true })
    expect((await log.memberRooms(uid, 10)).toSorted()).toEqual([team, secret].toSorted())
  })

  it('lists a person\'s memberships (not their bans, not positions without one), most recently active first, at most `limit`', async () => {
    const log = open()
    const uid = `u-${randomUUID()}`
    const [old, read, fresh, banned, positionOnly] = ['old', 'read', 'fresh', 'banned', 'position'].map(name => `${room()}-${name}`) as [string, string, string, string, string]
    await log.saveMember({ room: old, uid, role: 'member', joinedAt: 1000 })
    await log.saveMember({ room: read, uid, role: 'member', joinedAt: 2000 })
    await log.saveMember({ room: fresh, uid, role: 'moderator', joinedAt: Date.now() + 60_000 })
    await log.saveMember({ room: banned, uid, role: 'member', joinedAt: Date.now() + 120_000, banned: true })
    await log.joinRead(positionOnly, uid)
    // A position moved now makes `read` more recent than `old`; `fresh` joined later still.
    await log.joinRead(read, uid)
    expect(await log.memberRooms(uid, 10)).toEqual([fresh, read, old])
    expect(await log.memberRooms(uid, 2)).toEqual([fresh, read])
    expect(await log.memberRooms(`u-${randomUUID()}`, 10)).toEqual([])
  })

  it('a read only moves an existing position: none is created for a room never joined, nor again after it is forgotten', async () => {
    const log = open()
    const name = room()
    // A user of this test's own: the PostgreSQL table is shared with other runs.
    const uid = `u-${randomUUID()}`
    await log.append(input(name, 'one', undefined, 'u2'))
    expect(await log.markRead(name, uid)).toBeUndefined()
    expect(await log.readState(name, uid)).toBeUndefined()
    expect(await log.readRooms(uid, 10)).toEqual([])
    expect((await log.joinRead(name, uid)).created).toBe(true)
    expect(await log.forgetRead(name, uid)).toBe(true)
    expect(await log.forgetRead(name, uid)).toBe(false)
    expect(await log.markRead(name, uid, 1)).toBeUndefined()
    expect(await log.readState(name, uid)).toBeUndefined()
    expect(await log.readRooms(uid, 10)).toEqual([])
  })

  it('counts messages only: READ_SCAN reactions after the position do not hide the messages after them from the unread count or `last`', async () => {
    const log = open()
    const name = room()
    const uid = `u-${randomUUID()}`
    await log.joinRead(name, uid)
    await log.append(input(name, 'one', undefined, 'u2'))
    await log.append(input(name, 'two', undefined, 'u2'))
    // Reactions after the last message: rows an unread count or a `last` lookup would walk over.
    await Promise.all(Array.from({ length: READ_SCAN }, (_, n) => log.append({ ...input(name, '👍', undefined, `r${n}`), kind: 'reaction', target: 1 })))
    expect(await log.readState(name, uid, true)).toEqual({ room: name, read: 0, unread: 2, mentions: 0, upTo: READ_SCAN + 2, last: expect.objectContaining({ id: 2, message: 'two' }) })
    for (const text of ['three', 'four', 'five']) await log.append(input(name, text, undefined, 'u2'))
    // Changes are not rows a count scans (revision 5): all five counted; the newest message is found.
    expect(await log.readState(name, uid, true)).toMatchObject({ read: 0, unread: 5, upTo: READ_SCAN + 5, last: { id: READ_SCAN + 5, message: 'five' } })
    await log.markRead(name, uid, READ_SCAN)
    expect(await log.readState(name, uid)).toMatchObject({ read: READ_SCAN, unread: 3 })
  }, 120_000)

  it('de-duplicates a cid per sender and keeps the original', async () => {
    const log = open()
    const name = room()
    const first = await log.append(input(name, 'hello', 'c-1', 'u1'))
    const again = await log.append(input(name, 'hello again', 'c-1', 'u1'))
    expect(again.duplicate).toBe(true)
    expect(again.message).toMatchObject({ id: first.message.id, message: 'hello', cid: 'c-1' })
    const otherSender = await log.append(input(name, 'same cid, other sender', 'c-1', 'u2'))
    expect(otherSender.duplicate).toBe(false)
    expect(await log.lastId(name)).toBe(2)
  })

  it('stores text exactly, including quotes, newlines and emoji', async () => {
    const log = open()
    const name = room()
    const text = `"quoted" 'single' \\ back\nnew line <b>html</b> 😀 ${'x'.repeat(2000)}`
    await log.append(input(name, text))
    expect((await log.replaySince(name, 0, 10))[0]!.message).toBe(text)
  })

  it('prunes to the newest `max` messages and keeps counting', async () => {
    const log = open()
    const name = room()
    for (let i = 1; i <= 30; i++) await log.append(input(name, `m${i}`))
    await log.prune(name, { max: 10, maxAge: 0 })
    const kept = await log.replaySince(name, 0, 100)
    expect(kept.map(m => m.id)).toEqual(Array.from({ length: 10 }, (_, i) => i + 21))
    expect((await log.append(input(name, 'after'))).message.id).toBe(31)
  })

  it('prunes by age, every message when all are old: the room keeps its last number, so ids never go back', async () => {
    const log = open()
    const name = room()
    const old = Date.now() - 60_000
    for (let i = 1; i <= 3; i++) await log.append({ ...input(name, `old${i}`), ts: old })
    await log.append({ ...input(name, '👍'), ts: old, kind: 'reaction', target: 3 })
    await log.prune(name, { max: 100, maxAge: 1000 })
    expect(await log.replaySince(name, undefined, 100)).toEqual([])
    expect(await log.between(name, 0, 10)).toEqual([])
    expect(await log.lastId(name)).toBe(4)
    expect((await log.append(input(name, 'new'))).message.id).toBe(5)
  })

  it('retention counts messages: history.max 10 keeps 10 messages through 30 toggles, and at most 10 changes', async () => {
    const log = open()
    const name = room()
    for (let i = 1; i <= 10; i++) await log.append(input(name, `m${i}`))
    for (let i = 1; i <= 30; i++) await log.append({ ...input(name, '👍', undefined, `u${i % 2}`), kind: 'reaction', target: 1 })
    // No message goes; the 20 oldest changes do.
    expect(await log.prune(name, { max: 10, maxAge: 0 })).toBe(20)
    expect((await log.replaySince(name, undefined, 10)).map(m => m.id).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
    expect((await log.between(name, 10, 41)).map(m => m.id)).toEqual(Array.from({ length: 10 }, (_, i) => i + 31))
    expect((await log.append(input(name, 'next'))).message.id).toBe(41)
  })

  it('refuses values the database cannot hold as bad input, and stores nothing', async () => {
    const log = open()
    const name = room()
    const bad = [
      input(name, 'nul \u0000 inside'),
      input(name, 'lone \uD800 surrogate'),
      input(name, 'ok', 'x\u0000'),
      input(name, 'ok', 'has space'),
      input(name, 'ok', 'c'.repeat(65)),
      input(name, 'ok', 'c-1', 'sender\u0000'),
      { ...input(name, 'ok'), user: '\uDC00' },
      input('bad room!', 'ok'),
    ]
    for (const value of bad) await expect(log.append(value), JSON.stringify(value)).rejects.toBeInstanceOf(RoomLogInputError)
    expect(await log.lastId(name)).toBe(0)
    expect((await log.append(input(name, 'fine 😀', 'Ab0._:-'))).message.id).toBe(1)
  })

  it('treats history.max 0 as no count limit, and ids never go back whatever the policy', async () => {
    const log = open()
    const name = room()
    for (let i = 1; i <= 5; i++) await log.append(input(name, `m${i}`))
    expect(await log.prune(name, { max: 0, maxAge: 0 })).toBe(0)
    expect((await log.replaySince(name, 0, 100)).map(m => m.id)).toEqual([1, 2, 3, 4, 5])
    // The harshest policy removes every message; the room's last number stays, so the counter goes on.
    await new Promise(resolve => setTimeout(resolve, 5))
    await log.prune(name, { max: 1, maxAge: 1 })
    expect((await log.replaySince(name, 0, 100)).map(m => m.id)).toEqual([])
    expect((await log.append(input(name, 'next'))).message.id).toBe(6)
  })

  it('prunes in steps of at most `limit` rows, and lists every room a page at a time', async () => {
    const log = open()
    const prefix = `list-${randomUUID().slice(0, 6)}`
    const names = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`]
    for (const name of names) for (let i = 1; i <= 7; i++) await log.append(input(name, `m${i}`))
    expect(await log.prune(names[0]!, { max: 1, maxAge: 0 }, 4)).toBe(4)
    expect(await log.prune(names[0]!, { max: 1, maxAge: 0 }, 4)).toBe(2)
    expect(await log.prune(names[0]!, { max: 1, maxAge: 0 }, 4)).toBe(0)
    const seen: string[] = []
    let after = `${prefix}-`
    for (let page = 0; page < 10; page++) {
      const rooms = (await log.rooms(after, 2)).filter(name => name.startsWith(prefix))
      if (!rooms.length) break
      seen.push(...rooms)
      after = rooms.at(-1)!
    }
    expect(seen).toEqual(names)
  })
})

describe('room log: sqlite durability', () => {
  it('keeps messages and cids across a reopen (restart)', async () => {
    const path = sqlitePath('nuxt-chat-log-')
    const first = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    await first.append({ room: 'r', user: 'a', sender: '', message: 'kept', ts: 1, cid: 'c1' })
    await first.close()
    const second = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(second)
    expect((await second.replaySince('r', undefined, 10)).map(m => m.message)).toEqual(['kept'])
    expect((await second.append({ room: 'r', user: 'a', sender: '', message: 'kept', ts: 2, cid: 'c1' })).duplicate).toBe(true)
    expect((await second.append({ room: 'r', user: 'a', sender: '', message: 'next', ts: 3 })).message.id).toBe(2)
  })
})

describe('room log: sqlite and the event loop', () => {
  it('splits a burst of appends into transactions of at most SQLITE_BATCH_MAX, a turn of the loop apart, ids in order', async () => {
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path: sqlitePath('nuxt-chat-log-') })))
    opened.push(log)
    await log.append({ room: 'r', user: 'a', sender: '', message: 'first', ts: 1 })
    const count = SQLITE_BATCH_MAX * 3 + 7
    let done = 0
    const appends = Array.from({ length: count }, (_, i) => log.append({ room: 'r', user: 'a', sender: '', message: `m${i}`, ts: 1 }).then((result) => {
      done++
      return result.message.id
    }))
    // Appends done at each turn of the loop: I/O and timers get a turn between two batches.
    const turns: number[] = []
    const everyTurn = () => {
      turns.push(done)
      if (done < count && turns.length < 10_000) setImmediate(everyTurn)
    }
    setImmediate(everyTurn)
    const ids = await Promise.all(appends)
    expect(ids).toEqual(Array.from({ length: count }, (_, i) => i + 2))
    const perTurn = turns.slice(1).map((n, i) => n - turns[i]!)
    expect(Math.max(...perTurn)).toBe(SQLITE_BATCH_MAX)
  })

  it('keeps one transaction, and so the fan-out that follows it in the same task, to at most 64 appends', async () => {
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path: sqlitePath('nuxt-chat-log-') })))
    opened.push(log)
    await log.append({ room: 'r', user: 'a', sender: '', message: 'first', ts: 1 })
    // A backlog of 150 (one stall at 1,000 msg/s): settled over at least 3 turns, at most 64 per turn.
    let done = 0
    const turns: number[] = []
    const everyTurn = () => {
      turns.push(done)
      if (done < 150 && turns.length < 10_000) setImmediate(everyTurn)
    }
    // Counting from before the first batch.
    setImmediate(everyTurn)
    const appends = Array.from({ length: 150 }, (_, i) => log.append({ room: `r${i % 50}`, user: 'a', sender: '', message: `m${i}`, ts: 1 }).then(() => done++))
    await Promise.all(appends)
    turns.push(done)
    const perTurn = turns.slice(1).map((n, i) => n - turns[i]!).filter(n => n > 0)
    expect(perTurn.length).toBeGreaterThanOrEqual(3)
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(64)
  })

  it('checkpoints the write-ahead log in a worker thread, not in a COMMIT on the event loop', async () => {
    const path = sqlitePath('nuxt-chat-log-')
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    await log.append({ room: 'r', user: 'a', sender: '', message: 'first', ts: 1 })
    const before = statSync(path).size
    // Far below the 1000 pages of SQLite's own automatic checkpoint: only the worker copies them.
    await Promise.all(Array.from({ length: 300 }, (_, i) => log.append({ room: 'r', user: 'a', sender: '', message: 'x'.repeat(200) + i, ts: 1 })))
    for (let i = 0; i < 40 && statSync(path).size <= before; i++) await new Promise(resolve => setTimeout(resolve, 100))
    expect(statSync(path).size).toBeGreaterThan(before)
    expect(await log.replaySince('r', undefined, 1)).toHaveLength(1)
  })

  it('keeps the write-ahead log bounded under writes that never pause (a passive checkpoint alone never catches up)', async () => {
    const path = sqlitePath('nuxt-chat-log-')
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    await log.append({ room: 'r', user: 'a', sender: '', message: 'first', ts: 1 })
    const walBytes = () => {
      try {
        return statSync(`${path}-wal`).size
      }
      catch {
        return 0
      }
    }
    // 16 appends in flight, 4 KB each, until 12 times the bound's worth of log is written (a loaded machine takes longer than 4 s).
    let largest = 0
    let written = 0
    const until = performance.now() + 25_000
    const writer = async (lane: number) => {
      while (written < 12 * SQLITE_WAL_MAX_BYTES && performance.now() < until) {
        await log.append({ room: `w${lane % 4}`, user: 'a', sender: '', message: 'x'.repeat(4000), ts: 1 })
        written += 4000
        largest = Math.max(largest, walBytes())
      }
    }
    await Promise.all(Array.from({ length: 16 }, (_, lane) => writer(lane)))
    expect(written).toBeGreaterThan(10 * SQLITE_WAL_MAX_BYTES)
    // Was 0.4-0.9 GB after 4 s (16-64 MB now): the writer's own checkpoint may lose a race with the worker's now and then.
    expect(largest).toBeLessThan(8 * SQLITE_WAL_MAX_BYTES)
  }, 40_000)
})

describe('room log: sqlite faults', () => {
  const message = (text: string, cid?: string) => ({ room: 'r', user: 'a', sender: '', message: text, ts: Date.now(), cid })

  it('a write lock held by another process: appends fail in about 2 s with an error, the event loop stays free, the next append after it works', async () => {
    const path = sqlitePath('nuxt-chat-log-')
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    expect((await log.append(message('before'))).message.id).toBe(1)
    const lock = await holdSqliteLock(path, 3000)
    // The loop's longest stall while appends wait for the lock (in wall time: a busy timeout sleeps inside the call, burning no CPU).
    let stall = 0
    let last = performance.now()
    const tick = setInterval(() => {
      stall = Math.max(stall, performance.now() - last)
      last = performance.now()
    }, 10)
    const started = performance.now()
    const during = await Promise.allSettled([log.append(message('during 1', 'd1')), log.append(message('during 2', 'd2'))])
    const failedAfter = performance.now() - started
    clearInterval(tick)
    expect(during.map(result => result.status)).toEqual(['rejected', 'rejected'])
    expect(String((during[0] as PromiseRejectedResult).reason)).toMatch(/locked/)
    expect(failedAfter).toBeGreaterThan(1500)
    expect(failedAfter).toBeLessThan(2900)
    expect(stall).toBeLessThan(200)
    await lock.released
    const recovered = performance.now()
    expect((await log.append(message('during 1', 'd1'))).message.id).toBe(2)
    expect(performance.now() - recovered).toBeLessThan(2000)
    expect((await log.replaySince('r', 0, 10)).map(m => m.message)).toEqual(['before', 'during 1'])
  })

  it('a corrupted file: appends fail with an error, never hang; once the file is replaced the next append works', async () => {
    const path = sqlitePath('nuxt-chat-log-')
    writeFileSync(path, Buffer.alloc(8192, 'x'))
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    for (let i = 0; i < 3; i++) await expect(log.append(message(`m${i}`))).rejects.toThrow(/not a database/)
    await expect(log.replaySince('r', 0, 10)).rejects.toThrow(/not a database/)
    rmSync(path)
    expect((await log.append(message('after'))).message.id).toBe(1)
  })
})

describe('room log: postgresql faults', () => {
  it('a bad value costs its own append only: 20 senders with NUL cids next to 250 sends in other rooms', async () => {
    const log = createDb0RoomLog(() => createDatabase(postgresql({ url: POSTGRES_URL })))
    opened.push(log)
    const prefix = `nul-${randomUUID().slice(0, 8)}`
    const bad = Array.from({ length: 20 }, (_, i) => log.append({ room: `${prefix}-bad`, user: 'm', sender: `s${i}`, message: 'x', ts: Date.now(), cid: 'x\u0000' }))
    const good = Array.from({ length: 250 }, (_, i) => log.append({ room: `${prefix}-${i % 10}`, user: 'u', sender: '', message: `good ${i}`, ts: Date.now() }))
    const [badResults, goodResults] = await Promise.all([Promise.allSettled(bad), Promise.allSettled(good)])
    expect(goodResults.filter(result => result.status === 'rejected')).toEqual([])
    for (const result of badResults) expect((result as PromiseRejectedResult).reason).toBeInstanceOf(RoomLogInputError)
  })
})

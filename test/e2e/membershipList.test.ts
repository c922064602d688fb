/**
 * The rooms list made of memberships (issue 23, docs/PROTOCOL.md "Rooms list"), on SQLite, against
 * a built server with real sockets: a database an earlier version wrote (its lists were the read
 * positions) opens with every signed-in user's list as it was, once; from then on a position alone
 * lists nothing, and choosing to join or speaking adds a room to every open list of the person.
 */
import { mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sleep } from '../utils/chaos'
import { ChatSocket, ChatSocketV2, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

type Frame = Record<string, unknown>
const headersOf = (uid: string) => ({ cookie: `session=${uid}` })
const isList = (frame: { type: string }) => frame.type === 'rooms'
const roomsOf = (frame: Frame) => (frame.rooms as Frame[]).map(entry => entry.room)
const listed = (frames: Frame[], room: string) => frames.some(frame => frame.type === 'room' && frame.room === room && !frame.removed)

/** The tables and rows an earlier version left: Alice read three rooms, one of them private (she was removed from it). */
function earlierVersion(file: string, now: number) {
  const db = new DatabaseSync(file)
  db.exec(`CREATE TABLE chat_messages (room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL, cid TEXT, PRIMARY KEY (room, id));
    CREATE TABLE chat_reads (uid TEXT NOT NULL, room TEXT NOT NULL, id BIGINT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (uid, room));
    CREATE TABLE chat_rooms (id TEXT NOT NULL PRIMARY KEY, title TEXT NOT NULL, topic TEXT NOT NULL DEFAULT '', visibility TEXT NOT NULL, kind TEXT NOT NULL, created_by TEXT, created_at BIGINT NOT NULL);
    CREATE TABLE chat_members (room TEXT NOT NULL, uid TEXT NOT NULL, role TEXT NOT NULL, joined_at BIGINT NOT NULL, muted_until BIGINT, banned SMALLINT NOT NULL DEFAULT 0, PRIMARY KEY (room, uid));
    INSERT INTO chat_messages VALUES ('lobby', 1, 'user-bob', 'Bob', 'old news', ${now}, NULL), ('lobby', 2, 'user-bob', 'Bob', 'unread news', ${now}, NULL);
    INSERT INTO chat_rooms (id, title, visibility, kind, created_at) VALUES ('team', 'Team', 'public', 'room', 1), ('secret', 'Secret', 'private', 'room', 1);
    INSERT INTO chat_reads VALUES ('user-alice', 'lobby', 1, ${now - 2000}), ('user-alice', 'team', 0, ${now - 1000}), ('user-alice', 'secret', 0, ${now});`)
  db.close()
}

describe('rooms lists of memberships, SQLite', () => {
  let server: TestServer
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }

  beforeAll(async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'nuxt-chat-members-'))
    mkdirSync(join(cwd, '.data'))
    earlierVersion(join(cwd, '.data/chat.sqlite'), Date.now())
    server = await startServer({ cwd, env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
  })
  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await server?.stop()
  })

  it('an earlier version\'s read positions open as the lists they were (not a private room\'s), with their unread counts; a position made later lists nothing, also after a restart', async () => {
    const alice = headersOf('user-alice')
    const list = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: alice }))
    const first = await list.waitFor(isList, 'Alice\'s list')
    expect(roomsOf(first)).toEqual(['team', 'lobby'])
    expect((first.rooms as Frame[])[1]).toMatchObject({ room: 'lobby', read: 1, unread: 1, upTo: 2, last: { message: 'unread news' } })
    expect((first.rooms as Frame[])[0]).toMatchObject({ room: 'team', title: 'Team', role: 'member' })

    // A position as an old instance still running makes it (no membership): on no list, now or after a restart.
    // The running server writes to the file too (its indexer, a checkpoint): wait for its lock rather than fail.
    const file = new DatabaseSync(join(server.cwd, '.data/chat.sqlite'), { timeout: 10_000 })
    file.prepare('INSERT INTO chat_reads VALUES (?, ?, ?, ?)').run('user-alice', 'stray', 0, Date.now())
    file.close()
    await list.close()
    await server.stop()
    await server.start()
    const again = track(await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: alice }))
    again.send({ type: 'rooms' })
    expect(roomsOf(await again.waitFor(isList, 'the list after a restart'))).toEqual(['team', 'lobby'])
  })

  it('choosing to join a room (version 2) and speaking in one (POST) add them to the person\'s open lists; a GET that is not the app\'s page adds nothing', async () => {
    const carol = headersOf('user-carol')
    const v1List = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: carol }))
    const v2 = track(await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: carol }))
    v2.send({ type: 'rooms' })
    for (const list of [v1List, v2]) expect(roomsOf(await list.waitFor(isList, 'the empty list'))).toEqual([])
    // A plain GET (no Fetch Metadata: not a page of the app) reads the room but joins nothing.
    const plain = await fetch(server.url('/api/sse?room=glance'), { headers: carol })
    expect(plain.status).toBe(200)
    await sleep(300)
    await plain.body?.cancel()
    expect(await v2.join('joined')).toMatchObject({ type: 'caught_up' })
    expect((await postMessage(server.url('').replace(/\/$/, ''), { message: 'hello' }, { room: 'spoken' }, carol)).status).toBe(200)
    await until(() => ['joined', 'spoken'].every(room => listed(v1List.frames, room) && listed(v2.frames, room)), 'both rooms on both lists')
    expect(listed(v1List.frames, 'glance') || listed(v2.frames, 'glance')).toBe(false)
    const fresh = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: carol }))
    expect(roomsOf(await fresh.waitFor(isList, 'a new list')).toSorted()).toEqual(['joined', 'spoken'])
  })

  it('asked for again while it is read, the list answers whole lists, no error, and goes on following its rooms', async () => {
    const dan = headersOf('user-dan')
    const v2 = track(await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: dan }))
    for (const room of ['dan-a', 'dan-b']) expect(await v2.join(room)).toMatchObject({ type: 'caught_up' })
    // Back to back: each request starts before the one before it has read the store.
    for (const ref of ['r0', 'r1', 'r2']) v2.send({ type: 'rooms', ref })
    await v2.waitFor(isList, 'the list')
    await sleep(500)
    expect(v2.frames.filter(frame => frame.type === 'error')).toEqual([])
    expect(server.logs()).not.toMatch(/could not read a rooms list/)
    // One whole list for each request not yet overtaken by the next (how many: how the frames fell into reads).
    const lists = v2.frames.filter(isList).map(frame => roomsOf(frame).toSorted())
    expect(lists.length).toBeLessThanOrEqual(3)
    for (const list of lists) expect(list).toEqual(['dan-a', 'dan-b'])
    // Still followed: a message in a listed room updates it.
    expect((await postMessage(server.url('').replace(/\/$/, ''), { message: 'later' }, { room: 'dan-b' }, headersOf('user-erin'))).status).toBe(200)
    await until(() => v2.frames.some(frame => frame.type === 'room' && frame.room === 'dan-b' && (frame.last as Frame | undefined)?.message === 'later'), 'the listed room\'s update')
  })
})

/**
 * Read positions (issue 22, findings 3 and 4; docs/PROTOCOL.md "Read state" and "Rooms list"),
 * against built servers with real sockets and the fixture's toy session cookies: only the app's own
 * pages make a position (a cross-site navigation, a subresource or a link does not), a user keeps at
 * most `maxReadPositions`, retention takes the positions of rooms it emptied, and a rooms list asks
 * `chat:identify` again before it shows or streams anything of a room.
 */
import { randomUUID } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { createDatabase } from 'db0'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LIST_ADMISSION_TTL } from '../../src/runtime/server/utils/listAdmission'
import { sleep } from '../utils/chaos'
import { ChatSocket, ChatStream, postMessage, until } from '../utils/clients'
import { POSTGRES_URL, startServer, type TestServer } from '../utils/server'

const newRoom = (prefix = 'pos') => `${prefix}-${randomUUID().slice(0, 8)}`
/** A signed-in user of this test's own (the fixture's `user-…` session tokens). */
const newUser = () => {
  const id = `user-${randomUUID().slice(0, 8)}`
  return { id, headers: { cookie: `session=${id}` } }
}
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
type Frame = Record<string, unknown>
const isRead = (frame: { type: string }) => frame.type === 'read'
const isList = (frame: { type: string }) => frame.type === 'rooms'
/** Every room a rooms list connection was told of (its first list and `room` frames). */
const roomsTold = (frames: Frame[]) => new Set(frames.flatMap(frame => frame.type === 'rooms' ? (frame.rooms as Frame[]).map(entry => entry.room as string) : frame.type === 'room' ? [frame.room as string] : []))

/** Join `room` as a WebSocket client of the app (as the browser page does) and leave once the position is told. */
async function visit(server: TestServer, room: string, headers: Record<string, string>) {
  const socket = await ChatSocket.open(server.wsUrl(''), { room }, { headers })
  await socket.waitFor(isRead, `the read frame of ${room}`)
  await socket.close()
}

/**
 * A GET with exactly these headers (node:http: fetch would set its own `Sec-Fetch-Mode`), as a
 * browser sends it: its status and what arrived within `wait` ms (a stream is cut then).
 */
function browserGet(url: string, headers: Record<string, string>, wait = 300): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { headers }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', chunk => text += chunk)
      const timer = setTimeout(() => request.destroy(), wait)
      const done = () => {
        clearTimeout(timer)
        resolve({ status: response.statusCode ?? 0, text })
      }
      response.on('end', done)
      response.on('close', done)
    })
    request.on('error', reject)
    request.end()
  })
}

describe('read positions, PostgreSQL', () => {
  let server: TestServer
  let capped: TestServer
  const db = createDatabase(postgresql({ url: POSTGRES_URL }))
  const positionsOf = async (uid: string) => (await db.prepare('SELECT room FROM chat_reads WHERE uid = ?').all(uid) as { room: string }[]).map(row => row.room)
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }

  beforeAll(async () => {
    // The cap is under test here, not the rate of new rooms or joins (test/e2e/limitsModel.test.ts and limitsJoins.test.ts test those).
    const env = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false', NUXT_CHAT_JOIN_RATE_LIMIT: 'false' }
    ;[server, capped] = await Promise.all([
      startServer({ output: 'postgresql', env }),
      // The cap is runtime config like every option.
      startServer({ output: 'postgresql', env: { ...env, NUXT_CHAT_MAX_READ_POSITIONS: '3' } }),
    ])
  })

  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await Promise.all([server?.stop('SIGKILL'), capped?.stop('SIGKILL')])
    await db.dispose()
  })

  it('a cross-site navigation (or a link, frame or image) to the SSE route with the user\'s cookie is refused: no position, nobody sees them join, the room never in their list; the app\'s own page still makes one', async () => {
    const room = newRoom('csrf')
    const victim = newUser()
    const list = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: victim.headers }))
    await list.waitFor(isList, 'the victim\'s list')
    // The attacker sits in the room to see who joins.
    const attacker = track(await ChatSocket.open(server.wsUrl(''), { room, name: 'attacker' }))
    await attacker.waitFor(frame => frame.type === 'presence', 'the attacker\'s presence')

    const foreign: Record<string, Record<string, string>> = {
      'a cross-site top-level navigation': { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
      'a cross-site iframe': { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' },
      'a cross-site image': { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' },
      'a sibling subdomain\'s image': { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' },
      'a link posted in the chat itself': { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
      'a typed address': { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
    }
    for (const [what, headers] of Object.entries(foreign)) {
      const answer = await browserGet(`${httpBase(server)}/api/sse?room=${room}`, { ...victim.headers, ...headers })
      expect([what, answer.status]).toEqual([what, 403])
      expect(JSON.parse(answer.text)).toMatchObject({ type: 'error', code: 'forbidden' })
      // Siblings: the rooms list, the history page and the WebSocket route's probe answer the same.
      for (const path of [`/api/sse?rooms`, `/api/sse?room=${room}&history`, `/_ws?room=${room}`]) {
        expect([what, path, (await browserGet(`${httpBase(server)}${path}`, { ...victim.headers, ...headers })).status]).toEqual([what, path, 403])
      }
    }
    await sleep(300)
    // Nobody saw the victim come: the attacker cannot tell who visited their page.
    expect(JSON.stringify(attacker.frames)).not.toContain(victim.id)
    expect(await positionsOf(victim.id)).toEqual([])
    // A plain GET without Fetch Metadata (no browser of today sends one): it may read the room, but makes no position.
    expect((await browserGet(`${httpBase(server)}/api/sse?room=${room}`, victim.headers)).status).toBe(200)
    await sleep(300)
    expect(await positionsOf(victim.id)).toEqual([])
    expect(roomsTold(list.frames).has(room)).toBe(false)
    // A read there makes none either.
    expect((await postMessage(httpBase(server), { type: 'read' }, { room }, victim.headers)).status).toBe(404)
    expect(await positionsOf(victim.id)).toEqual([])
    const newList = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: victim.headers }))
    expect((await newList.waitFor(isList, 'a new list')).rooms).toEqual([])
    // Their own message (not a page's form: that is refused above) is speaking there: a membership, with its position.
    expect((await postMessage(httpBase(server), { message: 'hi' }, { room }, victim.headers)).status).toBe(200)
    await until(async () => (await positionsOf(victim.id)).length === 1, 'the speaker\'s position')

    // The app's own page (EventSource: same-origin Fetch Metadata) makes one, and the list shows it.
    const own = track(await ChatStream.open(httpBase(server), { room }, { ...victim.headers, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }))
    expect(await own.waitFor(isRead, 'the read frame')).toMatchObject({ room, read: 1, unread: 0 })
    await until(() => roomsTold(list.frames).has(room), 'the room on the open list')
    expect(await positionsOf(victim.id)).toEqual([room])
  })

  it('a user who opens 600 rooms keeps 500 read positions (`maxReadPositions`): the least recently joined go', async () => {
    const user = newUser()
    const rooms = Array.from({ length: 600 }, (_, index) => `${newRoom('many')}-${index}`)
    const started = performance.now()
    // 20 at a time, one batch after the other: each batch is joined after the ones before it.
    for (let index = 0; index < rooms.length; index += 20) {
      await Promise.all(rooms.slice(index, index + 20).map(room => visit(server, room, user.headers)))
    }
    const seconds = (performance.now() - started) / 1000
    const kept = await positionsOf(user.id)
    console.log(`[read positions] 600 new rooms in ${seconds.toFixed(1)} s by one user: ${kept.length} read positions stored`)
    expect(kept).toHaveLength(500)
    expect(kept.toSorted()).toEqual(rooms.slice(100).toSorted())
  }, 120_000)

  it('the cap is runtime config; rooms evicted to keep within it leave the user\'s open rooms lists', async () => {
    const user = newUser()
    const rooms = Array.from({ length: 5 }, (_, index) => `${newRoom('cap')}-${index}`)
    const list = track(await ChatSocket.open(capped.wsUrl(''), { rooms: '' }, { headers: user.headers }))
    await list.waitFor(isList, 'the list')
    for (const room of rooms) {
      await visit(capped, room, user.headers)
      await sleep(5)
    }
    expect((await positionsOf(user.id)).toSorted()).toEqual(rooms.slice(2).toSorted())
    const removed = (room: string) => list.frames.some(frame => frame.type === 'room' && frame.room === room && frame.removed === true)
    await until(() => removed(rooms[0]!) && removed(rooms[1]!), 'the two oldest rooms removed from the list')
    expect(rooms.slice(2).some(removed)).toBe(false)
  })

  it('a rooms list whose room the app starts refusing in chat:identify stops showing and streaming it within the cache time, and a read from it is refused', async () => {
    const [barred, kept] = [newRoom('barred'), newRoom('kept')]
    const [user, other] = [newUser(), newUser()]
    for (const room of [barred, kept]) await visit(server, room, user.headers)
    const listWs = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: user.headers }))
    const listSse = track(await ChatStream.open(httpBase(server), { rooms: '' }, user.headers))
    for (const list of [listWs, listSse]) await list.waitFor(isList, 'the list')
    const lastText = (frames: Frame[], room: string) => (frames.findLast(frame => frame.type === 'room' && frame.room === room)?.last as { message?: string } | undefined)?.message
    expect((await postMessage(httpBase(server), { message: 'before' }, { room: barred }, other.headers)).status).toBe(200)
    await until(() => [listWs, listSse].every(list => lastText(list.frames, barred) === 'before'), 'the message on both lists')

    // The app bars the user from the room (their position stays: the app did not call forget).
    expect((await fetch(server.url('/_test/bar'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: barred, userId: user.id }) })).status).toBe(200)
    await sleep(LIST_ADMISSION_TTL + 200)
    const [readBefore] = await db.prepare('SELECT id FROM chat_reads WHERE uid = ? AND room = ?').all(user.id, barred) as { id: string }[]
    listWs.send({ type: 'read', room: barred })
    expect(await listWs.waitFor(frame => frame.type === 'error', 'the refusal')).toMatchObject({ code: 'forbidden' })
    expect(await db.prepare('SELECT id FROM chat_reads WHERE uid = ? AND room = ?').all(user.id, barred)).toEqual([readBefore])
    expect((await postMessage(httpBase(server), { message: 'secret' }, { room: barred }, other.headers)).status).toBe(200)
    expect((await postMessage(httpBase(server), { message: 'public' }, { room: kept }, other.headers)).status).toBe(200)
    await until(() => [listWs, listSse].every(list => lastText(list.frames, kept) === 'public'), 'the kept room\'s message')
    const removed = (frames: Frame[]) => frames.some(frame => frame.type === 'room' && frame.room === barred && frame.removed === true)
    await until(() => removed(listWs.frames) && removed(listSse.frames), 'the barred room removed from both lists')
    await sleep(200)
    for (const list of [listWs, listSse]) expect(JSON.stringify(list.frames)).not.toContain('secret')

    // A list opened now never shows it; a read of it is refused there too.
    const fresh = track(await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: user.headers }))
    expect(((await fresh.waitFor(isList, 'a new list')).rooms as Frame[]).map(entry => entry.room)).toEqual([kept])
    fresh.send({ type: 'read', room: barred })
    expect((await fresh.waitFor(frame => frame.type === 'error', 'the refusal')).code).toMatch(/^(forbidden|not_found)$/)
  })
})

describe('read positions under retention, SQLite', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_HISTORY_MAX_AGE: '1500', NUXT_CHAT_HISTORY_INTERVAL: '300' } })
  })
  afterAll(() => server?.stop('SIGKILL'))

  it('a room retention empties leaves no read positions; a room still in use keeps them', async () => {
    const [quiet, busy] = [newRoom('quiet'), newRoom('busy')]
    const [user, other] = [newUser(), newUser()]
    for (const room of [quiet, busy]) {
      expect((await postMessage(httpBase(server), { message: 'hello' }, { room }, other.headers)).status).toBe(200)
      await visit(server, room, user.headers)
      await visit(server, room, other.headers)
    }
    const file = new DatabaseSync(join(server.cwd, '.data/chat.sqlite'), { readOnly: true })
    const positions = (room: string) => (file.prepare('SELECT COUNT(*) AS n FROM chat_reads WHERE room = ?').get(room) as { n: number }).n
    // An open rooms list is told when retention takes a room's position.
    const openList = await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: user.headers })
    await openList.waitFor(isList, 'the open list')
    try {
      expect([positions(quiet), positions(busy)]).toEqual([2, 2])
      // `busy` gets a message every 500 ms; `quiet` nothing after its first.
      const deadline = Date.now() + 8000
      while (positions(quiet) > 0 && Date.now() < deadline) {
        await postMessage(httpBase(server), { message: 'still here' }, { room: busy }, other.headers)
        await sleep(500)
      }
      expect(positions(quiet)).toBe(0)
      expect(positions(busy)).toBe(2)
      await openList.waitFor(frame => frame.type === 'room' && frame.room === quiet && frame.removed === true, 'the quiet room removed from the open list')
      expect(openList.frames.some(frame => frame.type === 'room' && frame.room === busy && frame.removed === true)).toBe(false)
      const list = await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: user.headers })
      expect(((await list.waitFor(isList, 'the list')).rooms as Frame[]).map(entry => entry.room)).toEqual([busy])
      await list.close()
    }
    finally {
      file.close()
      await openList.close()
    }
  }, 30_000)
})

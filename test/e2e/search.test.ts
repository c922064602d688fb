/**
 * Search (docs/PROTOCOL.md, "Search") against built servers with real sockets and real stores:
 * one SQLite server, and two PostgreSQL servers over Redis (messages written on one, searched on
 * the other). Edited messages are found by their new text only, deleted ones never, a private
 * room's hits reach its members only, on the version 2 command, the SSE stream's POST, the HTTP
 * route and `useChatServer().search`. Users are the fixture's `user-…` toy sessions.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocketV2, ChatStreamV2, untilOnOneBus, type FrameV2 } from '../utils/clients'
import { REDIS_URL, startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
const newUser = () => `user-${tag}-${++users}`
/** A word no other test (or run) sends. */
const uniqueWord = () => `w${randomUUID().replaceAll('-', '').slice(0, 12)}`
const UNLIMITED = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' }

const deployments: [string, () => Promise<[TestServer, TestServer]>][] = [
  ['SQLite', async () => {
    const server = await startServer({ env: UNLIMITED })
    return [server, server]
  }],
  ['two PostgreSQL instances over Redis', async () => {
    const env = { ...UNLIMITED, NUXT_CHAT_REDIS_URL: REDIS_URL }
    const [a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
    return [a, b]
  }],
]

describe.each(deployments)('search on %s', (_name, start) => {
  let writer: TestServer
  let reader: TestServer
  const opened: { close: () => unknown }[] = []
  const open = async (server: TestServer, user?: string) => {
    const socket = await ChatSocketV2.openAs(server.wsUrl(''), user)
    opened.push(socket)
    return socket
  }
  /** Send a message to a joined room and wait for its stored echo. */
  const say = async (socket: ChatSocketV2, room: string, message: string) => {
    const cid = `c${randomUUID().slice(0, 8)}`
    socket.send({ type: 'message', room, message, cid })
    return (await socket.waitFor(frame => frame.type === 'message' && frame.cid === cid, 'the stored message')).id as number
  }
  const hitTexts = (frame: FrameV2) => (frame.hits as { excerpt: string }[]).map(hit => hit.excerpt)
  const httpSearch = async (server: TestServer, params: Record<string, string>, user?: string) => {
    const response = await fetch(server.url(`/api/sse/search?${new URLSearchParams(params)}`), { headers: user ? { cookie: `session=${user}` } : {} })
    return { status: response.status, body: await response.json() as FrameV2 }
  }

  beforeAll(async () => {
    [writer, reader] = await start()
  })
  afterAll(async () => {
    await Promise.all(opened.map(socket => socket.close()))
    await writer?.stop()
    if (reader !== writer) await reader?.stop()
  })

  it('finds an edited message by its new text and not its old; a deleted one is not found', async () => {
    const userId = newUser()
    const author = await open(writer, userId)
    const room = (await author.ask({ type: 'create', title: 'Notes', visibility: 'private' })).room as string
    const [before, after, gone, kept] = [uniqueWord(), uniqueWord(), uniqueWord(), uniqueWord()]
    const edited = await say(author, room, `draft ${before} text`)
    const deleted = await say(author, room, `oops ${gone}`)
    await say(author, room, `stays ${kept}`)
    author.send({ type: 'edit', room, target: edited, message: `final ${after} text` })
    author.send({ type: 'delete', room, target: deleted })
    await author.waitFor(frame => frame.type === 'delete' && frame.target === deleted, 'the delete')
    await author.waitFor(frame => frame.type === 'edit' && frame.target === edited, 'the edit')

    // Searched on the other instance (PostgreSQL), over its own connection.
    const searcher = await open(reader, userId)
    const found = await searcher.ask({ type: 'search', q: after })
    expect(found).toMatchObject({ type: 'search_results', q: after, hits: [{ room, id: edited, uid: userId, excerpt: `final ${after} text` }] })
    expect((found.hits as { highlights: [number, number][] }[])[0]!.highlights).toEqual([[6, 6 + after.length]])
    expect(found.cursor).toBeUndefined()
    expect((await searcher.ask({ type: 'search', q: before })).hits).toEqual([])
    expect((await searcher.ask({ type: 'search', q: gone })).hits).toEqual([])
    expect(hitTexts(await searcher.ask({ type: 'search', q: kept, room }))).toEqual([`stays ${kept}`])
    // The hit opens the room at the message: history up to it holds it.
    await searcher.join(room)
    const page = await searcher.ask({ type: 'history', room, before: edited + 1, limit: 1 })
    expect(page).toMatchObject({ type: 'history', messages: [{ id: edited, message: `final ${after} text` }] })
  })

  it('a non-member\'s search returns nothing from a private room; a member\'s does', async () => {
    const [ownerId, memberId, outsiderId] = [newUser(), newUser(), newUser()]
    const owner = await open(writer, ownerId)
    const secretRoom = (await owner.ask({ type: 'create', title: 'Secret', visibility: 'private', members: [memberId] })).room as string
    const publicRoom = (await owner.ask({ type: 'create', title: 'Open', visibility: 'public' })).room as string
    const word = uniqueWord()
    await say(owner, secretRoom, `secret ${word}`)
    await owner.join(publicRoom)
    await say(owner, publicRoom, `public ${word}`)

    const outsider = await open(reader, outsiderId)
    // The outsider has been in the public room (it is on their rooms list), never in the private one.
    await outsider.join(publicRoom)
    await outsider.waitFor(frame => frame.type === 'read' && frame.room === publicRoom, 'the outsider\'s read position')
    await outsider.join(secretRoom)
    expect(hitTexts(await outsider.ask({ type: 'search', q: word }))).toEqual([`public ${word}`])
    expect(await outsider.ask({ type: 'search', q: word, room: secretRoom })).toMatchObject({ type: 'error', code: 'forbidden' })
    // Over HTTP (SSE clients), the same answers.
    expect((await httpSearch(reader, { q: word }, outsiderId)).body.hits).toEqual([expect.objectContaining({ room: publicRoom })])
    expect(await httpSearch(reader, { q: word, room: secretRoom }, outsiderId)).toMatchObject({ status: 403, body: { type: 'error', code: 'forbidden' } })

    // The member's rooms: the private one only, until they go into the public one (or name it).
    const member = await open(reader, memberId)
    expect(hitTexts(await member.ask({ type: 'search', q: word }))).toEqual([`secret ${word}`])
    expect(hitTexts(await member.ask({ type: 'search', q: word, room: publicRoom }))).toEqual([`public ${word}`])
    await member.join(publicRoom)
    await member.waitFor(frame => frame.type === 'read' && frame.room === publicRoom, 'the member\'s read position')
    // Both now, a page at a time: a page of one has a cursor to the next, the last none.
    const first = await member.ask({ type: 'search', q: word, limit: 1 })
    expect(first.cursor).toEqual(expect.any(String))
    const second = await member.ask({ type: 'search', q: word, limit: 1, cursor: first.cursor })
    expect(second.cursor).toBeUndefined()
    expect([...hitTexts(first), ...hitTexts(second)].toSorted()).toEqual([`public ${word}`, `secret ${word}`].toSorted())

    // A guest names a public room, or is refused; a private room is forbidden to it.
    const guest = await open(reader)
    expect(await guest.ask({ type: 'search', q: word })).toMatchObject({ type: 'error', code: 'unauthorized' })
    expect(hitTexts(await guest.ask({ type: 'search', q: word, room: publicRoom }))).toEqual([`public ${word}`])
    expect(await guest.ask({ type: 'search', q: word, room: secretRoom })).toMatchObject({ type: 'error', code: 'forbidden' })

    // Server code: as a person (their rooms), or in rooms it names.
    const asServer = async (search: Record<string, unknown>) => (await fetch(reader.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'search', room: '', message: word, search }) })).json() as Promise<FrameV2>
    expect(hitTexts(await asServer({ user: { id: outsiderId, name: 'Out' } }))).toEqual([`public ${word}`])
    expect(hitTexts(await asServer({ rooms: [secretRoom] }))).toEqual([`secret ${word}`])
  })

  it('answers on a version 2 SSE stream, and a hostile query is just a query', async () => {
    const userId = newUser()
    const owner = await open(writer, userId)
    const room = (await owner.ask({ type: 'create', title: 'Quotes', visibility: 'private' })).room as string
    const word = uniqueWord()
    await say(owner, room, `she said "${word}" OR NOT`)
    const stream = await ChatStreamV2.openV2(reader.url(''), {}, { cookie: `session=${userId}` })
    opened.push(stream)
    const ref = stream.ref()
    expect((await stream.send({ type: 'search', q: `"${word}" OR *`, ref })).status).toBe(202)
    const answer = await stream.waitFor(frame => frame.ref === ref, 'the search answer')
    expect(hitTexts(answer)).toEqual([`she said "${word}" OR NOT`])
    for (const q of ['"', 'NEAR(', `${word}*`, 'body:x', '\'; DROP TABLE chat_messages; --']) {
      const { status, body } = await httpSearch(reader, { q }, userId)
      expect([200, 400]).toContain(status)
      expect(body.type).toBe(status === 200 ? 'search_results' : 'error')
    }
    expect(await httpSearch(reader, { q: '"*"' }, userId)).toMatchObject({ status: 400, body: { code: 'bad_request' } })
    expect(await httpSearch(reader, { q: word, cursor: 'forged' }, userId)).toMatchObject({ status: 400, body: { code: 'bad_request' } })
    expect(await httpSearch(reader, { q: 'x'.repeat(201) }, userId)).toMatchObject({ status: 400 })
    const bad = await stream.send({ type: 'search', q: word, limit: 500, ref: 'bad' })
    expect(bad).toMatchObject({ status: 400, json: { code: 'bad_request', ref: 'bad' } })
  })
})

describe('search limits', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { ...UNLIMITED, NUXT_CHAT_HISTORY_RATE_LIMIT_BURST: '2', NUXT_CHAT_HISTORY_RATE_LIMIT_MESSAGES: '1', NUXT_CHAT_HISTORY_RATE_LIMIT_INTERVAL: '600000' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('a search is a history page: past the person\'s budget it is refused with 429, on HTTP and on the connection', async () => {
    const userId = newUser()
    const search = () => fetch(server.url(`/api/sse/search?${new URLSearchParams({ q: 'anything' })}`), { headers: { cookie: `session=${userId}` } })
    expect((await search()).status).toBe(200)
    expect((await search()).status).toBe(200)
    const refused = await search()
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await refused.json()).toMatchObject({ type: 'error', code: 'rate_limited', limit: 'history', scope: 'person' })
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: `session=${userId}` } })
    await socket.waitFor(frame => frame.type === 'hello', 'hello')
    socket.send({ type: 'search', q: 'anything', ref: 'limited' })
    expect(await socket.waitFor(frame => frame.ref === 'limited', 'the refusal')).toMatchObject({ type: 'error', code: 'rate_limited', limit: 'history' })
    await socket.close()
  })
})

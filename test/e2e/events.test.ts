import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatConnection } from '../../src/runtime/app/chatConnection'
import type { ChatServerFrame } from '../../src/runtime/shared/protocol'
import { installEventSource, sleep } from '../utils/chaos'
import { ChatSocket, ChatStream, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

installEventSource()

const newRoom = (prefix = 'events') => `${prefix}-${randomUUID().slice(0, 8)}`
const ALICE = { cookie: 'session=alice-token' }
const BOB = { cookie: 'session=bob-token' }
const MOD = { cookie: 'session=mod-token' }
type Frame = ChatServerFrame & Record<string, unknown>
/** Stored frames (messages, edits, deletes) a reader got, as `id:type`. */
const storedIds = (reader: { frames: Frame[] }) => reader.frames.filter(frame => typeof frame.id === 'number').map(frame => `${frame.id}:${frame.type}`)

describe('edit and delete: stored events over WebSocket and SSE', () => {
  let server: TestServer
  const base = () => server.url('').replace(/\/$/, '')
  const closers: (() => unknown)[] = []
  const socket = async (room: string, headers: Record<string, string> = {}, since?: number) => {
    const opened = await ChatSocket.open(server.wsUrl(''), { room, name: 'reader', since }, { headers })
    closers.push(() => opened.close())
    return opened
  }
  const stream = async (room: string, headers: Record<string, string> = {}) => {
    const opened = await ChatStream.open(base(), { room, name: 'reader' }, headers)
    closers.push(() => opened.close())
    return opened
  }
  const history = async (room: string) => {
    const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'history', room, limit: 100 }) })
    return await response.json() as Frame[]
  }

  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
  })

  afterAll(async () => {
    for (const close of closers) await close()
    await server?.stop()
  })

  it('the author edits and deletes over WebSocket: every reader gets the events in id order, replay keeps a tombstone, the text leaves the store', async () => {
    const room = newRoom()
    const alice = await socket(room, ALICE)
    const readers = [await socket(room), await stream(room)]
    alice.send({ type: 'message', message: 'secret typo', cid: 'm-1' })
    await alice.waitFor(frame => frame.type === 'message' && frame.cid === 'm-1', 'stored')
    alice.send({ type: 'edit', target: 1, message: 'secret fixed', cid: 'e-1' })
    alice.send({ type: 'message', message: 'second', cid: 'm-2' })
    alice.send({ type: 'delete', target: 1, cid: 'd-1' })
    for (const reader of [alice, ...readers]) await reader.waitFor(frame => frame.id === 4, 'id 4')
    await sleep(100)
    for (const reader of [alice, ...readers]) expect(storedIds(reader)).toEqual(['1:message', '2:edit', '3:message', '4:delete'])
    expect(readers[0]!.frames.find(frame => frame.id === 2)).toMatchObject({ type: 'edit', target: 1, user: 'Alice', uid: 'u-alice', message: 'secret fixed', cid: 'e-1' })
    expect(readers[0]!.frames.find(frame => frame.id === 4)).toMatchObject({ type: 'delete', target: 1, user: 'Alice', message: 'deleted a message' })
    // SSE events carry their id, so EventSource resumes through them.
    expect((readers[1] as ChatStream).ids.filter(Boolean)).toEqual(['1', '2', '3', '4'])

    // A newcomer's replay (revision 5): the messages with their state, in the order of their numbers; the deleted one a tombstone.
    const late = await socket(room)
    await late.waitFor(frame => frame.id === 1, 'replay to number 4')
    expect(storedIds(late)).toEqual(['3:message', '1:message'])
    expect(late.frames.find(frame => frame.id === 1)).toMatchObject({ message: '', deleted: true, rev: 4 })
    const stored = await history(room)
    expect(stored.map(frame => frame.id)).toEqual([1, 3])
    expect(JSON.stringify([...stored, ...late.frames])).not.toContain('secret')

    // A repeated cid is answered, not stored again; the same for an edit.
    alice.send({ type: 'delete', target: 1, cid: 'd-1' })
    await alice.waitFor(frame => frame.duplicate === true && frame.cid === 'd-1', 'duplicate answer')
    expect((await postMessage(base(), { message: 'third' }, { room })).json).toMatchObject({ id: 5 })
  })

  it('over POST (SSE clients): edit and delete with a cid, de-duplicated; edits are checked like messages', async () => {
    const room = newRoom()
    const reader = await stream(room)
    const sent = await postMessage(base(), { message: 'hello', cid: 'p-1' }, { room }, ALICE)
    expect(sent.json).toMatchObject({ id: 1 })
    const edited = await postMessage(base(), { type: 'edit', target: 1, message: 'hello darn world', cid: 'p-2' }, { room }, ALICE)
    expect(edited).toMatchObject({ status: 200, json: { type: 'edit', id: 2, target: 1, message: 'hello d**n world' } })
    expect((await postMessage(base(), { type: 'edit', target: 1, message: 'hello darn world', cid: 'p-2' }, { room }, ALICE)).json).toMatchObject({ id: 2, duplicate: true })
    expect((await postMessage(base(), { type: 'edit', target: 1, message: 'a forbidden edit', cid: 'p-3' }, { room }, ALICE))).toMatchObject({ status: 403, json: { code: 'rejected' } })
    expect((await postMessage(base(), { type: 'edit', target: 1, message: ' ', cid: 'p-4' }, { room }, ALICE))).toMatchObject({ status: 400, json: { code: 'empty' } })
    expect((await postMessage(base(), { type: 'edit', target: 0, message: 'x' }, { room }, ALICE))).toMatchObject({ status: 400, json: { code: 'bad_request' } })
    expect((await postMessage(base(), { type: 'delete', target: 1, cid: 'p-5' }, { room }, ALICE)).json).toMatchObject({ type: 'delete', id: 3 })
    await reader.waitFor(frame => frame.id === 3, 'the delete')
    expect(storedIds(reader)).toEqual(['1:message', '2:edit', '3:delete'])
  })

  it('only the author may change a message, unless chat:action allows it; unknown, deleted and event targets are not_found', async () => {
    const room = newRoom()
    const alice = await socket(room, ALICE)
    const bob = await socket(room, BOB)
    alice.send({ type: 'message', message: 'alice says', cid: 'a-1' })
    await bob.waitFor(frame => frame.id === 1, 'alice\'s message')
    bob.send({ type: 'edit', target: 1, message: 'bob was here', cid: 'b-1' })
    bob.send({ type: 'delete', target: 1, cid: 'b-2' })
    await until(() => bob.frames.filter(frame => frame.type === 'error').length === 2, 'two refusals')
    expect(bob.frames.filter(frame => frame.type === 'error').map(frame => [frame.code, frame.cid])).toEqual([['forbidden', 'b-1'], ['forbidden', 'b-2']])
    // A guest (no session) cannot either.
    expect((await postMessage(base(), { type: 'delete', target: 1 }, { room })).status).toBe(403)

    const mod = await socket(room, MOD)
    mod.send({ type: 'edit', target: 1, message: 'mod edit', cid: 'm-1' })
    mod.send({ type: 'delete', target: 1, cid: 'm-2' })
    await mod.waitFor(frame => frame.type === 'delete' && frame.cid === 'm-2', 'the moderator\'s delete')
    expect(mod.frames.find(frame => frame.cid === 'm-1')).toMatchObject({ type: 'error', code: 'forbidden' })
    for (const [target, cid] of [[1, 'x-1'], [2, 'x-2'], [99, 'x-3']] as const) alice.send({ type: 'edit', target, message: 'again', cid })
    await until(() => alice.frames.filter(frame => frame.code === 'not_found').length === 3, 'three not_found')
    await sleep(100)
    expect(storedIds(alice)).toEqual(['1:message', '2:delete'])

    const locked = newRoom('locked')
    const author = await socket(locked, ALICE)
    author.send({ type: 'message', message: 'final', cid: 'l-1' })
    author.send({ type: 'delete', target: 1, cid: 'l-2' })
    await author.waitFor(frame => frame.cid === 'l-2' && frame.type === 'error', 'refused')
    expect(author.frames.find(frame => frame.cid === 'l-2')).toMatchObject({ code: 'forbidden', message: 'this room is locked' })
  })

  it('editWindow: the author edits within it, not after; deleting has no window', async () => {
    const windowed = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_EDIT_WINDOW: '300' } })
    try {
      const room = newRoom()
      const alice = await ChatSocket.open(windowed.wsUrl(''), { room }, { headers: ALICE })
      alice.send({ type: 'message', message: 'quick', cid: 'w-1' })
      alice.send({ type: 'edit', target: 1, message: 'quick fix', cid: 'w-2' })
      await alice.waitFor(frame => frame.type === 'edit', 'edit within the window')
      await sleep(400)
      alice.send({ type: 'edit', target: 1, message: 'too late', cid: 'w-3' })
      alice.send({ type: 'delete', target: 1, cid: 'w-4' })
      await alice.waitFor(frame => frame.type === 'delete', 'delete after the window')
      expect(alice.frames.find(frame => frame.cid === 'w-3')).toMatchObject({ type: 'error', code: 'forbidden' })
      await alice.close()
    }
    finally {
      await windowed.stop()
    }
  })

  it('reactions toggle per person as stored events, carried by message frames in replay, bounded per message and per person', async () => {
    const room = newRoom()
    const alice = await socket(room, ALICE)
    const bob = await socket(room, BOB)
    const reader = await stream(room)
    alice.send({ type: 'message', message: 'react to me', cid: 'r-0' })
    await bob.waitFor(frame => frame.id === 1, 'the message')
    alice.send({ type: 'reaction', target: 1, emoji: '👍', cid: 'r-1' })
    bob.send({ type: 'reaction', target: 1, emoji: '👍', cid: 'r-2' })
    await reader.waitFor(frame => frame.id === 3, 'two reactions')
    bob.send({ type: 'reaction', target: 1, emoji: '👍', cid: 'r-3' })
    await reader.waitFor(frame => frame.id === 4, 'a reaction taken back')
    expect(reader.frames.filter(frame => frame.type === 'reaction').map(frame => [frame.id, frame.uid, frame.emoji, frame.on, frame.message])).toEqual([[2, 'u-alice', '👍', true, '👍'], [3, 'u-bob', '👍', true, '👍'], [4, 'u-bob', '👍', false, '👍']])
    // Over POST too, with a cid de-duplicated.
    expect((await postMessage(base(), { type: 'reaction', target: 1, emoji: '🎉', cid: 'p-1' }, { room }, BOB)).json).toMatchObject({ type: 'reaction', id: 5, on: true })
    expect((await postMessage(base(), { type: 'reaction', target: 1, emoji: '🎉', cid: 'p-1' }, { room }, BOB)).json).toMatchObject({ id: 5, duplicate: true })
    expect((await postMessage(base(), { type: 'reaction', target: 1, emoji: 'two words' }, { room }, BOB)).status).toBe(400)
    expect((await postMessage(base(), { type: 'reaction', target: 99, emoji: '👍' }, { room }, BOB)).json).toMatchObject({ code: 'not_found' })

    // A newcomer sees the current reactions on the message itself, and no toggles (revision 5).
    const late = await socket(room)
    await late.waitFor(frame => frame.id === 1, 'replay')
    expect(late.frames.find(frame => frame.id === 1)).toMatchObject({ rev: 5, reactions: { '👍': ['u-alice'], '🎉': ['u-bob'] } })
    expect(storedIds(late)).toEqual(['1:message'])

    // Bounds: 5 per person per message.
    for (const emoji of ['a1', 'a2', 'a3', 'a4', 'a5']) alice.send({ type: 'reaction', target: 1, emoji, cid: `b-${emoji}` })
    await until(() => alice.frames.some(frame => frame.cid === 'b-a5'), 'the fifth answer')
    expect(alice.frames.find(frame => frame.cid === 'b-a5')).toMatchObject({ type: 'error', code: 'rejected' })
    expect(alice.frames.find(frame => frame.cid === 'b-a4')).toMatchObject({ type: 'reaction', on: true })
  })

  for (const transport of ['ws', 'sse'] as const) {
    it(`${transport}: useChat's edit and remove change messages on every client; loadOlder applies events; the final state equals the store's`, async () => {
      const room = newRoom()
      const open = (name: string) => {
        const client = createChatConnection({
          room, name, transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 50, maxLength: 2000,
          autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'),
          guestKey: randomUUID().replaceAll('-', ''),
        })
        closers.push(() => client.close())
        client.open()
        return client
      }
      const writer = open('writer')
      const other = open('other')
      await until(() => writer.status.value === 'OPEN' && other.status.value === 'OPEN' && writer.me.value, 'both open')
      for (const text of ['one', 'two', 'three']) writer.send(text)
      await until(() => other.messages.value.length === 3 && writer.queued === 0, 'three messages')
      expect(writer.edit(2, 'two, edited')).toBe(true)
      expect(writer.remove(1)).toBe(true)
      const view = (client: ChatConnection) => client.messages.value.map(message => [message.id, message.message, Boolean(message.edited)])
      const expected = [[2, 'two, edited', true], [3, 'three', false]]
      await until(() => JSON.stringify(view(other)) === JSON.stringify(expected) && writer.queued === 0, 'the edit and the delete on the other client')
      expect(view(writer)).toEqual(expected)
      // Reactions: counts, and whether I reacted, on both clients.
      other.react(3, '👍')
      writer.react(3, '👍')
      const reactions = (client: ChatConnection) => JSON.stringify(client.messages.value.find(message => message.id === 3)?.reactions)
      await until(() => reactions(writer) === JSON.stringify([{ emoji: '👍', count: 2, mine: true }]) && reactions(other) === reactions(writer), 'two reactions on both')
      writer.react(3, '👍')
      await until(() => reactions(other) === JSON.stringify([{ emoji: '👍', count: 1, mine: true }]) && reactions(writer) === JSON.stringify([{ emoji: '👍', count: 1, mine: false }]), 'one taken back')
      // Someone else's message: refused by the server, nothing changes.
      other.remove(3)
      await until(() => other.error.value?.code === 'forbidden', 'forbidden')
      expect(view(writer)).toEqual(expected)

      // A fresh client reads the room from the store: replay and older pages give the same state.
      const fresh = open('fresh')
      await until(() => fresh.messages.value.length === 2, 'the replay')
      // The replay carries the message with its current reactions, then the reaction events in place: the same state at the end.
      await until(() => fresh.queued === 0 && reactions(fresh) === JSON.stringify([{ emoji: '👍', count: 1, mine: false }]), 'the reactions after the replay')
      expect(view(fresh)).toEqual(expected)
      fresh.clear()
      await until(() => fresh.messages.value.length === 0, 'cleared')
      await fresh.loadOlder(50)
      expect(view(fresh)).toEqual(expected)
      expect(reactions(fresh)).toBe(JSON.stringify([{ emoji: '👍', count: 1, mine: false }]))
      const store = (await history(room)).filter(frame => frame.type === 'message' && !frame.deleted).map(frame => [frame.id, frame.message, frame.edited !== undefined])
      expect(store).toEqual(expected)
    })
  }
})

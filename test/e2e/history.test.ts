import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection } from '../../src/runtime/app/chatConnection'
import type { ChatHistoryFrame, ChatServerFrame } from '../../src/runtime/shared/protocol'
import { installEventSource, sleep } from '../utils/chaos'
import { ChatSocket, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

installEventSource()

const newRoom = () => `older-${randomUUID().slice(0, 8)}`
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, index) => from + index)
const isHistory = (frame: ChatServerFrame): frame is ChatHistoryFrame => frame.type === 'history'

describe('older history: loadOlder over WebSocket and SSE', () => {
  let server: TestServer
  const base = () => server.url('').replace(/\/$/, '')
  const closers: (() => unknown)[] = []

  async function fill(room: string, count: number) {
    for (let index = 1; index <= count; index++) expect((await postMessage(base(), { message: `m${index}` }, { room })).status).toBe(200)
  }

  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_REPLAY: '10' } })
  })

  afterAll(async () => {
    for (const close of closers) await close()
    await server?.stop()
  })

  it('answers the history command with a page before an id, oldest first, to the asker only; bad requests are refused', async () => {
    const room = newRoom()
    await fill(room, 25)
    const asker = await ChatSocket.open(server.wsUrl(''), { room, name: 'asker' })
    const other = await ChatSocket.open(server.wsUrl(''), { room, name: 'other' })
    closers.push(() => asker.close(), () => other.close())
    await asker.waitFor(frame => frame.type === 'message' && frame.id === 25, 'replay')
    expect(asker.messages.map(frame => frame.id)).toEqual(range(16, 25))

    asker.send({ type: 'history', before: 16, limit: 10 })
    const page = await asker.waitFor(frame => frame.type === 'history' && frame.before === 16, 'page 1') as ChatHistoryFrame
    expect(page.messages.map(frame => frame.id)).toEqual(range(6, 15))
    expect(page).toMatchObject({ room, more: true, user: 'server' })
    asker.send({ type: 'history', before: 6, limit: 10 })
    const last = await asker.waitFor(frame => frame.type === 'history' && frame.before === 6, 'page 2') as ChatHistoryFrame
    expect(last.messages.map(frame => frame.message)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5'])
    expect(last.more).toBe(false)

    for (const bad of [{ before: 0 }, { before: 'x' }, { limit: 0 }, { limit: 201 }]) asker.send({ type: 'history', ...bad })
    await until(() => asker.frames.filter(frame => frame.type === 'error' && frame.code === 'bad_request').length === 4, 'four refusals')
    await sleep(100)
    expect(other.frames.some(frame => frame.type === 'history')).toBe(false)
    // Not stored, not numbered: the room's next message is still id 26.
    expect((await postMessage(base(), { message: 'after' }, { room })).json).toMatchObject({ id: 26 })
  })

  it('answers GET ?before= with the same page as JSON, after the same admission', async () => {
    const room = newRoom()
    await fill(room, 12)
    const response = await fetch(`${base()}/api/sse?room=${room}&before=12&limit=5`)
    expect(response.headers.get('content-type')).toContain('application/json')
    const page = await response.json() as ChatHistoryFrame
    expect(page.messages.map(frame => frame.id)).toEqual(range(7, 11))
    expect(page.more).toBe(true)
    expect((await fetch(`${base()}/api/sse?room=${room}&before=-1`)).status).toBe(400)
    expect((await fetch(`${base()}/api/sse?room=private-x&before=5`)).status).toBe(401)
  })

  for (const transport of ['ws', 'sse'] as const) {
    it(`${transport}: loadOlder merges pages in order until hasMore is false, and keeps them past maxMessages until dropOlder`, async () => {
      const room = newRoom()
      await fill(room, 45)
      const client = createChatConnection({
        room, name: 'reader', transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 20, maxQueue: 10, maxLength: 2000,
        autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'),
      })
      closers.push(() => client.close())
      client.open()
      await until(() => client.messages.value.length === 10, 'the replay of 10')
      expect(client.hasMore.value).toBe(true)
      expect(await client.loadOlder(15)).toBe(15)
      expect(client.messages.value.map(message => message.id)).toEqual(range(21, 45))
      // Live messages keep arriving while the user reads older ones: nothing loaded is evicted.
      await fill(room, 3)
      await until(() => client.messages.value.length === 28, 'three live messages')
      expect(await client.loadOlder(50)).toBe(20)
      expect(client.messages.value.map(message => message.id)).toEqual(range(1, 48))
      expect(client.hasMore.value).toBe(false)
      expect(await client.loadOlder()).toBe(0)
      // Back at the bottom: maxMessages applies again.
      client.dropOlder()
      await sleep(0)
      expect(client.messages.value.map(message => message.id)).toEqual(range(29, 48))
      expect(client.hasMore.value).toBe(true)
    })
  }

  for (const transport of ['ws', 'sse'] as const) {
    it(`${transport}: joining an empty room and loading older history shows no error, connecting or open (issue 22, finding 11)`, async () => {
      const room = newRoom()
      const client = createChatConnection({
        room, name: 'newcomer', transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 20, maxQueue: 10, maxLength: 2000,
        autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'),
      })
      closers.push(() => client.close())
      client.open()
      // As the playground does on mount: asked while the connection is still being made (over HTTP).
      expect(await client.loadOlder()).toBe(0)
      expect(client.error.value).toBeNull()
      await until(() => client.status.value === 'OPEN' && client.me.value, 'joined')
      expect(await client.loadOlder()).toBe(0)
      expect(client.error.value).toBeNull()
      expect(client.hasMore.value).toBe(false)
      // The message it sends next is the room's first, and nothing older is offered.
      expect(client.send('first')).toBe(true)
      await until(() => client.messages.value.some(message => message.id === 1), 'the first message stored')
      expect(client.hasMore.value).toBe(false)
      expect(client.error.value).toBeNull()
    })
  }

  it('accepts the same ids over WebSocket and HTTP: up to 2^53 - 1, and says the bound past it', async () => {
    const room = newRoom()
    await fill(room, 3)
    const socket = await ChatSocket.open(server.wsUrl(''), { room, name: 'bounds' })
    closers.push(() => socket.close())
    for (const before of [2 ** 53 - 1, '9007199254740991', '0000000000000004']) {
      const response = await fetch(`${base()}/api/sse?room=${room}&before=${before}&limit=2`)
      expect(response.status, String(before)).toBe(200)
      expect(((await response.json()) as ChatHistoryFrame).messages.map(frame => frame.id)).toEqual([2, 3])
    }
    socket.send({ type: 'history', before: 2 ** 53 - 1, limit: 2 })
    expect(await socket.waitFor(frame => isHistory(frame), 'a page')).toMatchObject({ messages: [{ id: 2 }, { id: 3 }] })
    for (const before of ['9007199254740992', '99999999999999999']) {
      const response = await fetch(`${base()}/api/sse?room=${room}&before=${before}`)
      expect(response.status, before).toBe(400)
      expect(await response.json()).toMatchObject({ code: 'bad_request', message: expect.stringContaining('9007199254740991') })
    }
    // `?thread=` is an id in a query string like `before`: decimal digits only, not whatever Number() reads.
    for (const thread of ['1e0', '0x1', '1.0', '+1', ' 1']) {
      const response = await fetch(`${base()}/api/sse?room=${room}&before=3&thread=${encodeURIComponent(thread)}`)
      expect(response.status, thread).toBe(400)
      expect(await response.json(), thread).toMatchObject({ code: 'bad_request', message: expect.stringContaining('thread') })
    }
    socket.send({ type: 'history', before: 2 ** 53, limit: 2 })
    expect(await socket.waitFor(frame => frame.type === 'error', 'a refusal')).toMatchObject({ code: 'bad_request', message: expect.stringContaining('9007199254740991') })
    socket.send({ type: 'read', id: 2 ** 53 })
    await until(() => socket.frames.filter(frame => frame.type === 'error' && frame.code === 'bad_request').length === 2, 'the read refused as bad_request')
  })

  it('works past history.max: pages end where retention pruned, without errors', async () => {
    const pruning = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_HISTORY_MAX: '20', NUXT_CHAT_HISTORY_INTERVAL: '100' } })
    try {
      const room = newRoom()
      for (let index = 1; index <= 50; index++) await postMessage(pruning.url('').replace(/\/$/, ''), { message: `m${index}` }, { room })
      await sleep(500)
      const socket = await ChatSocket.open(pruning.wsUrl(''), { room, name: 'reader' })
      socket.send({ type: 'history', before: 40, limit: 50 })
      const page = await socket.waitFor(frame => isHistory(frame), 'a page') as ChatHistoryFrame
      expect(page.messages.map(frame => frame.id)).toEqual(range(31, 39))
      expect(page.more).toBe(false)
      socket.send({ type: 'history', before: 5, limit: 50 })
      await until(() => socket.frames.filter(isHistory).length === 2, 'a page below the pruned ids')
      expect(socket.frames.filter(isHistory)[1]).toMatchObject({ messages: [], more: false })
      expect(socket.frames.some(frame => frame.type === 'error')).toBe(false)
      await socket.close()
    }
    finally {
      await pruning.stop()
    }
  })
})

/**
 * SSE and HTTP POST against the built fixture, with real sockets: stream format, connect
 * order, cursors, keep-alive, POST bodies and their errors, room isolation, replay.
 */
import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatStream, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
let base: string
const ws = () => `ws://127.0.0.1:${server.port}`
const uniqueRoom = (prefix = 'tr') => `${prefix}-${randomUUID().slice(0, 8)}`

beforeAll(async () => {
  server = await startServer({
    env: {
      NUXT_CHAT_SSE_KEEP_ALIVE: '200',
      NUXT_CHAT_REPLAY: '5',
      // Every POST here comes from 127.0.0.1; the rate limit has its own tests (limits.test.ts).
      NUXT_CHAT_RATE_LIMIT: 'false',
    },
  })
  base = server.url('').replace(/\/$/, '')
})

afterAll(async () => {
  await server?.stop()
})

/** Store `count` messages in `room` over POST, returning the stored frames. */
async function seed(room: string, count: number, prefix = 'm') {
  const frames = []
  for (let i = 0; i < count; i++) {
    const { status, json } = await postMessage(base, { message: `${prefix}-${i}` }, { room })
    expect(status).toBe(200)
    frames.push(json!)
  }
  return frames
}

describe('SSE stream', () => {
  it('is text/event-stream, starts with retry:, then welcome, presence, replay; message events carry id:', async () => {
    const room = uniqueRoom()
    const stored = await seed(room, 3)
    const stream = await ChatStream.open(base, { room, name: 'Reader' })
    try {
      expect(stream.status).toBe(200)
      await until(() => stream.messages.length === 3, 'the replay')
      expect(stream.text.startsWith('retry: ')).toBe(true)
      expect(stream.text).toMatch(/^retry: \d+\n\n/)

      const types = stream.frames.map(frame => frame.type)
      expect(types.slice(0, 5)).toEqual(['system', 'presence', 'message', 'message', 'message'])
      expect(stream.frames[0]).toMatchObject({ event: 'welcome', room, user: 'server', message: 'Welcome Reader!' })
      expect(stream.frames[1]).toMatchObject({ room, user: 'server', message: '1 online' })
      expect((stream.frames[1] as { users: { name: string }[] }).users.map(user => user.name)).toEqual(['Reader'])
      expect(stream.messages.map(frame => frame.message)).toEqual(['m-0', 'm-1', 'm-2'])
      expect(stream.messages.map(frame => frame.id)).toEqual(stored.map(frame => frame.id))

      // `id:` on message events (and only there), equal to the message id.
      stream.frames.forEach((frame, index) => {
        expect(stream.ids[index]).toBe(frame.type === 'message' ? String(frame.id) : undefined)
      })
      // No `event:` field: EventSource.onmessage sees every frame.
      expect(stream.text).not.toMatch(/^event:/m)
      // `data:` is one line of JSON per event.
      for (const block of stream.text.split('\n\n').filter(block => block.includes('data: '))) {
        expect(block.split('\n').filter(line => line.startsWith('data: '))).toHaveLength(1)
      }
    }
    finally {
      await stream.close()
    }
  })

  it('sends the content-type and no-cache headers', async () => {
    const controller = new AbortController()
    const response = await fetch(`${base}/api/sse?room=${uniqueRoom()}`, { signal: controller.signal })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(response.headers.get('cache-control')).toContain('no-cache')
    controller.abort()
  })

  it('resumes after Last-Event-ID, which beats ?since=', async () => {
    const room = uniqueRoom()
    const stored = await seed(room, 5)
    const ids = stored.map(frame => frame.id as number)

    const bySince = await ChatStream.open(base, { room, since: ids[0] })
    await until(() => bySince.messages.length === 4, 'replay after since')
    expect(bySince.messages.map(frame => frame.id)).toEqual(ids.slice(1))

    const byHeader = await ChatStream.open(base, { room, since: ids[0] }, { 'last-event-id': String(ids[3]) })
    await until(() => byHeader.messages.length >= 1, 'replay after Last-Event-ID')
    // Let anything wrongly replayed arrive: a live marker comes after the whole replay.
    await postMessage(base, { message: 'marker' }, { room })
    await until(() => byHeader.messages.some(frame => frame.message === 'marker'), 'marker')
    expect(byHeader.messages.map(frame => frame.message)).toEqual(['m-4', 'marker'])

    // A malformed or unknown cursor replays as if none was given (the last `replay` = 5 messages).
    const junk = await ChatStream.open(base, { room }, { 'last-event-id': 'not-a-cursor' })
    await until(() => junk.messages.length === 5, 'replay with a junk cursor')
    expect(junk.messages.map(frame => frame.message)).toEqual(['m-1', 'm-2', 'm-3', 'm-4', 'marker'])
    await Promise.all([bySince.close(), byHeader.close(), junk.close()])
  })

  it('sends a keep-alive comment every sse.keepAlive ms', async () => {
    const stream = await ChatStream.open(base, { room: uniqueRoom() })
    try {
      await until(() => (stream.text.match(/^: ping$/gm) ?? []).length >= 2, 'two keep-alive comments', 3000)
      // Comments are not frames.
      expect(stream.frames.every(frame => typeof frame.type === 'string')).toBe(true)
    }
    finally {
      await stream.close()
    }
  })

  it('replays the last `replay` messages when there is no cursor', async () => {
    const room = uniqueRoom()
    await seed(room, 8)
    const stream = await ChatStream.open(base, { room })
    const socket = await ChatSocket.open(ws(), { room })
    try {
      await until(() => stream.messages.length === 5 && socket.messages.length === 5, 'replays')
      expect(stream.messages.map(frame => frame.message)).toEqual(['m-3', 'm-4', 'm-5', 'm-6', 'm-7'])
      expect(socket.messages.map(frame => frame.message)).toEqual(['m-3', 'm-4', 'm-5', 'm-6', 'm-7'])
      // WebSocket keeps the same connect order.
      expect(socket.frames.slice(0, 2).map(frame => frame.type)).toEqual(['system', 'presence'])
    }
    finally {
      await Promise.all([stream.close(), socket.close()])
    }
  })
})

describe('HTTP POST', () => {
  it('stores JSON and text/plain bodies, answers the stored frame, and SSE and WS readers get it', async () => {
    const room = uniqueRoom()
    const stream = await ChatStream.open(base, { room })
    const socket = await ChatSocket.open(ws(), { room })
    try {
      await stream.waitFor(frame => frame.type === 'presence')
      await socket.waitFor(frame => frame.type === 'presence')

      const json = await postMessage(base, { message: 'json body', cid: 'c-1' }, { room, name: 'Poster' })
      expect(json.status).toBe(200)
      expect(json.json).toMatchObject({ type: 'message', room, user: 'Poster', message: 'json body', cid: 'c-1' })
      expect(typeof json.json!.id).toBe('number')
      expect(typeof json.json!.ts).toBe('number')

      const text = await postMessage(base, 'plain body', { room })
      expect(text.status).toBe(200)
      expect(text.json).toMatchObject({ type: 'message', room, message: 'plain body' })
      expect(text.json!.id as number).toBeGreaterThan(json.json!.id as number)

      for (const reader of [stream, socket]) {
        await until(() => reader.messages.length === 2, 'both messages')
        expect(reader.messages).toEqual([json.json, text.json])
      }
      const index = stream.frames.findIndex(frame => frame.type === 'message')
      expect(stream.ids[index]).toBe(String(json.json!.id))
    }
    finally {
      await Promise.all([stream.close(), socket.close()])
    }
  })

  it('refuses bad bodies with the documented status and error code, storing nothing', async () => {
    const room = uniqueRoom()
    const socket = await ChatSocket.open(ws(), { room })
    await socket.waitFor(frame => frame.type === 'presence')
    const raw = async (body: string, contentType: string) => {
      const response = await fetch(`${base}/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': contentType }, body })
      return { status: response.status, json: await response.json() as Record<string, unknown> }
    }

    const cases: [string, Promise<{ status: number, json?: Record<string, unknown> }>, number, string][] = [
      ['bad JSON', raw('{"message": "x"', 'application/json'), 400, 'bad_request'],
      ['JSON array', raw('["x"]', 'application/json'), 400, 'bad_request'],
      ['JSON null', raw('null', 'application/json'), 400, 'bad_request'],
      ['message is a number', postMessage(base, { message: 42 }, { room }), 400, 'bad_request'],
      ['message missing', postMessage(base, { text: 'x' }, { room }), 400, 'bad_request'],
      ['cid is empty', postMessage(base, { message: 'x', cid: '' }, { room }), 400, 'bad_request'],
      ['cid too long', postMessage(base, { message: 'x', cid: 'c'.repeat(65) }, { room }), 400, 'bad_request'],
      ['cid is a number', postMessage(base, { message: 'x', cid: 7 }, { room }), 400, 'bad_request'],
      ['empty JSON message', postMessage(base, { message: '   ' }, { room }), 400, 'empty'],
      ['empty text body', postMessage(base, '', { room }), 400, 'empty'],
      ['message over maxLength', postMessage(base, { message: 'x'.repeat(2001) }, { room }), 413, 'too_long'],
      ['body over maxPayload', postMessage(base, 'y'.repeat(70_000), { room }), 413, 'too_long'],
    ]
    for (const [what, pending, status, code] of cases) {
      const result = await pending
      expect(result.status, what).toBe(status)
      expect(result.json, what).toMatchObject({ type: 'error', code, user: 'server' })
      expect(typeof result.json!.message, what).toBe('string')
    }
    // The cid comes back on an error when the request had a usable one.
    const withCid = await postMessage(base, { message: 'x'.repeat(2001), cid: 'c-long' }, { room })
    expect(withCid.json).toMatchObject({ code: 'too_long', cid: 'c-long' })

    // Exactly at maxLength is fine, and is the only thing stored.
    const ok = await postMessage(base, { message: 'z'.repeat(2000) }, { room })
    expect(ok.status).toBe(200)
    await until(() => socket.messages.length === 1, 'the one good message')
    expect(socket.messages[0]!.id).toBe(ok.json!.id)
    await socket.close()
  })

  it('refuses a chunked body over maxPayload with 413 (no content-length to go by)', async () => {
    const room = uniqueRoom()
    const result = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const req = request(`${base}/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
        let body = ''
        res.on('data', (chunk) => {
          body += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('error', reject)
      for (let i = 0; i < 10; i++) req.write('w'.repeat(10_000))
      req.end()
    })
    expect(result.status).toBe(413)
    expect(JSON.parse(result.body)).toMatchObject({ type: 'error', code: 'too_long' })
    // The server logged no crash for it.
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(server.logs()).not.toMatch(/uncaughtException|unhandledRejection/)
    expect((await postMessage(base, 'still fine', { room })).status).toBe(200)
  })
})

describe('rooms', () => {
  it('are isolated across WebSocket, SSE and POST', async () => {
    const roomA = uniqueRoom('iso-a')
    const roomB = uniqueRoom('iso-b')
    const socketB = await ChatSocket.open(ws(), { room: roomB })
    const streamB = await ChatStream.open(base, { room: roomB })
    const socketA = await ChatSocket.open(ws(), { room: roomA, name: 'InA' })
    try {
      await socketA.waitFor(frame => frame.type === 'presence')
      await streamB.waitFor(frame => frame.type === 'presence')
      socketA.send('over the WebSocket in A')
      await postMessage(base, { message: 'over POST in A' }, { room: roomA })
      await until(() => socketA.messages.length === 2, 'A has both')

      // A marker in B comes after A's messages: anything leaking from A would be there by now.
      await postMessage(base, { message: 'marker in B' }, { room: roomB })
      await until(() => socketB.messages.length >= 1 && streamB.messages.length >= 1, 'marker in B')
      expect(socketB.messages.map(frame => frame.message)).toEqual(['marker in B'])
      expect(streamB.messages.map(frame => frame.message)).toEqual(['marker in B'])
      // Nor did B hear that InA joined A, and B's presence lists only B's peers.
      for (const reader of [socketB, streamB]) {
        expect(reader.frames.some(frame => String(frame.message).includes('InA'))).toBe(false)
        expect(reader.frames.every(frame => !('room' in frame) || frame.room === roomB)).toBe(true)
      }
      // Ids are per room: B's first message is 1 like A's.
      expect(socketB.messages[0]!.id).toBe(socketA.messages[0]!.id)
    }
    finally {
      await Promise.all([socketA.close(), socketB.close(), streamB.close()])
    }
  })
})

describe('WebSocket transport', () => {
  it('broadcasts on the fast path (frames written once, straight to each socket) and never falls back', async () => {
    const room = uniqueRoom('fast')
    const readers = await Promise.all([1, 2, 3].map(() => ChatSocket.open(ws(), { room })))
    try {
      // Each one's own presence frame: it has joined.
      await Promise.all(readers.map(reader => reader.waitFor(frame => frame.type === 'presence', 'joined')))
      readers[0]!.send('to everyone')
      await Promise.all(readers.map(reader => until(() => reader.messages.some(frame => frame.message === 'to everyone'), 'the broadcast')))
      // Text frames, as the seed's page expects (crossws sends a published object as binary).
      expect(readers.every(reader => reader.raw.every(frame => !frame.binary))).toBe(true)
      const metrics = await (await fetch(server.url('/_chat/metrics'))).text()
      const fast = Number(/nuxt_chat_ws_writes_total\{path="fast"\} (\d+)/.exec(metrics)?.[1])
      expect(fast).toBeGreaterThanOrEqual(3)
      // A lost fast path is logged once per reason (src/runtime/server/transport/internals.ts); none may appear on this platform.
      expect(server.logs()).not.toContain('falls back to crossws')
    }
    finally {
      await Promise.all(readers.map(reader => reader.close()))
    }
  })
})

/**
 * Chat connections on Nitro 2 are served on their `ws` socket without a crossws Peer
 * (src/runtime/server/transport/leanServer.ts), on Nitro 3 through crossws 0.4's peers: either way the
 * same frames and close codes. An app's own WebSocket route beside the chat's stays on crossws.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatSocketV2, ChatStreamV2, until } from '../utils/clients'
import { transportCounters } from '../utils/metrics'
import { nuxtMajor, startServer, type TestServer } from '../utils/server'

let server: TestServer
const ws = () => `ws://127.0.0.1:${server.port}`
const uniqueRoom = () => `lean-${randomUUID().slice(0, 8)}`
// Nuxt 5 (crossws 0.4) keeps the Peer path: the lean path is Nitro 2's.
const lean = nuxtMajor === 4

beforeAll(async () => {
  server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '0' } })
})

afterAll(async () => {
  await server?.stop()
})

const stats = () => transportCounters(server)

describe(lean ? 'chat connections without a crossws Peer (Nitro 2)' : 'chat connections on crossws peers (Nitro 3)', () => {
  it('serves each chat connection: welcome, messages, binary refused, close codes', async () => {
    const before = (await stats()).leanConnections
    const room = uniqueRoom()
    const [a, b] = [await ChatSocket.open(ws(), { room, name: 'Ann' }), await ChatSocket.open(ws(), { room, name: 'Bob' })]
    expect((await stats()).leanConnections).toBe(before + (lean ? 2 : 0))
    await a.waitFor(frame => frame.type === 'system' && (frame as { event?: string }).event === 'welcome', 'welcome')
    a.send({ type: 'message', message: 'hello', cid: 'c1' })
    await b.waitFor(frame => frame.type === 'message' && (frame as { message?: string }).message === 'hello', 'the message')
    a.send('{"type":"ping"}')
    await a.waitFor(frame => frame.type === 'pong', 'pong')
    // Binary frames are still told apart (no crossws Message in between).
    a.ws.send(Buffer.from('{"type":"ping"}'), { binary: true })
    await a.waitFor(frame => frame.type === 'error' && (frame as { code?: string }).code === 'bad_request', 'binary refused')
    // useChatServer().disconnect closes with 4001 on the lean path too.
    const welcome = a.frames.find(frame => (frame as { event?: string }).event === 'welcome') as { peer: { id: string } }
    const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'disconnect', room, userId: welcome.peer.id }) })
    expect(response.status).toBe(200)
    expect((await until(() => a.closed, 'closed by the server')).code).toBe(4001)
    await b.close()
  })
})

describe('an app\'s own WebSocket route', () => {
  it('still opens through crossws and echoes', async () => {
    const before = (await stats()).leanConnections
    const socket = new WebSocket(`${ws()}/_test/echo`)
    const frames: string[] = []
    socket.on('message', data => frames.push(data.toString()))
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
    await until(() => frames.length >= 1, 'the open frame')
    expect(JSON.parse(frames[0]!)).toEqual({ type: 'echo-open', peer: true })
    socket.send('hi')
    await until(() => frames.includes('echo:hi'), 'the echo')
    expect((await stats()).leanConnections).toBe(before)
    socket.close()
  })
})

describe('a server stopping (SIGTERM)', () => {
  it(lean ? 'ends its chat sockets itself with 1001, not Nitro\'s shutdown tearing them down' : 'ends its chat sockets', async () => {
    const stopping = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
    const room = uniqueRoom()
    const socket = await ChatSocket.open(`ws://127.0.0.1:${stopping.port}`, { room, name: 'Ann' })
    await socket.waitFor(frame => (frame as { event?: string }).event === 'welcome', 'welcome')
    // The one reach into Nitro's shutdown found its table (a Nitro that changed shape leaves it at 0).
    expect((await transportCounters(stopping)).untrackedFromShutdown).toBe(lean ? 1 : 0)
    await stopping.stop()
    const closed = await until(() => socket.closed, 'closed by the server')
    // Nitro 2's shutdown no longer tracks chat sockets (~400 B each): the chat says it is going away, so clients reconnect at once.
    expect(closed).toMatchObject({ code: 1001, reason: 'Server shutting down' })
  })

  it('with its graceful shutdown on, as in production: open chat sockets and streams do not hold it, the process ends at once', async () => {
    // srvx (Nitro 3) turns its graceful shutdown off when CI or TEST is set, as in this run: a production server has it.
    const stopping = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', CI: '', TEST: '' } })
    const v1 = await ChatSocket.open(`ws://127.0.0.1:${stopping.port}`, { room: uniqueRoom(), name: 'Ann' })
    await v1.waitFor(frame => (frame as { event?: string }).event === 'welcome', 'welcome')
    const v2 = await ChatSocketV2.openV2(`ws://127.0.0.1:${stopping.port}`, { name: 'Bob' })
    expect(await v2.join(uniqueRoom())).toMatchObject({ type: 'caught_up' })
    const stream = await ChatStreamV2.openV2(`http://127.0.0.1:${stopping.port}`, { name: 'Cat' })
    const started = Date.now()
    const exited = new Promise(resolve => stopping.process()!.once('exit', (code, signal) => resolve({ code, signal })))
    stopping.process()!.kill('SIGTERM')
    // Not the platform's graceful timeout (srvx: 5 s, then a process that did not end at all).
    expect(await Promise.race([exited, new Promise(resolve => setTimeout(() => resolve('still running'), 3000))])).toEqual({ code: 0, signal: null })
    expect(Date.now() - started).toBeLessThan(3000)
    expect(await until(() => v1.closed, 'version 1 closed')).toMatchObject({ code: 1001 })
    expect(await until(() => v2.closed, 'version 2 closed')).toMatchObject({ code: 1001 })
    expect(await Promise.race([stream.reader.done.then(() => 'ended'), new Promise(resolve => setTimeout(() => resolve('still open'), 1000))])).toBe('ended')
  })
})

describe('a version 2 join', () => {
  it('leaves in one write: `joined` waits for its presence list and `caught_up` (a batch told in the same turn)', async () => {
    const quiet = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
    try {
      // The server's write system calls (Linux): the kernel's count, not the module's.
      const writeCalls = () => Number(readFileSync(`/proc/${quiet.process()!.pid}/io`, 'utf8').match(/^syscw: (\d+)$/m)![1])
      const socket = await ChatSocketV2.openV2(`ws://127.0.0.1:${quiet.port}`, { name: 'Ann' })
      await socket.waitFor(frame => frame.type === 'hello', 'hello')
      // The server settled first (its start's own writes: the store, the log): until a quarter second passes without one (10 s at most).
      for (let previous = -1, now = writeCalls(), waits = 0; now !== previous && waits < 40; previous = now, now = writeCalls(), waits++) await new Promise(resolve => setTimeout(resolve, 250))
      const before = writeCalls()
      for (let i = 0; i < 3; i++) await socket.join(uniqueRoom())
      const writes = writeCalls() - before
      expect(socket.frames.filter(frame => frame.type === 'caught_up')).toHaveLength(3)
      // One per join (two before: `joined` left as its admission ended, three before that), and one spare for a stray write of the server's own.
      expect(writes).toBeLessThanOrEqual(4)
      await socket.close()
    }
    finally {
      await quiet.stop()
    }
  })
})

/**
 * Presence in deltas (docs/PROTOCOL.md, "Presence in deltas") against the built fixture with
 * real sockets: a newcomer gets the full list once, everyone else a small `presence_diff`, so
 * a join or leave in a room of n readers costs O(n) bytes, not O(n²).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { connect, type NetConnectOpts, type Socket } from 'node:net'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatStream, until } from '../utils/clients'
import { transportCounters } from '../utils/metrics'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
const ws = () => `ws://127.0.0.1:${server.port}`
const uniqueRoom = (prefix = 'pr') => `${prefix}-${randomUUID().slice(0, 8)}`

beforeAll(async () => {
  // A thousand readers from one address (its connections and joins not capped), none of them answering pings (the test is shorter than a round).
  server = await startServer({ env: { NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '5000', NUXT_CHAT_JOIN_RATE_LIMIT_PER_IP: 'false', NUXT_CHAT_HEARTBEAT_INTERVAL: '600000', NUXT_CHAT_SSE_KEEP_ALIVE: '600000' } })
})

afterAll(async () => {
  await server?.stop()
})

/**
 * A WebSocket reader at the TCP level: it counts the bytes the server sent after the upgrade
 * and remembers the last "N online" it saw, without decoding frames one by one (a thousand
 * `ws` clients would cost the test more CPU than the server).
 */
class CountingReader {
  bytes = 0
  online = 0
  /** End of the previous chunk, so a frame split across two reads is still seen. */
  private tail = ''
  private constructor(readonly socket: Socket) {}

  static open(port: number, path: string): Promise<CountingReader> {
    // A paused reader stops reading at once (no high-water buffer): the kernel holds what comes meanwhile.
    // net.Socket hands the option to its stream; @types/node does not list it.
    const socket = connect({ port, host: '127.0.0.1', readableHighWaterMark: 1 } as NetConnectOpts)
    const reader = new CountingReader(socket)
    return new Promise((resolve, reject) => {
      let head = ''
      socket.on('error', reject)
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      const onHead = (chunk: Buffer) => {
        head += chunk.toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head.split('\r\n')[0]))
        socket.off('data', onHead)
        socket.on('data', data => reader.read(data))
        reader.read(Buffer.from(head.slice(end + 4), 'latin1'))
        resolve(reader)
      }
      socket.on('data', onHead)
    })
  }

  private read(chunk: Buffer) {
    this.bytes += chunk.length
    const text = this.tail + chunk.toString('latin1')
    // Presence frames (full or diff) end with `"message":"N online"}`; the last one counts.
    const at = text.lastIndexOf(' online"}')
    if (at >= 0) this.online = Number(text.slice(text.lastIndexOf('"', at) + 1, at))
    this.tail = text.slice(-24)
  }
}

const totalBytes = (readers: CountingReader[]) => readers.reduce((sum, reader) => sum + reader.bytes, 0)

describe('presence in deltas', () => {
  it('gives the newcomer the full list and everyone else a presence_diff, on join and on leave', async () => {
    const room = uniqueRoom()
    const alice = await ChatSocket.open(ws(), { room, name: 'Alice' })
    const sse = await ChatStream.open(`http://127.0.0.1:${server.port}`, { room, name: 'Sam' })
    const bob = await ChatSocket.open(ws(), { room, name: 'Bob' })
    try {
      const full = await bob.waitFor(frame => frame.type === 'presence', 'the full list')
      expect(full).toMatchObject({ room, user: 'server', message: '3 online' })
      expect((full as { users: { name: string }[] }).users.map(user => user.name).sort()).toEqual(['Alice', 'Bob', 'Sam'])
      // The others hear only who joined.
      const joined = await alice.waitFor(frame => frame.type === 'presence_diff' && frame.count === 3, 'the join diff')
      expect(joined).toMatchObject({ type: 'presence_diff', room, leaves: [], count: 3, user: 'server', message: '3 online' })
      expect((joined as { joins: { name: string }[] }).joins.map(user => user.name)).toEqual(['Bob'])
      await sse.waitFor(frame => frame.type === 'presence_diff' && frame.count === 3, 'the join diff over SSE')
      expect(alice.frames.filter(frame => frame.type === 'presence')).toHaveLength(1)
      expect(sse.frames.filter(frame => frame.type === 'presence')).toHaveLength(1)

      await bob.close()
      const left = await alice.waitFor(frame => frame.type === 'presence_diff' && frame.count === 2 && frame.joins.length === 0, 'the leave diff')
      expect(left).toMatchObject({ type: 'presence_diff', room, joins: [], count: 2, message: '2 online' })
      expect((left as { leaves: { name: string }[] }).leaves.map(user => user.name)).toEqual(['Bob'])
      await sse.waitFor(frame => frame.type === 'presence_diff' && frame.count === 2 && frame.joins.length === 0, 'the leave diff over SSE')
    }
    finally {
      await Promise.all([alice.close(), sse.close(), bob.ws.readyState === WebSocket.OPEN ? bob.close() : undefined])
    }
  })

  it('sends a newcomer its full list and its replay from memory in one write', async () => {
    const room = uniqueRoom()
    const alice = await ChatSocket.open(ws(), { room, name: 'Alice' })
    const flushes = async () => (await transportCounters(server)).flushes
    try {
      for (let i = 0; i < 10; i++) alice.send({ type: 'message', message: `history ${i}` })
      await alice.waitFor(frame => frame.type === 'message' && frame.message === 'history 9', 'the last stored message')
      await new Promise(resolve => setTimeout(resolve, 100))
      const before = await flushes()
      const bob = await ChatSocket.open(ws(), { room, name: 'Bob' })
      await bob.waitFor(frame => frame.type === 'message' && frame.message === 'history 9', 'the replay')
      await alice.waitFor(frame => frame.type === 'presence_diff' && frame.count === 2, 'the join diff')
      await new Promise(resolve => setTimeout(resolve, 100))
      expect(bob.frames.map(frame => frame.type)).toEqual(['system', 'presence', ...Array.from({ length: 10 }, () => 'message')])
      // Bob's welcome at once, then his list and replay together (not one write each); Alice's join and diff in one.
      expect(await flushes() - before).toBe(3)
      await bob.close()
    }
    finally {
      await alice.close()
    }
  })

  // Filling the room is Θ(n²) frames whatever the protocol (everyone hears each join): ~9 s of
  // server CPU on a busy 2-core machine, most of this test; the join and leave cycles are quick.
  it('costs O(n) bytes per join and leave with 1,000 readers in one room', { timeout: 150_000 }, async () => {
    const room = uniqueRoom()
    const n = 1000
    const batch = 100
    // Linear is a few hundred bytes per reader per join (a system frame and a diff); the full list to everyone is ~n × 50.
    const perReaderPerJoin = 500
    const readers: CountingReader[] = []
    // One reader that decodes every frame, to check what the others only count.
    let probe: ChatSocket | undefined
    try {
      for (let i = 0; i < n; i += batch) {
        // All but the first reader wait while a batch joins, then read it in a few large chunks
        // rather than one small read per frame (which would cost this process more than the server).
        for (const reader of readers.slice(1)) reader.socket.pause()
        const joined = await Promise.all(Array.from({ length: batch }, (_, k) => CountingReader.open(server.port, `/_ws?room=${room}&name=reader${i + k}`)))
        for (const reader of joined.slice(i ? 0 : 1)) reader.socket.pause()
        readers.push(...joined)
        await until(() => readers[0]!.online === readers.length, `the first reader to see ${readers.length} joins`, 20_000)
        for (const reader of readers) reader.socket.resume()
        await until(() => readers.every(reader => reader.online === readers.length), `${readers.length} readers to see each other`, 20_000)
        // Filling the room: n joins, each linear in the room (fails at once when every join sends the whole list to everyone).
        expect(totalBytes(readers), `bytes after ${readers.length} joins`).toBeLessThan(readers.length * readers.length * perReaderPerJoin)
      }
      probe = await ChatSocket.open(ws(), { room, name: 'probe' })
      // Its own list first: the room may hear of the probe before its first frames are read here.
      await probe.waitFor(frame => frame.type === 'presence', 'the probe\'s list')
      await until(() => readers.every(reader => reader.online === n + 1), 'every reader to see the probe')

      const cycles = 5
      const before = totalBytes(readers)
      const probeFrames = probe.frames.length
      for (let cycle = 0; cycle < cycles; cycle++) {
        const newcomer = await ChatSocket.open(ws(), { room, name: `newcomer${cycle}` })
        const full = await newcomer.waitFor(frame => frame.type === 'presence', 'the newcomer\'s list')
        expect((full as { users: unknown[] }).users).toHaveLength(n + 2)
        await until(() => readers.every(reader => reader.online === n + 2), 'every reader to see the join')
        await newcomer.close()
        await until(() => readers.every(reader => reader.online === n + 1), 'every reader to see the leave')
      }
      const bytesPerCycle = (totalBytes(readers) - before) / cycles
      // Per cycle, the room heard "joined", a join diff, "left" and a leave diff: nothing else, and no full list.
      await until(() => probe!.frames.length >= probeFrames + 4 * cycles, 'the probe to hear every cycle')
      expect(probe.frames.slice(probeFrames).map(frame => frame.type === 'system' ? frame.event : frame.type)).toEqual(Array.from({ length: cycles }, () => ['join', 'presence_diff', 'leave', 'presence_diff']).flat())
      console.info(`[presence] ${n} readers: ${Math.round(bytesPerCycle / 2)} bytes sent to the room per join or leave (${Math.round(bytesPerCycle / 2 / n)} per reader)`)
      expect(bytesPerCycle).toBeLessThan(2 * n * perReaderPerJoin)
    }
    finally {
      for (const reader of readers) reader.socket.destroy()
      probe?.ws.terminate()
    }
  })
})

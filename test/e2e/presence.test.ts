/**
 * Presence in deltas (docs/PROTOCOL.md, "Presence in deltas") against the built fixture with
 * real sockets: a newcomer gets the full list once, everyone else a small `presence_diff`, so
 * a join or leave in a room of n readers costs O(n) bytes, not O(n²).
 */
import { randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatStream, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
const ws = () => `ws://127.0.0.1:${server.port}`
const uniqueRoom = (prefix = 'pr') => `${prefix}-${randomUUID().slice(0, 8)}`

beforeAll(async () => {
  // A thousand readers from one address.
  server = await startServer({ env: { NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '5000' } })
})

afterAll(async () => {
  await server?.stop()
})

/** A WebSocket reader that only counts: payload bytes, presence frames, and the last "N online". */
class CountingReader {
  bytes = 0
  presenceFrames = 0
  online = 0
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.bytes += data.length
      // Presence frames (full or diff) start with their type; their `message` ("N online") comes last.
      if (data[9] !== 0x70 || !data.subarray(0, 17).toString().startsWith('{"type":"presence')) return
      this.presenceFrames++
      const online = /"message":"(\d+) online"\}$/.exec(data.subarray(-40).toString())
      if (online) this.online = Number(online[1])
    })
    ws.on('error', () => {})
  }

  static open(url: string): Promise<CountingReader> {
    const reader = new CountingReader(new WebSocket(url))
    return new Promise((resolve, reject) => {
      reader.ws.once('open', () => resolve(reader))
      reader.ws.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)))
    })
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
      const left = await alice.waitFor(frame => frame.type === 'presence_diff' && frame.count === 2, 'the leave diff')
      expect(left).toMatchObject({ type: 'presence_diff', room, joins: [], count: 2, message: '2 online' })
      expect((left as { leaves: { name: string }[] }).leaves.map(user => user.name)).toEqual(['Bob'])
      await sse.waitFor(frame => frame.type === 'presence_diff' && frame.count === 2, 'the leave diff over SSE')
    }
    finally {
      await Promise.all([alice.close(), sse.close(), bob.ws.readyState === WebSocket.OPEN ? bob.close() : undefined])
    }
  })

  it('costs O(n) bytes per join and leave with 1,000 readers in one room', { timeout: 30_000 }, async () => {
    const room = uniqueRoom()
    const n = 1000
    const batch = 100
    // A linear cost is a few hundred bytes per reader per join; the full list to everyone is ~n × 50.
    const perReaderPerJoin = 500
    const readers: CountingReader[] = []
    try {
      for (let i = 0; i < n; i += batch) {
        readers.push(...await Promise.all(Array.from({ length: batch }, (_, k) => CountingReader.open(`${ws()}/_ws?room=${room}&name=reader${i + k}`))))
        await until(() => readers.every(reader => reader.online === readers.length), `${readers.length} readers to see each other`, 10_000)
        // Filling the room: n joins, each linear in the room (fails at once when every join sends the whole list to everyone).
        expect(totalBytes(readers), `bytes after ${readers.length} joins`).toBeLessThan(readers.length * readers.length * perReaderPerJoin)
      }

      const cycles = 10
      const before = totalBytes(readers)
      const presenceBefore = readers.map(reader => reader.presenceFrames)
      for (let cycle = 0; cycle < cycles; cycle++) {
        const newcomer = await ChatSocket.open(ws(), { room, name: `newcomer${cycle}` })
        const full = await newcomer.waitFor(frame => frame.type === 'presence', 'the newcomer\'s list')
        expect((full as { users: unknown[] }).users).toHaveLength(n + 1)
        await until(() => readers.every(reader => reader.online === n + 1), 'every reader to see the join')
        await newcomer.close()
        await until(() => readers.every(reader => reader.online === n), 'every reader to see the leave')
      }
      const bytesPerCycle = (totalBytes(readers) - before) / cycles
      // Two presence frames per cycle (join, leave) reached every reader.
      expect(readers.every((reader, i) => reader.presenceFrames - presenceBefore[i]! === 2 * cycles)).toBe(true)
      console.info(`[presence] ${n} readers: ${Math.round(bytesPerCycle)} bytes per join+leave to the room, ${Math.round(bytesPerCycle / n)} per reader`)
      expect(bytesPerCycle).toBeLessThan(2 * n * perReaderPerJoin)
    }
    finally {
      for (const reader of readers) reader.ws.terminate()
    }
  })
})

import { describe, expect, it } from 'vitest'
import * as wsModule from 'ws'
import { EventEmitter } from 'node:events'
import { encodeTextFrame, nextFrameIsBinary, watchSocket } from '../../src/runtime/server/utils/wsTransport'

// ws ships its frame parser but its types do not declare it.
const { Receiver } = wsModule as unknown as { Receiver: new (options: { isServer: boolean }) => NodeJS.EventEmitter & { write: (chunk: Buffer) => void } }

/** Decode frames with ws's own parser (as a client would). */
function decode(bytes: Buffer): { text: string, binary: boolean }[] {
  const receiver = new Receiver({ isServer: false })
  const out: { text: string, binary: boolean }[] = []
  receiver.on('message', (data: Buffer, binary: boolean) => out.push({ text: data.toString(), binary }))
  receiver.write(bytes)
  return out
}

describe('encodeTextFrame', () => {
  it.each([0, 1, 125, 126, 1000, 65535, 65536, 200_000])('frames %i bytes as one text frame ws can read', (size) => {
    const text = 'é'.repeat(Math.floor(size / 2)) + (size % 2 ? 'x' : '')
    const decoded = decode(encodeTextFrame(Buffer.from(text)))
    expect(decoded).toEqual([{ text, binary: false }])
  })
  it('frames back to back on one stream', () => {
    const stream = Buffer.concat(['a', 'b'.repeat(300), 'c'].map(text => encodeTextFrame(Buffer.from(text))))
    expect(decode(stream).map(frame => frame.text)).toEqual(['a', 'b'.repeat(300), 'c'])
  })
})

describe('watchSocket', () => {
  it('reports binary flags frame by frame, even when frames arrive together, and marks pongs', () => {
    const ws = Object.assign(new EventEmitter(), { readyState: 1, ping() {}, terminate() {} })
    const watch = { alive: false, binaryFlags: [] as boolean[] }
    watchSocket(ws as unknown as Parameters<typeof watchSocket>[0], watch)
    // One TCP chunk: all three parsed before the first message hook runs.
    ws.emit('message', Buffer.from('a'), false)
    ws.emit('message', Buffer.from('b'), false)
    ws.emit('message', Buffer.from([1]), true)
    ws.emit('pong')
    expect([nextFrameIsBinary(watch), nextFrameIsBinary(watch), nextFrameIsBinary(watch)]).toEqual([false, false, true])
    expect(nextFrameIsBinary(watch)).toBe(false)
    expect(watch.alive).toBe(true)
  })
})

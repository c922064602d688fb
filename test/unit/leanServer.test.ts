/**
 * The chat's own `ws` server (src/runtime/server/transport/leanServer.ts) with a real HTTP server and
 * client: a socket is held (corked) from its 101 until the chat's first frames are written, so
 * every way out of opening must let it go.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { afterEach, expect, it, vi } from 'vitest'
import type { ChatSocketHandlers } from '../../src/runtime/server/transport/chatTransport'
import { createChatWebSocketServer, serveChatSockets, type ChatSocket } from '../../src/runtime/server/transport/leanServer'
import { RoomFrame } from '../../src/runtime/server/transport/frame'
import { chatLogger } from '../../src/runtime/server/utils/logger'

const servers: { close: () => void }[] = []
afterEach(() => {
  for (const server of servers.splice(0)) server.close()
  vi.restoreAllMocks()
})

/** An HTTP server whose upgrades go to the chat's `ws` server as crossws hands them over (admitted). */
async function chatServer() {
  const wss = createChatWebSocketServer({})
  const server = createServer()
  server.on('upgrade', (req: IncomingMessage & { _context?: object }, socket, head) => {
    req._context = { chatAdmission: {} }
    wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  servers.push(server)
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/_ws`
}

/** Handlers that do nothing but `open`. */
function opening(open: ChatSocketHandlers<object>['open']): ChatSocketHandlers<object> {
  return { open, message() {}, pong() {}, close() {}, error() {} }
}

/** How a client's connection ended within 2 s: `open`, `failed`, or `hung`. */
function outcome(url: string): Promise<string> {
  const ws = new WebSocket(url)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('hung'), 2000)
    const end = (how: string) => {
      clearTimeout(timer)
      ws.terminate()
      resolve(how)
    }
    ws.once('open', () => end('open'))
    ws.once('error', () => end('failed'))
    ws.once('close', () => end('failed'))
  })
}

it('a chat socket opened without trouble gets its 101 and the frames written while it was held', async () => {
  serveChatSockets(opening((transport) => {
    transport.writeFrame(new RoomFrame('welcome'))
    return {}
  }))
  const ws = new WebSocket(await chatServer())
  const first = await new Promise(resolve => ws.once('message', data => resolve(String(data))))
  ws.terminate()
  expect(first).toBe('welcome')
})

it('a throw while opening a chat socket ends that connection at once and is logged: never left held and half-open', async () => {
  const logged = vi.spyOn(chatLogger, 'error').mockImplementation(() => {})
  serveChatSockets(opening(() => {
    throw new TypeError('boom')
  }))
  expect(await outcome(await chatServer())).toBe('failed')
  expect(logged).toHaveBeenCalledWith('[nuxt-chat] could not open a chat connection', expect.any(TypeError))
})

it('a chat socket\'s events reach the handlers with its connection, and the socket holds no listener of its own', async () => {
  const seen: string[] = []
  const member = { name: 'm' }
  let served: ChatSocket | undefined
  let closed: () => void
  const ended = new Promise<void>((resolve) => {
    closed = resolve
  })
  serveChatSockets<typeof member>({
    open(transport) {
      served = transport as ChatSocket
      transport.writeFrame(new RoomFrame('welcome'))
      return member
    },
    message: (m, text) => seen.push(`${m.name} message ${text}`),
    pong: m => seen.push(`${m.name} pong`),
    close(m) {
      seen.push(`${m.name} close`)
      closed()
    },
    error: () => seen.push('error'),
  })
  const ws = new WebSocket(await chatServer())
  await new Promise(resolve => ws.once('message', resolve))
  // (`close` has one: `ws`'s server tracking its clients.)
  expect(['message', 'pong', 'close', 'error'].map(event => served!.listenerCount(event))).toEqual([0, 0, 1, 0])
  ws.send('hello')
  ws.send(Buffer.from([1]), { binary: true })
  ws.pong()
  await vi.waitFor(() => expect(seen).toEqual(['m message hello', 'm message undefined', 'm pong']))
  ws.close()
  await ended
  expect(seen).toEqual(['m message hello', 'm message undefined', 'm pong', 'm close'])
})

it('an error on a chat socket refused at open goes to the error handler, not thrown for want of a listener', async () => {
  const errors: Error[] = []
  let refused: ChatSocket | undefined
  serveChatSockets({
    ...opening((transport) => {
      refused = transport as ChatSocket
      return undefined
    }),
    error: error => errors.push(error),
  })
  const ws = new WebSocket(await chatServer())
  await vi.waitFor(() => expect(refused).toBeDefined())
  expect(refused!.emit('error', new Error('late'))).toBe(true)
  expect(errors.map(error => error.message)).toEqual(['late'])
  ws.terminate()
})

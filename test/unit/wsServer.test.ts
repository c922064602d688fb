/**
 * The chat's own `ws` server (src/runtime/server/utils/wsServer.ts) with a real HTTP server and
 * client: a socket is held (corked) from its 101 until the chat's first frames are written, so
 * every way out of opening must let it go.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { afterEach, expect, it, vi } from 'vitest'
import { createChatWebSocketServer, serveChatSockets } from '../../src/runtime/server/utils/wsServer'
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
  serveChatSockets((ws) => {
    ws.send('welcome')
    return true
  })
  const ws = new WebSocket(await chatServer())
  const first = await new Promise(resolve => ws.once('message', data => resolve(String(data))))
  ws.terminate()
  expect(first).toBe('welcome')
})

it('a throw while opening a chat socket ends that connection at once and is logged: never left held and half-open', async () => {
  const logged = vi.spyOn(chatLogger, 'error').mockImplementation(() => {})
  serveChatSockets(() => {
    throw new TypeError('boom')
  })
  expect(await outcome(await chatServer())).toBe('failed')
  expect(logged).toHaveBeenCalledWith('[nuxt-chat] could not open a chat connection', expect.any(TypeError))
})

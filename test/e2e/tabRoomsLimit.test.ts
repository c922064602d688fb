/**
 * A tab past `maxRoomsPerConnection` (docs/PROTOCOL.md, "Commands, version 2"): the room its
 * shared connection cannot take more of is refused for good (`too_many_rooms` in `error`, no
 * retries, no second connection), and opens once another room of the tab has closed.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatConnection } from '../../src/runtime/app/chatConnection'
import { forgetSharedSockets } from '../../src/runtime/app/sharedSocket'
import { until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const PlainWebSocket = globalThis.WebSocket
/** Every WebSocket the tab opened, and every command it sent on them. */
const opened: string[] = []
const sent: string[] = []

describe('a tab past maxRoomsPerConnection', () => {
  let server: TestServer
  const connections: ChatConnection[] = []
  beforeAll(async () => {
    globalThis.WebSocket = class extends PlainWebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols)
        opened.push(String(url))
      }

      override send(data: string) {
        sent.push(data)
        super.send(data)
      }
    } as typeof WebSocket
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_MAX_ROOMS_PER_CONNECTION: '2' } })
  })
  afterAll(async () => {
    for (const connection of connections) connection.close()
    forgetSharedSockets()
    globalThis.WebSocket = PlainWebSocket
    await server?.stop()
  })

  it('refuses the third room with too_many_rooms, retries nothing, and opens it once a room closed', async () => {
    const tab = randomUUID().replaceAll('-', '')
    const room = (name: string) => {
      const connection = createChatConnection({
        room: name, name: 'Tab', transport: 'ws', route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 10, maxLength: 2000,
        autoReconnect: { delay: 50, maxDelay: 100 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'), guestKey: tab, shareSocket: true,
      })
      connections.push(connection)
      connection.open()
      return connection
    }
    const [first, second] = [room(`a-${tab.slice(0, 6)}`), room(`b-${tab.slice(0, 6)}`)]
    await until(() => first.status.value === 'OPEN' && second.status.value === 'OPEN', 'two rooms open')
    const third = room(`c-${tab.slice(0, 6)}`)
    await until(() => third.error.value, 'the third room refused')
    expect(third.error.value).toMatchObject({ code: 'too_many_rooms', message: expect.stringContaining('close one') })
    expect(third.status.value).toBe('CLOSED')
    // Ten reconnect delays later: still one join of it, one socket.
    await new Promise(resolve => setTimeout(resolve, 1000))
    expect(sent.filter(text => text.includes('"join"') && text.includes('"c-')).length).toBe(1)
    expect(opened).toHaveLength(1)

    first.close()
    third.open()
    await until(() => third.status.value === 'OPEN', 'the third room open after the first closed')
    expect(third.error.value).toBeNull()
    expect(opened).toHaveLength(1)
  })
})

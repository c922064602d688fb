import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, presenceSeen, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

// Server-side dead-peer detection: WebSocket ping frames every `heartbeat.interval`; a peer
// that answered nothing for a whole interval is dropped (within 2 intervals) and leaves the room.
describe('server heartbeat', () => {
  // Long enough that a loaded machine's test process still answers pings in time (at 200 ms it sometimes did not).
  const INTERVAL = 500
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_HEARTBEAT_INTERVAL: String(INTERVAL) } })
  })
  afterAll(() => server?.stop())

  it('drops a peer that stops answering pings, and tells the room', async () => {
    const room = `hb-${randomUUID().slice(0, 8)}`
    const watcher = await ChatSocket.open(server.wsUrl(''), { room, name: 'watcher' })
    // A client whose pong never comes: the socket looks open but is dead.
    const dead = await ChatSocket.open(server.wsUrl(''), { room, name: 'ghost' }, { autoPong: false })
    await until(() => presenceSeen(watcher).length === 2, 'both online')
    const started = Date.now()
    await watcher.waitFor(frame => frame.type === 'system' && frame.message === 'ghost left!', 'ghost to leave', 10 * INTERVAL)
    // Within two intervals, and half a second for a loaded machine's timers.
    expect(Date.now() - started).toBeLessThan(2 * INTERVAL + 500)
    await until(() => dead.closed, 'the dead socket to be closed')
    // The live one answers pings by itself and stays.
    await new Promise(resolve => setTimeout(resolve, 3 * INTERVAL))
    expect(watcher.closed).toBeUndefined()
    watcher.send('still here')
    await watcher.waitFor(frame => frame.type === 'message' && frame.message === 'still here', 'echo')
    await watcher.close()
  })
})

// A number setting that is not one (an env typo) used to make NaN heartbeat slices: every chat upgrade then hung, held and never answered.
it('a heartbeat interval that is not a number stops the server before it listens, with one line naming the variable', async () => {
  await expect(startServer({ env: { NUXT_CHAT_HEARTBEAT_INTERVAL: '25s' } })).rejects.toThrow('chat.heartbeat.interval (NUXT_CHAT_HEARTBEAT_INTERVAL) is "25s": it must be a number of 0 or more (default 25000)')
})

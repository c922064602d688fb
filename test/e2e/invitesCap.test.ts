/**
 * Invites under the read positions cap (docs/PROTOCOL.md, "Read state"): a position someone else's
 * act made (an `invite`, a `create` naming the person) counts as never read, so past
 * `maxReadPositions` it goes first. Against a built server with real version 2 sockets: another
 * person's rooms cannot push out the room the person joined.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocketV2 } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
const MAX_READ_POSITIONS = 3
const ENV = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false', NUXT_CHAT_MAX_READ_POSITIONS: String(MAX_READ_POSITIONS) }

describe('invites under the read positions cap', () => {
  let server: TestServer
  const opened: ChatSocketV2[] = []
  const open = async (user: string) => {
    const socket = await ChatSocketV2.openAs(server.wsUrl(''), user)
    opened.push(socket)
    return socket
  }
  /** The rooms list as the server reads it now (a `rooms` command: its answer is the next `rooms` frame). */
  const listOf = async (socket: ChatSocketV2) => {
    const before = socket.frames.filter(frame => frame.type === 'rooms').length
    socket.send({ type: 'rooms' })
    await socket.waitFor(() => socket.frames.filter(frame => frame.type === 'rooms').length > before, 'the rooms list')
    const list = socket.frames.filter(frame => frame.type === 'rooms').at(-1)!
    return (list.rooms as { room: string }[]).map(entry => entry.room)
  }

  beforeAll(async () => {
    server = await startServer({ env: ENV })
  })
  afterAll(async () => {
    await Promise.all(opened.map(socket => socket.close()))
    await server?.stop()
  })

  it('five rooms another person makes with you in them leave the room you joined in your list; the newest of theirs is there', async () => {
    const victimId = `user-victim-${tag}`
    const victim = await open(victimId)
    const favourite = `favourite-${tag}`
    expect(await victim.join(favourite)).toMatchObject({ type: 'caught_up' })
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(await listOf(victim)).toEqual([favourite])
    const griefer = await open(`user-griefer-${tag}`)
    const made: string[] = []
    for (let index = 0; index < 5; index++) {
      const created = await griefer.ask({ type: 'create', title: `spam ${index}`, visibility: 'public', members: [victimId] }, frame => frame.type === 'caught_up' || frame.type === 'error')
      expect(created).toMatchObject({ type: 'caught_up' })
      made.push(created.room as string)
    }
    await new Promise(resolve => setTimeout(resolve, 500))
    const list = await listOf(victim)
    expect(list).toContain(favourite)
    expect(list).toContain(made.at(-1))
    expect(list.length).toBeLessThanOrEqual(MAX_READ_POSITIONS)
    // Its room was never taken from it: no `removed` entry for it reached the victim.
    expect(victim.frames.some(frame => frame.type === 'room' && frame.room === favourite && frame.removed)).toBe(false)
  })
})

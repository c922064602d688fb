/**
 * A mute lasts until it ends, whatever happens to the membership (docs/PROTOCOL.md, "Moderation
 * commands"): against a built server with real version 2 sockets, a muted member who leaves for
 * good (`remove` of themselves) and joins again, or sends without joining, is still refused
 * `muted`; so is one whose membership went with a read position evicted by `maxReadPositions`.
 * A mute of someone who is no member of a private room is no way in. Users are the fixture's
 * `user-…` toy sessions.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocketV2, postMessage } from '../utils/clients'
import { callServer, startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
const newUser = (prefix = 'user') => `${prefix}-${tag}-${++users}`
/** Read positions a user keeps: a few joins evict the oldest. */
const MAX_READ_POSITIONS = 3
// Many rooms from one address: the limits are not what these tests are about.
const ENV = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false', NUXT_CHAT_MAX_READ_POSITIONS: String(MAX_READ_POSITIONS) }

describe('a mute kept past the membership', () => {
  let server: TestServer
  const opened: ChatSocketV2[] = []
  const open = async (user: string) => {
    const socket = await ChatSocketV2.openAs(server.wsUrl(''), user)
    opened.push(socket)
    return socket
  }
  const say = (socket: ChatSocketV2, room: string, message: string) => socket.ask({ type: 'message', room, message, cid: randomUUID() }, frame => frame.type === 'error' || frame.type === 'ack')
  /** A message POSTed to the room (a version 1 POST: no join needed in a public room). */
  const post = (user: string, room: string, message: string) => postMessage(server.url('').replace(/\/$/, ''), { message, cid: randomUUID() }, { room }, { 'cookie': `session=${user}`, 'sec-fetch-site': 'same-origin' })
  const membersOf = async (room: string) => (await callServer<{ uid: string, role?: string, mutedUntil?: number, muteOnly?: true }[]>(server, { call: 'members', room })).body

  beforeAll(async () => {
    server = await startServer({ env: ENV })
  })
  afterAll(async () => {
    await Promise.all(opened.map(socket => socket.close()))
    await server?.stop()
  })

  it('a muted member who leaves for good stays muted: sending without joining, and after joining again, is refused `muted`', async () => {
    const [ownerId, trollId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const troll = await open(trollId)
    const room = (await owner.ask({ type: 'create', title: 'Open', visibility: 'public' })).room as string
    expect(await troll.join(room)).toMatchObject({ type: 'caught_up' })
    expect(await owner.ask({ type: 'mute', room, user: trollId })).toMatchObject({ type: 'ack', room })
    expect(await say(troll, room, 'spam 1')).toMatchObject({ type: 'error', code: 'muted' })

    // Leaving still works: they are no member any more, and the room leaves their connection.
    expect(await troll.ask({ type: 'remove', room, user: trollId })).toMatchObject({ type: 'ack', room })
    await troll.waitFor(frame => frame.type === 'left' && frame.room === room, 'left')
    // A public room takes messages from people who are no members: not from this one.
    expect(await post(trollId, room, 'spam 2')).toMatchObject({ status: 403, json: { code: 'muted' } })
    expect((await membersOf(room)).find(member => member.uid === trollId)).toMatchObject({ muteOnly: true, mutedUntil: expect.any(Number) })

    expect(await troll.join(room)).toMatchObject({ type: 'caught_up', room })
    expect(troll.frames.findLast(frame => frame.type === 'joined' && frame.room === room)).toMatchObject({ mutedUntil: expect.any(Number) })
    expect(await say(troll, room, 'spam 3')).toMatchObject({ type: 'error', code: 'muted' })
    expect(owner.messages.filter(message => message.room === room)).toEqual([])
    // Their membership is back, with the mute; unmuted, they speak.
    expect((await membersOf(room)).find(member => member.uid === trollId)).toMatchObject({ role: 'member', mutedUntil: expect.any(Number) })
    expect(await owner.ask({ type: 'mute', room, user: trollId, until: 0 })).toMatchObject({ type: 'ack', room })
    expect(await say(troll, room, 'sorry')).toMatchObject({ type: 'ack', room })
  })

  it('a muted member whose membership went with a position evicted by `maxReadPositions` stays muted', async () => {
    const [ownerId, trollId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const troll = await open(trollId)
    const room = (await owner.ask({ type: 'create', title: 'Open', visibility: 'public' })).room as string
    expect(await troll.join(room)).toMatchObject({ type: 'caught_up' })
    expect(await owner.ask({ type: 'mute', room, user: trollId })).toMatchObject({ type: 'ack', room })
    for (let index = 0; index < MAX_READ_POSITIONS; index++) {
      expect(await troll.join(`elsewhere-${tag}-${users}-${index}`)).toMatchObject({ type: 'caught_up' })
    }
    // Past the admission cache (5 s): what is stored decides.
    await new Promise(resolve => setTimeout(resolve, 5200))
    expect(await say(troll, room, 'after eviction')).toMatchObject({ type: 'error', code: 'muted' })
    expect(await post(trollId, room, 'after eviction')).toMatchObject({ status: 403, json: { code: 'muted' } })
    // The membership went with its position (the room left their rooms list); the mute did not.
    expect((await membersOf(room)).find(member => member.uid === trollId)).toMatchObject({ muteOnly: true, mutedUntil: expect.any(Number) })
    // Joining again (on a new connection: this one is still in the room) makes a membership with the mute.
    const again = await open(trollId)
    expect(await again.join(room)).toMatchObject({ type: 'caught_up', room })
    expect(await say(again, room, 'after joining again')).toMatchObject({ type: 'error', code: 'muted' })
    expect((await membersOf(room)).find(member => member.uid === trollId)).toMatchObject({ role: 'member', mutedUntil: expect.any(Number) })
    expect((await membersOf(room)).find(member => member.uid === trollId)).not.toHaveProperty('muteOnly')
  }, 20_000)

  it('server code that forgets a muted member (`forget`, `removeMember`) ends the membership, not the mute', async () => {
    const [ownerId, trollId, otherId] = [newUser(), newUser(), newUser()]
    const room = ((await callServer<{ id: string }>(server, { call: 'createRoom', input: { owner: ownerId, members: [trollId, otherId] } })).body).id
    for (const uid of [trollId, otherId]) expect((await callServer(server, { call: 'mute', room, userId: uid })).body).toMatchObject({ role: 'member', mutedUntil: expect.any(Number) })
    expect((await callServer(server, { call: 'forget', room, userId: trollId })).status).toBe(200)
    expect((await callServer(server, { call: 'removeMember', room, userId: otherId })).body).toMatchObject({ removed: true, mutedUntil: expect.any(Number) })
    for (const uid of [trollId, otherId]) {
      expect(await post(uid, room, 'still here')).toMatchObject({ status: 403, json: { code: 'muted' } })
      expect((await membersOf(room)).find(member => member.uid === uid)).toMatchObject({ muteOnly: true })
    }
  })

  it('a mute of someone who is no member of a private room lets them in nowhere, even once it ends', async () => {
    const [ownerId, outsiderId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const room = (await owner.ask({ type: 'create', title: 'Staff', visibility: 'private' })).room as string
    expect(await say(owner, room, 'private history')).toMatchObject({ type: 'ack', room })
    expect(await owner.ask({ type: 'mute', room, user: outsiderId, until: Date.now() + 500 })).toMatchObject({ type: 'ack', room })
    const outsider = await open(outsiderId)
    expect(await outsider.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })
    await new Promise(resolve => setTimeout(resolve, 700))
    expect(await outsider.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })
    expect((await membersOf(room)).find(member => member.uid === outsiderId)).toMatchObject({ muteOnly: true })
    expect(await post(outsiderId, room, 'let me in')).toMatchObject({ status: 403, json: { code: 'forbidden' } })
    expect(outsider.messages).toEqual([])
    // An invite is the way in.
    expect(await owner.ask({ type: 'invite', room, user: outsiderId })).toMatchObject({ type: 'ack', room })
    expect(await outsider.join(room)).toMatchObject({ type: 'caught_up', room })
  })
})

/**
 * "Seen by" (issue 24, docs/PROTOCOL.md "Seen by"): in a direct room or a small room with a
 * record, a version 2 connection is told every member's read position after its join and each
 * move live, on every instance; version 1 connections never get a `seen` frame. On SQLite (one
 * instance) and on two PostgreSQL instances over Redis, with real sockets and the fixture's
 * `user-…` toy sessions.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatSocketV2, type FrameV2 } from '../utils/clients'
import { callServer, serverPairs, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
const newUser = () => `user-${tag}-${++users}`
const UNLIMITED = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' }

/** A `useChatServer()` call that must succeed: its answer. */
async function checkedCall(server: TestServer, body: Record<string, unknown>) {
  const { status, body: answer } = await callServer(server, body)
  expect(status).toBe(200)
  return answer
}

/** Every position a socket was told for `room`, merged as a client keeps them (the highest per member). */
function seenOf(socket: ChatSocketV2, room: string): Record<string, number> {
  const seen: Record<string, number> = {}
  for (const frame of socket.frames) {
    if (frame.type !== 'seen' || frame.room !== room) continue
    for (const [uid, read] of Object.entries(frame.seen as Record<string, number>)) seen[uid] = Math.max(seen[uid] ?? 0, read)
  }
  return seen
}

describe.each(serverPairs('nuxt_chat_seen', UNLIMITED))('seen by on %s', (_name, start) => {
  let a: TestServer
  let b: TestServer
  const opened: { close: () => unknown }[] = []
  const open = async (server: TestServer, user: string) => {
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: `session=${user}` } })
    opened.push(socket)
    return socket
  }

  let stop: (() => Promise<unknown>) | undefined
  beforeAll(async () => {
    const started = await start()
    ;[a, b] = started.servers
    stop = started.stop
  })
  afterAll(async () => {
    for (const socket of opened) await socket.close()
    await stop?.()
  })

  it('a direct room: each side learns the other\'s position at join and live, whichever instance it is on', async () => {
    const [ann, ben] = [newUser(), newUser()]
    const room = (await checkedCall(a, { call: 'directRoom', userId: ann, otherId: ben })).id as string
    const annSocket = await open(a, ann)
    expect(await annSocket.join(room)).toMatchObject({ type: 'caught_up' })
    // Nobody has read anything yet: both members, at 0.
    expect(seenOf(annSocket, room)).toEqual({ [ann]: 0, [ben]: 0 })
    const benSocket = await open(b, ben)
    expect(await benSocket.join(room)).toMatchObject({ type: 'caught_up' })
    annSocket.send({ type: 'message', room, message: 'hello Ben', cid: 'c1' })
    const stored = await benSocket.waitFor((frame: FrameV2) => frame.type === 'message' && frame.room === room)
    benSocket.send({ type: 'read', room, id: stored.id })
    // Ann, on the other instance, sees Ben's read; Ben gets his own `read`, not a `seen` of himself.
    await annSocket.waitFor(frame => frame.type === 'seen' && (frame.seen as Record<string, number>)[ben] === stored.id, 'Ben\'s read on Ann\'s socket')
    await benSocket.waitFor(frame => frame.type === 'read' && frame.room === room && frame.read === stored.id)
    expect(benSocket.frames.some(frame => frame.type === 'seen' && Object.keys(frame.seen as object).length === 1 && ben in (frame.seen as object))).toBe(false)
    // A newcomer's join tells where everyone is.
    const again = await open(a, ann)
    expect(await again.join(room)).toMatchObject({ type: 'caught_up' })
    expect(seenOf(again, room)).toMatchObject({ [ben]: stored.id })
  })

  it('a room of more than 50 members tells nothing; a room without a record neither; version 1 never gets `seen`', async () => {
    const owner = newUser()
    const big = `big-${randomUUID().slice(0, 8)}`
    await checkedCall(a, { call: 'createRoom', input: { id: big, title: 'Big', visibility: 'public', owner, members: Array.from({ length: 50 }, () => newUser()) } })
    const plain = `plain-${randomUUID().slice(0, 8)}`
    const socket = await open(a, owner)
    expect(await socket.join(big)).toMatchObject({ type: 'caught_up' })
    expect(await socket.join(plain)).toMatchObject({ type: 'caught_up' })
    expect(socket.frames.filter(frame => frame.type === 'seen')).toEqual([])

    const small = `small-${randomUUID().slice(0, 8)}`
    const member = newUser()
    await checkedCall(a, { call: 'createRoom', input: { id: small, title: 'Small', visibility: 'public', owner, members: [member] } })
    const v1 = await ChatSocket.open(b.wsUrl(''), { room: small }, { headers: { cookie: `session=${owner}` } })
    opened.push(v1)
    await v1.waitFor(frame => frame.type === 'presence')
    const reader = await open(b, member)
    expect(await reader.join(small)).toMatchObject({ type: 'caught_up' })
    expect(seenOf(reader, small)).toEqual({ [owner]: expect.any(Number), [member]: expect.any(Number) })
    const sent = await checkedCall(a, { call: 'send', room: small, message: 'news', user: { id: owner, name: owner } })
    await v1.waitFor(frame => frame.type === 'message')
    reader.send({ type: 'read', room: small, id: sent.id })
    await reader.waitFor(frame => frame.type === 'read' && frame.room === small)
    // The read reached instance b's room (the v1 socket is in it), and the v1 socket got no `seen`.
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(v1.frames.some(frame => (frame as { type: string }).type === 'seen')).toBe(false)
  })
})

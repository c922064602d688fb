/**
 * Rooms and members on protocol version 2 (docs/PROTOCOL.md, "Rooms and members, version 2"),
 * against a built server with real version 2 sockets: a private room made and joined with its
 * invitees while an outsider is refused, a direct room from both sides, a mute that refuses one
 * room's sends only, and bad input answered with errors naming the ref. Users are the fixture's
 * `user-…` toy sessions.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { directRoomId } from '../../src/runtime/server/utils/roomMembers'
import { ChatSocketV2, postMessage, until, type FrameV2 } from '../utils/clients'
import { callServer, startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
const newUser = (prefix = 'user') => `${prefix}-${tag}-${++users}`
const wsBase = (server: TestServer) => server.wsUrl('')
// Many rooms from one address: the limits are not what these tests are about.
const UNLIMITED = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' }

describe('rooms and members on protocol version 2', () => {
  let server: TestServer
  const opened: ChatSocketV2[] = []
  /** A version 2 socket signed in as `user` (undefined: a guest), after its `hello`. */
  const open = async (user?: string) => {
    const socket = await ChatSocketV2.openAs(wsBase(server), user)
    opened.push(socket)
    return socket
  }
  /** `gated-` rooms: the fixture's `chat:join` holds their joins (and rooms lists showing them) while the test says so. */
  const joinGate = async (room: string, action: 'close' | 'open' | 'waiting') => (await fetch(server.url('/_test/join-gate'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room, action }) })).json() as Promise<{ waiting?: number }>

  beforeAll(async () => {
    server = await startServer({ env: UNLIMITED })
  })
  afterAll(async () => {
    await Promise.all(opened.map(socket => socket.close()))
    await server?.stop()
  })

  it('creates a private room joined at once; an invitee joins, an outsider is refused', async () => {
    const [ownerId, inviteeId, outsiderId] = [newUser(), newUser(), newUser()]
    const owner = await open(ownerId)
    const created = await owner.ask({ type: 'create', title: 'Team <b>', visibility: 'private' })
    expect(created).toMatchObject({ type: 'caught_up' })
    const room = created.room as string
    expect(room).toMatch(/^room-[\w-]{16}$/)
    expect(owner.frames.find(frame => frame.type === 'joined' && frame.room === room)).toMatchObject({ me: { id: ownerId } })

    const outsider = await open(outsiderId)
    expect(await outsider.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })
    const invitee = await open(inviteeId)
    expect(await invitee.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })

    expect(await owner.ask({ type: 'invite', room, user: inviteeId })).toEqual({ type: 'ack', ref: expect.any(String), room })
    expect(await invitee.join(room)).toMatchObject({ type: 'caught_up', room })
    // The invitee is a member, not a moderator: they may not invite the outsider.
    expect(await invitee.ask({ type: 'invite', room, user: outsiderId })).toMatchObject({ type: 'error', code: 'forbidden', room })
    expect(await outsider.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })

    // Unmuting someone who is no member makes nothing: not a way around the app's rules for `invite`.
    expect(await owner.ask({ type: 'mute', room, user: outsiderId, until: 0 })).toMatchObject({ type: 'error', code: 'not_found', room })
    expect(await outsider.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })

    // Members made at creation are in at once.
    const withMembers = await owner.ask({ type: 'create', title: 'Pair', visibility: 'private', members: [outsiderId] })
    expect(await outsider.join(withMembers.room as string)).toMatchObject({ type: 'caught_up' })
  })

  it('a join still being admitted reaches nothing of a private room: commands sent with it are not_found, then the join is refused', async () => {
    const [ownerId, outsiderId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const room = (await owner.ask({ type: 'create', title: 'Staff', visibility: 'private' })).room as string
    expect(await owner.ask({ type: 'message', room, message: 'the secret plan', cid: 'plan-1' }, frame => frame.type === 'ack')).toMatchObject({ room })
    const outsider = await open(outsiderId)
    // In one TCP write, so the server reads them all before the join's admission has answered.
    const commands = [
      { type: 'join', room, ref: 'j' },
      { type: 'history', room, before: 1_000_000, limit: 50, ref: 'h' },
      { type: 'members', room, ref: 'm' },
      { type: 'typing', room, ref: 't' },
      { type: 'read', room, ref: 'r' },
      { type: 'message', room, message: 'let me in', cid: 'in-1', ref: 's' },
    ]
    const tcp = (outsider.ws as unknown as { _socket: import('node:net').Socket })._socket
    tcp.cork()
    for (const command of commands) outsider.send(command)
    tcp.uncork()
    await outsider.waitFor(frame => frame.ref === 'j', 'the join\'s answer')
    for (const ref of ['h', 'm', 't', 'r', 's']) await outsider.waitFor(frame => frame.ref === ref, `the answer to ${ref}`)
    expect(outsider.frames.find(frame => frame.ref === 'j')).toMatchObject({ type: 'join_refused', code: 'forbidden' })
    for (const ref of ['h', 'm', 't', 'r', 's']) expect(outsider.frames.find(frame => frame.ref === ref)).toMatchObject({ type: 'error', code: 'not_found', room })
    // Before, the history page (the room's messages) and its members were answered, and the room saw the outsider typing.
    expect(outsider.frames.filter(frame => frame.type === 'history' || frame.type === 'members')).toEqual([])
    expect(JSON.stringify(outsider.frames)).not.toContain('the secret plan')
    expect(owner.frames.filter(frame => frame.type === 'typing')).toEqual([])
    expect(owner.messages.map(message => message.message)).toEqual(['the secret plan'])
  })

  it('a guest bearing the name of someone in a private room is refused as any guest is: the refusal tells nobody is there', async () => {
    const ownerId = newUser()
    const owner = await open(ownerId)
    const room = (await owner.ask({ type: 'create', title: 'Staff', visibility: 'private' })).room as string
    const answers = []
    for (const name of [ownerId, 'Someone else']) {
      const guest = await ChatSocketV2.openV2(wsBase(server), { name })
      opened.push(guest)
      answers.push(await guest.join(room))
    }
    // Before, the owner's name was refused `name_refused` (they are online in the room), any other `forbidden`.
    expect(answers.map(answer => [answer.type, answer.code, answer.message])).toEqual([['join_refused', 'forbidden', answers[1]!.message], ['join_refused', 'forbidden', answers[1]!.message]])
  })

  it('refuses a title or topic the store would not keep as given (a lone surrogate), and stores nothing', async () => {
    const owner = await open(newUser())
    const lone = JSON.parse('"Team \\ud800"') as string
    expect(await owner.ask({ type: 'create', title: lone, visibility: 'public' })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringMatching(/lone surrogates/) })
    const room = (await owner.ask({ type: 'create', title: 'Team', visibility: 'public' })).room as string
    expect(await owner.ask({ type: 'update', room, topic: lone })).toMatchObject({ type: 'error', code: 'bad_request' })
    expect((await callServer<{ record: { title: string, topic: string } }>(server, { call: 'room', room })).body.record).toMatchObject({ title: 'Team', topic: '' })
  })

  it('opens one direct room from both sides; guests have none', async () => {
    const [aliceId, bobId] = [newUser(), newUser()]
    const alice = await open(aliceId)
    const bob = await open(bobId)
    const fromAlice = await alice.ask({ type: 'dm', user: bobId })
    expect(fromAlice).toMatchObject({ type: 'caught_up' })
    expect(fromAlice.room).toMatch(/^dm:/)
    const fromBob = await bob.ask({ type: 'dm', user: aliceId })
    expect(fromBob).toMatchObject({ type: 'caught_up', room: fromAlice.room })
    alice.send({ type: 'message', room: fromAlice.room, message: 'hi bob', cid: 'dm-1' })
    await bob.waitFor(frame => frame.type === 'message' && frame.message === 'hi bob' && frame.room === fromAlice.room, 'the message in the direct room')
    // Nobody moderates a direct room.
    expect(await alice.ask({ type: 'ban', room: fromAlice.room, user: bobId })).toMatchObject({ type: 'error', code: 'forbidden' })

    const guest = await open()
    expect(await guest.ask({ type: 'dm', user: aliceId })).toMatchObject({ type: 'error', code: 'unauthorized' })
    expect(await guest.ask({ type: 'create', title: 'Mine', visibility: 'public' })).toMatchObject({ type: 'error', code: 'unauthorized' })
  })

  it('server code cannot make a direct room\'s id a public room: moderation of a `dm:` id is refused, made or not, and the pair\'s `dm` opens a private room of those two only', async () => {
    const [aliceId, bobId, eveId] = [newUser(), newUser(), newUser()]
    const room = directRoomId(aliceId, bobId)
    const recordOf = async () => (await callServer<{ record: Record<string, unknown> | null }>(server, { call: 'room', room })).body.record
    const membersOf = async () => ((await callServer<{ uid: string }[]>(server, { call: 'members', room })).body).map(member => member.uid).sort()
    // Before the pair opened it (an admin page forwarding a room id, any server code touching it): nothing is made.
    for (const call of [{ call: 'mute', userId: eveId, until: Date.now() + 60_000 }, { call: 'addMember', userId: eveId }, { call: 'ban', userId: eveId }, { call: 'setRole', userId: eveId, role: 'owner' }]) {
      expect(await callServer(server, { ...call, room }), call.call).toMatchObject({ status: 403 })
    }
    expect(await recordOf()).toBeNull()
    // Nor does server code's message make a room of it: nobody could read it, and it would wait for the pair.
    expect(await callServer(server, { call: 'send', room, message: 'planted' })).toMatchObject({ status: 404 })
    const eve = await open(eveId)
    expect(await eve.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })

    const alice = await open(aliceId)
    expect(await alice.ask({ type: 'dm', user: bobId })).toMatchObject({ type: 'caught_up', room })
    expect(await recordOf()).toMatchObject({ kind: 'dm', visibility: 'private' })
    expect(await membersOf()).toEqual([aliceId, bobId].sort())
    expect(alice.messages.filter(frame => frame.room === room)).toEqual([])
    // Once made, server code still adds nobody to it, nor changes a member's standing.
    for (const call of [{ call: 'addMember', userId: eveId }, { call: 'mute', userId: bobId }, { call: 'ban', userId: bobId }, { call: 'removeMember', userId: bobId }]) {
      expect(await callServer(server, { ...call, room }), call.call).toMatchObject({ status: 403 })
    }
    expect(await membersOf()).toEqual([aliceId, bobId].sort())
    expect(await eve.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })
    // Server code may speak in it once it is made.
    expect(await callServer(server, { call: 'send', room, message: 'from the app' })).toMatchObject({ status: 200 })
  })

  it('a `dm` asks the app\'s chat:join hook before anything is made: refused, no record, no membership, and the other person\'s list shows nothing', async () => {
    const [spammerId, victimId] = [newUser(), newUser()]
    const room = directRoomId(spammerId, victimId)
    // The app bars the spammer from this pair's room, as an app blocking a sender would.
    await fetch(server.url('/_test/bar'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room, userId: spammerId }) })
    const victim = await open(victimId)
    victim.send({ type: 'rooms' })
    await victim.waitFor(frame => frame.type === 'rooms', 'the victim\'s list')
    const spammer = await open(spammerId)
    expect(await spammer.ask({ type: 'dm', user: victimId })).toMatchObject({ type: 'join_refused', code: 'forbidden', room })
    expect((await callServer<{ record: unknown }>(server, { call: 'room', room })).body.record).toBeNull()
    expect((await callServer<unknown[]>(server, { call: 'members', room })).body).toEqual([])
    // The victim's own `dm` (not barred) would show it at once: nothing of it came to the list meanwhile.
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(victim.frames.filter(frame => frame.room === room)).toEqual([])

    // The hook sees the other person's id (`dm`): here it refuses people who do not exist, and nothing is made for them.
    const nobody = newUser('user-nobody')
    expect(await spammer.ask({ type: 'dm', user: nobody })).toMatchObject({ type: 'join_refused', code: 'forbidden', message: 'no such person' })
    expect((await callServer<{ record: unknown }>(server, { call: 'room', room: directRoomId(spammerId, nobody) })).body.record).toBeNull()
  })

  /** The rooms `socket`'s person has on a rooms list asked now. */
  const listedOn = async (socket: ChatSocketV2) => {
    const from = socket.frames.length
    // Asked again, a list is sent afresh (it carries no `ref`): the first one after asking.
    socket.send({ type: 'rooms' })
    const list = await until(() => socket.frames.slice(from).find(frame => frame.type === 'rooms'), 'the rooms list')
    return (list.rooms as { room: string, with?: string }[])
  }

  it('a third member of a direct room (a row from before the rules) gets nothing: no join, post, history, list entry or search hit; the two go on', async () => {
    const [aliceId, bobId, eveId] = [newUser(), newUser(), newUser()]
    const alice = await open(aliceId)
    const room = (await alice.ask({ type: 'dm', user: bobId })).room as string
    const word = `dmsecret${tag}`
    alice.send({ type: 'message', room, message: `the ${word} plan`, cid: 'dm-secret' })
    await alice.waitFor(frame => frame.type === 'message' && frame.room === room, 'the message stored')
    // Eve's membership and read position, as a server from before the rules (or a row written by hand) left them.
    const file = new DatabaseSync(join(server.cwd, '.data/chat.sqlite'), { timeout: 10_000 })
    file.prepare('INSERT INTO chat_members (room, uid, role, joined_at) VALUES (?, ?, ?, ?)').run(room, eveId, 'member', Date.now())
    file.prepare('INSERT INTO chat_reads (uid, room, id, ts) VALUES (?, ?, ?, ?)').run(eveId, room, 0, Date.now())
    file.close()

    const eve = await open(eveId)
    expect(await eve.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden', room })
    const http = server.url('').replace(/\/$/, '')
    const eveHeaders = { cookie: `session=${eveId}` }
    expect((await postMessage(http, { message: 'let me in', cid: 'eve-1' }, { room }, eveHeaders)).status).toBe(403)
    expect((await fetch(server.url(`/api/sse?room=${encodeURIComponent(room)}&before=100`), { headers: { ...eveHeaders, 'sec-fetch-site': 'same-origin' } })).status).toBe(403)
    expect((await listedOn(eve)).map(entry => entry.room)).not.toContain(room)
    // Alice finds her message (the index has it), Eve does not.
    await until(async () => ((await alice.ask({ type: 'search', q: word })).hits as unknown[]).length === 1, 'Alice\'s search hit')
    expect(await eve.ask({ type: 'search', q: word })).toMatchObject({ type: 'search_results', hits: [] })
    expect(await eve.ask({ type: 'search', q: word, room })).toMatchObject({ type: 'error', code: 'forbidden' })

    // The two open it as before (no refusal for her row), and the list names the other of the two.
    const bob = await open(bobId)
    expect(await bob.ask({ type: 'dm', user: aliceId })).toMatchObject({ type: 'caught_up', room })
    expect((await listedOn(bob)).find(entry => entry.room === room)).toMatchObject({ with: aliceId })
    expect((await listedOn(alice)).find(entry => entry.room === room)).toMatchObject({ with: bobId })
  })

  it('a direct room whose membership server code\'s `forget` took opens again from either side (`dm`, `directRoom`), back on the person\'s rooms list', async () => {
    const [aliceId, bobId] = [newUser(), newUser()]
    const alice = await open(aliceId)
    const room = (await alice.ask({ type: 'dm', user: bobId })).room as string
    const bob = await open(bobId)
    await until(async () => (await listedOn(bob)).some(entry => entry.room === room), 'the direct room on Bob\'s list')
    const membersOf = async () => ((await callServer<{ uid: string }[]>(server, { call: 'members', room })).body).map(member => member.uid).sort()

    // Taken from Bob: he is refused by its id, and it is off his list.
    expect((await callServer(server, { call: 'forget', room, userId: bobId })).status).toBe(200)
    expect(await membersOf()).toEqual([aliceId])
    expect(await bob.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })
    expect((await listedOn(bob)).map(entry => entry.room)).not.toContain(room)
    // Bob's own `dm` opens it again: he is in, and it is on his list.
    expect(await bob.ask({ type: 'dm', user: aliceId })).toMatchObject({ type: 'caught_up', room })
    expect(await membersOf()).toEqual([aliceId, bobId].sort())
    expect((await listedOn(bob)).map(entry => entry.room)).toContain(room)

    // Taken again; this time Alice's side opens it, and Bob's open list shows it without asking.
    const from = bob.frames.length
    const after = (predicate: (frame: FrameV2) => boolean, what: string) => until(() => bob.frames.slice(from).find(predicate), what)
    expect((await callServer(server, { call: 'forget', room, userId: bobId })).status).toBe(200)
    await after(frame => frame.type === 'room' && frame.room === room && frame.removed === true, 'the room off Bob\'s open list')
    // (On a connection of her own: hers is in the room already, where a second `dm` is refused as a join of a joined room.)
    const aliceAgain = await open(aliceId)
    expect(await aliceAgain.ask({ type: 'dm', user: bobId })).toMatchObject({ type: 'caught_up', room })
    await after(frame => frame.type === 'room' && frame.room === room && !frame.removed, 'the room back on Bob\'s open list')
    bob.send({ type: 'message', room, message: 'back again', cid: 'bob-back' })
    await aliceAgain.waitFor(frame => frame.type === 'message' && frame.room === room && frame.message === 'back again', 'Bob\'s message after his way back')

    // And server code's `directRoom` gives back Alice's.
    expect((await callServer(server, { call: 'forget', room, userId: aliceId })).status).toBe(200)
    expect(await membersOf()).toEqual([bobId])
    expect(await callServer(server, { call: 'directRoom', userId: bobId, otherId: aliceId })).toMatchObject({ status: 200, body: { id: room, kind: 'dm' } })
    expect(await membersOf()).toEqual([aliceId, bobId].sort())
  })

  it('a direct room with `server`, a guest or an id no membership holds is refused as bad input, on every way in, and nothing is stored', async () => {
    const aliceId = newUser()
    const alice = await open(aliceId)
    for (const other of ['server', 'guest:abcdefghijklmnopqrstuv', 'a\u0007b', 'x'.repeat(257)]) {
      const answer = await alice.ask({ type: 'dm', user: other })
      expect(answer, JSON.stringify(other)).toMatchObject({ type: 'error', code: 'bad_request' })
      expect(answer.room, JSON.stringify(other)).toBeUndefined()
      const probe = await fetch(server.url(`/_ws?dm=${encodeURIComponent(other)}`), { headers: { 'cookie': `session=${aliceId}`, 'sec-fetch-site': 'same-origin' } })
      expect(probe.status, JSON.stringify(other)).toBe(400)
      expect(JSON.parse(await probe.text()), JSON.stringify(other)).toMatchObject({ type: 'error', code: 'bad_request' })
      expect(await callServer(server, { call: 'directRoom', userId: aliceId, otherId: other }), JSON.stringify(other)).toMatchObject({ status: 400 })
      const room = directRoomId(aliceId, other)
      expect((await callServer<{ record: unknown }>(server, { call: 'room', room })).body.record, JSON.stringify(other)).toBeNull()
      expect((await callServer<unknown[]>(server, { call: 'members', room })).body, JSON.stringify(other)).toEqual([])
    }
    expect(await listedOn(alice)).toEqual([])
    expect(alice.closed).toBeUndefined()
  })

  it('a muted member is refused in that room only; a removed one leaves; update changes the record', async () => {
    const [ownerId, memberId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const member = await open(memberId)
    const room = (await owner.ask({ type: 'create', title: 'Quiet', visibility: 'public' })).room as string
    const other = (await owner.ask({ type: 'create', title: 'Loud', visibility: 'public' })).room as string
    expect(await member.join(room)).toMatchObject({ type: 'caught_up' })
    expect(await member.join(other)).toMatchObject({ type: 'caught_up' })

    expect(await owner.ask({ type: 'mute', room, user: memberId })).toMatchObject({ type: 'ack', room })
    expect(await member.ask({ type: 'message', room, message: 'shh', cid: 'm-1' }, frame => frame.type === 'error' || frame.type === 'ack')).toMatchObject({ type: 'error', code: 'muted', room, cid: 'm-1' })
    expect(await member.ask({ type: 'message', room: other, message: 'loud', cid: 'm-2' }, frame => frame.type === 'error' || frame.type === 'ack')).toMatchObject({ type: 'ack', room: other })
    // A member may not mute the owner.
    expect(await member.ask({ type: 'mute', room: other, user: ownerId })).toMatchObject({ type: 'error', code: 'forbidden', room: other })

    expect(await owner.ask({ type: 'update', room, title: 'Quieter', visibility: 'private' })).toMatchObject({ type: 'ack', room })
    expect(await member.ask({ type: 'update', room: other, topic: 'mine now' })).toMatchObject({ type: 'error', code: 'forbidden', room: other })
    expect(await owner.ask({ type: 'ban', room: other, user: memberId })).toMatchObject({ type: 'ack', room: other })
    await member.waitFor(frame => frame.type === 'left' && frame.room === other && frame.reason === 'banned', 'left, banned')
  })

  it('a removal from a public room while a join of it is being admitted ends that join (left, removed) and makes no membership again; a join after it is a new one', async () => {
    const [ownerId, memberId] = [newUser(), newUser()]
    const room = `gated-${randomUUID().slice(0, 8)}`
    const gate = (action: 'close' | 'open' | 'waiting') => joinGate(room, action)
    const membersOf = async () => ((await callServer(server, { call: 'members', room })).body as unknown as { uid: string }[]).map(member => member.uid)
    expect((await callServer(server, { call: 'createRoom', input: { id: room, visibility: 'public', owner: ownerId } })).status).toBe(200)
    const member = await open(memberId)
    // Joined once (a member now, with a read position), then left: a `leave` keeps the membership.
    expect(await member.join(room)).toMatchObject({ type: 'caught_up' })
    expect(await member.ask({ type: 'leave', room })).toMatchObject({ type: 'left', reason: 'left' })
    expect(await membersOf()).toContain(memberId)

    await gate('close')
    const ref = member.ref()
    member.send({ type: 'join', room, ref })
    await until(async () => (await gate('waiting')).waiting === 1, 'the join held in chat:join')
    expect((await callServer(server, { call: 'removeMember', room, userId: memberId })).body).toMatchObject({ removed: true })
    await gate('open')
    // Before, the join went on as if nothing happened: caught up, and a member again.
    await member.waitFor(frame => frame.type === 'left' && frame.room === room && frame.reason === 'removed', 'left, removed')
    expect(member.frames.some(frame => frame.type === 'caught_up' && frame.ref === ref)).toBe(false)
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(await membersOf()).not.toContain(memberId)
    expect(member.framesOf(room).filter(frame => frame.type === 'left')).toHaveLength(2)

    // A public room lets a removed person join again: a new join, and a member again.
    expect(await member.join(room)).toMatchObject({ type: 'caught_up' })
    await until(async () => (await membersOf()).includes(memberId), 'a member again')
  })

  it('a `rooms` command sent while an earlier one\'s list is being read: the earlier is answered `ack` superseded at once, the later with its list and ref', async () => {
    const userId = newUser()
    const room = `gated-${randomUUID().slice(0, 8)}`
    // A member by the server API: no join asked `chat:join` about the room yet, so the list asks it.
    expect((await callServer(server, { call: 'createRoom', input: { id: room, visibility: 'public', owner: userId } })).status).toBe(200)
    const socket = await open(userId)
    await joinGate(room, 'close')
    const [first, second] = [socket.ref(), socket.ref()]
    socket.send({ type: 'rooms', ref: first })
    await until(async () => (await joinGate(room, 'waiting')).waiting === 1, 'the first list held in chat:join')
    socket.send({ type: 'rooms', ref: second })
    // Before, the first request got no answer at all, and the list none of its ref.
    expect(await socket.waitFor(frame => frame.ref === first, 'the first request\'s answer')).toEqual({ type: 'ack', ref: first, superseded: true })
    await joinGate(room, 'open')
    const list = await socket.waitFor(frame => frame.type === 'rooms', 'the list')
    expect(list).toMatchObject({ ref: second, rooms: [{ room, role: 'owner' }] })
    // The list followed is the later one's: a message in the room reaches it.
    expect((await callServer(server, { call: 'send', room, message: 'hello list' })).status).toBe(200)
    await socket.waitFor(frame => frame.type === 'room' && frame.room === room && (frame.last as { message?: string } | undefined)?.message === 'hello list', 'the room frame')
    expect(socket.frames.filter(frame => frame.type === 'rooms')).toHaveLength(1)
    expect(socket.frames.filter(frame => frame.ref === first)).toHaveLength(1)
  })

  it('making and changing a room pass the chat:action hook: it refuses a title, lets an admin change a room the roles would not; nothing refused is stored', async () => {
    const [ownerId, memberId, adminId] = [newUser(), newUser(), newUser('user-admin')]
    const [owner, member, admin] = [await open(ownerId), await open(memberId), await open(adminId)]
    const refusedCreate = await owner.ask({ type: 'create', title: 'Forbidden club', visibility: 'public' })
    expect(refusedCreate).toMatchObject({ type: 'error', code: 'forbidden', message: 'no such titles here' })
    expect(refusedCreate.room).toBeUndefined()
    const room = (await owner.ask({ type: 'create', title: 'Club', visibility: 'public' })).room as string
    expect(await member.join(room)).toMatchObject({ type: 'caught_up' })
    const recordOf = async () => (await (await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'room', room }) })).json() as { record: Record<string, unknown> }).record

    expect(await owner.ask({ type: 'update', room, title: 'Forbidden now' })).toMatchObject({ type: 'error', code: 'forbidden', message: 'no such titles here', room })
    expect(await member.ask({ type: 'update', room, topic: 'mine' })).toMatchObject({ type: 'error', code: 'forbidden', message: 'You may not change this room', room })
    expect(await recordOf()).toMatchObject({ title: 'Club', topic: '' })
    // Not a member: the roles say no, the app's hook says yes.
    expect(await admin.ask({ type: 'update', room, title: 'Club (renamed by an admin)' })).toMatchObject({ type: 'ack', room })
    expect(await recordOf()).toMatchObject({ title: 'Club (renamed by an admin)' })
    // Server code passes the hook too.
    const serverUpdate = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'updateRoom', room, fields: { title: 'Forbidden by server' } }) })
    expect(serverUpdate.status).toBe(403)
    expect(await recordOf()).toMatchObject({ title: 'Club (renamed by an admin)' })
  })

  it('lists a joined room\'s members by name for @ completion; a room not joined is not_found', async () => {
    const [ownerId, memberId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const member = await open(memberId)
    const created = await owner.ask({ type: 'create', title: 'Names', visibility: 'private', members: [memberId] })
    const room = created.room as string
    // The member's name is known once they came in (the fixture names `user-…` sessions by their id).
    expect(await member.join(room)).toMatchObject({ type: 'caught_up' })
    const listed = await owner.ask({ type: 'members', room })
    expect(listed).toMatchObject({ type: 'members', room })
    expect((listed.members as { uid: string, name: string }[]).map(entry => [entry.uid, entry.name]).sort()).toEqual([[memberId, memberId], [ownerId, ownerId]].sort())
    const outsider = await open(newUser())
    expect(await outsider.ask({ type: 'members', room })).toMatchObject({ type: 'error', code: 'not_found', room })
  })

  it('a time past the latest Date is bad_request over the socket and from server code, and stores nothing; an endless mute is a valid Date', async () => {
    const [ownerId, memberId] = [newUser(), newUser()]
    const owner = await open(ownerId)
    const room = (await owner.ask({ type: 'create', title: 'Times', visibility: 'private', members: [memberId] })).room as string
    const member = await open(memberId)
    expect(await member.join(room)).toMatchObject({ type: 'caught_up', room })
    // The first is one millisecond past the latest Date; the second what an endless mute used to be.
    for (const until of [8_640_000_000_000_001, Number.MAX_SAFE_INTEGER]) {
      expect(await owner.ask({ type: 'mute', room, user: memberId, until })).toMatchObject({ type: 'error', code: 'bad_request', room, message: expect.stringContaining('8640000000000000') })
    }
    // From server code nothing parses `until` on the way: a number no Date holds, a fraction, a negative one, Infinity (JSON's 1e400).
    for (const until of ['9000000000000000', '1.5', '-1', '1e400']) {
      const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"call":"mute","room":"${room}","userId":"${memberId}","until":${until}}` })
      expect(response.status, until).toBe(400)
      expect(await response.json(), until).toMatchObject({ message: expect.stringContaining('until') })
    }
    const stored = (await callServer<{ uid: string, mutedUntil?: number }[]>(server, { call: 'members', room })).body
    expect(stored.find(entry => entry.uid === memberId)).not.toHaveProperty('mutedUntil')
    expect(await owner.ask({ type: 'search', q: 'anything', room, before: 8_640_000_000_000_001 })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('before') })

    expect(await owner.ask({ type: 'mute', room, user: memberId })).toMatchObject({ type: 'ack', room })
    const muted = await member.waitFor(frame => frame.type === 'member' && frame.room === room, 'the member frame')
    expect(muted.mutedUntil).toBe(8_640_000_000_000_000)
    expect(new Date(muted.mutedUntil as number).toISOString()).toBe('+275760-09-13T00:00:00.000Z')
    member.send({ type: 'message', room, message: 'still muted?', ref: 'm1' })
    expect(await member.waitFor(frame => frame.type === 'error' && frame.ref === 'm1', 'the refusal')).toMatchObject({ code: 'muted', mutedUntil: 8_640_000_000_000_000 })
  })

  it('titles and topics lose bidi controls and invisible characters on every path; right-to-left text stays', async () => {
    const ownerId = newUser()
    const owner = await open(ownerId)
    const room = (await owner.ask({ type: 'create', title: 'admin\u202Egnp.exe', topic: 'line\u2066 one\u2069\nline\u200B two\u0007', visibility: 'private' })).room as string
    const record = async (name: string) => (await callServer<{ record: { title: string, topic: string } }>(server, { call: 'room', room: name })).body.record
    expect(await record(room)).toMatchObject({ title: 'admingnp.exe', topic: 'line one\nline two' })
    owner.send({ type: 'rooms' })
    const list = await owner.waitFor(frame => frame.type === 'rooms', 'the rooms list')
    expect((list.rooms as { room: string, title?: string }[]).find(entry => entry.room === room)).toMatchObject({ title: 'admingnp.exe' })

    expect(await owner.ask({ type: 'update', room, title: '\u202Bשלום\u202C \u200Fעולם', topic: 'مرحبا\u061C' })).toMatchObject({ type: 'ack', room })
    expect(await record(room)).toMatchObject({ title: 'שלום עולם', topic: 'مرحبا' })

    // Server code's records follow the same rule.
    const made = await callServer<{ id: string, title: string, topic: string }>(server, { call: 'createRoom', input: { title: 'ops\u2067\uFEFF', topic: '\u2060on call' } })
    expect(made.body).toMatchObject({ title: 'ops', topic: 'on call' })
    expect((await callServer<{ title: string }>(server, { call: 'updateRoom', room: made.body.id, fields: { title: 'ops\u202Dteam' } })).body).toMatchObject({ title: 'opsteam' })
  })

  it('answers bad input with errors naming the ref, and the connection stays', async () => {
    const socket = await open(newUser())
    const cases: [Record<string, unknown>, string][] = [
      [{ type: 'create', visibility: 'private' }, 'title'],
      [{ type: 'create', title: 'x', visibility: 'secret' }, 'visibility'],
      [{ type: 'create', title: 'x'.repeat(201), visibility: 'public' }, 'title'],
      [{ type: 'create', title: 'x', visibility: 'public', members: 'bob' }, 'members'],
      [{ type: 'create', title: 'x', visibility: 'public', members: [42] }, 'members'],
      [{ type: 'dm' }, 'user'],
      [{ type: 'dm', user: 'guest:abc' }, 'guest'],
      [{ type: 'invite', user: 'someone' }, 'room'],
      [{ type: 'invite', room: 'r' }, 'user'],
      [{ type: 'role', room: 'r', user: 'someone', role: 'king' }, 'role'],
      [{ type: 'mute', room: 'r', user: 'someone', until: -1 }, 'until'],
      [{ type: 'update', room: 'r' }, 'title'],
      [{ type: 'update', room: 'r', topic: 7 }, 'topic'],
    ]
    for (const [command, word] of cases) {
      const answer = await socket.ask(command)
      expect(answer, JSON.stringify(command)).toMatchObject({ type: 'error', code: 'bad_request' })
      expect(String(answer.message), JSON.stringify(command)).toContain(word)
    }
    const me = (socket.frames[0]!.me as { id: string }).id
    expect(await socket.ask({ type: 'dm', user: me })).toMatchObject({ type: 'error', code: 'bad_request' })
    expect(await socket.ask({ type: 'update', room: `none-${tag}`, title: 'x' })).toMatchObject({ type: 'error', room: `none-${tag}` })
    expect(await socket.ask({ type: 'ping' })).toMatchObject({ type: 'pong' })
    expect(socket.closed).toBeUndefined()
  })
})

import { createHooks } from 'hookable'
import { consola } from 'consola'
import { describe, expect, it, vi } from 'vitest'
import type { ChatServerFrame } from '../../src/runtime/shared/protocol'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../src/runtime/types'
import type { BusEvent, ChatBus } from '../../src/runtime/server/utils/bus'
import { createChatHub, type Member, type RoomFrame, type SendInput } from '../../src/runtime/server/utils/hub'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'

const config = {
  replay: 50, maxReplay: 1000, maxLength: 2000, history: { max: 10_000, maxAge: 0 }, rateLimit: false, presenceInterval: 60_000, presenceWait: 500,
} as ChatRuntimeConfig

/** A bus this test drives: it records what the hub publishes and injects what other instances send. */
function testBus(peers = 0) {
  let onEvent: (event: BusEvent, origin: string) => void = () => {}
  let onRecover: () => void = () => {}
  const published: BusEvent[] = []
  const bus: ChatBus & { up: boolean } = {
    up: true,
    // How many instances answer `presence?` (by default none: a room's first list is not held for one).
    peers: async () => peers,
    publish(event) {
      if (!bus.up) return false
      published.push(event)
      return true
    },
    onEvent: (listener) => {
      onEvent = listener
    },
    onRecover: (listener) => {
      onRecover = listener
    },
    close: async () => {},
  }
  return { bus, published, inject: (event: BusEvent) => onEvent(event, 'other-instance'), recover: () => onRecover() }
}

function testMember(id: string): Member & { frames: ChatServerFrame[] } {
  const frames: ChatServerFrame[] = []
  return { user: { id, name: id }, sender: '', frames, write: (frame: RoomFrame) => frames.push(JSON.parse(frame.text)) }
}

/** One member per user id, joined to room `r` one after another. */
async function joinInTurn<const T extends string[]>(hub: ReturnType<typeof createChatHub>, ...users: T) {
  const members = users.map(testMember)
  for (const member of members) await hub.join('r', member, undefined)
  return members as { [K in keyof T]: ReturnType<typeof testMember> }
}

const ids = (member: { frames: ChatServerFrame[] }) => member.frames.flatMap(frame => frame.type === 'message' ? [frame.id] : [])
const settle = () => new Promise(resolve => setTimeout(resolve, 20))
/** Joins and leaves are told to the room at the end of the event-loop turn. */
const endOfTurn = () => new Promise(resolve => setImmediate(resolve))

function setup(peers = 0) {
  const store = createMemoryRoomLog()
  const { bus, published, inject, recover } = testBus(peers)
  const hub = createChatHub({ config, store, bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
  // What another instance does: store a message, then (maybe) publish it.
  const storeElsewhere = async (text: string) => {
    const { message } = await store.append({ room: 'r', user: 'x', sender: '', message: text, ts: 1 })
    return { kind: 'message' as const, room: 'r', id: message.id, frame: JSON.stringify({ type: 'message', ...message }) }
  }
  return { hub, store, bus, published, inject, recover, storeElsewhere }
}

describe('chat hub delivery', () => {
  it('sends welcome, presence, replay, then live, each message once', async () => {
    const { hub } = setup()
    const alice = testMember('alice')
    // Joined from the app's own page: joining makes the read position.
    await hub.join('r', alice, undefined, undefined, true)
    await hub.send({ room: 'r', user: alice.user, sender: '', message: 'one' })
    const bob = testMember('bob')
    await hub.join('r', bob, undefined, undefined, true)
    // Its read state is read from the store outside the room's order: before the next message here.
    await settle()
    await hub.send({ room: 'r', user: bob.user, sender: '', message: 'two' })
    // A signed-in member also gets its read state (once, after the welcome; docs/PROTOCOL.md "Read state").
    // Outside the room's order: the read state, and the membership sending (and joining) made.
    expect(bob.frames.map(frame => frame.type).filter(type => type !== 'read' && type !== 'member')).toEqual(['system', 'presence', 'message', 'message'])
    expect(bob.frames.filter(frame => frame.type === 'read')).toEqual([{ type: 'read', room: 'r', uid: 'bob', read: 1, unread: 0, upTo: 1, user: 'server', message: '0 unread' }])
    expect(ids(bob)).toEqual([1, 2])
    expect(ids(alice)).toEqual([1, 2])
  })

  it('fills a gap from the store when a later message arrives first', async () => {
    const { hub, inject, storeElsewhere } = setup()
    const alice = testMember('alice')
    await hub.join('r', alice, undefined)
    await storeElsewhere('a')
    await storeElsewhere('b')
    const third = await storeElsewhere('c')
    inject(third)
    await settle()
    expect(ids(alice)).toEqual([1, 2, 3])
    inject({ ...third, id: 2 })
    inject(third)
    await settle()
    expect(ids(alice)).toEqual([1, 2, 3])
  })

  it('misses nothing sent while a newcomer replays', async () => {
    const { hub, inject, storeElsewhere } = setup()
    for (let i = 0; i < 5; i++) inject(await storeElsewhere(`before ${i}`))
    const bob = testMember('bob')
    const joining = hub.join('r', bob, 2)
    // Stored and delivered while bob's replay is being read.
    for (let i = 0; i < 5; i++) inject(await storeElsewhere(`during ${i}`))
    await joining
    await settle()
    expect(ids(bob)).toEqual([3, 4, 5, 6, 7, 8, 9, 10])
  })

  it('catches up after a bus outage in both directions', async () => {
    const { hub, bus, published, recover, storeElsewhere } = setup()
    const alice = testMember('alice')
    await hub.join('r', alice, undefined)
    bus.up = false
    // Stored here while the bus is down: others must hear about it later.
    await hub.send({ room: 'r', user: alice.user, sender: '', message: 'local' })
    // Stored on another instance and never published: we must fetch it.
    await storeElsewhere('remote')
    bus.up = true
    recover()
    await settle()
    expect(ids(alice)).toEqual([1, 2])
    expect(published.filter(event => event.kind === 'sync')).toEqual([{ kind: 'sync', room: 'r', id: 2 }])
  })

  it('acts on a sync from another instance', async () => {
    const { hub, inject, storeElsewhere } = setup()
    const alice = testMember('alice')
    await hub.join('r', alice, undefined)
    await storeElsewhere('x')
    await storeElsewhere('y')
    inject({ kind: 'sync', room: 'r', id: 2 })
    await settle()
    expect(ids(alice)).toEqual([1, 2])
  })

  it('de-duplicates a repeated cid without broadcasting it again', async () => {
    const { hub } = setup()
    const alice = testMember('alice')
    const bob = testMember('bob')
    await hub.join('r', alice, undefined)
    await hub.join('r', bob, undefined)
    const first = await hub.send({ room: 'r', user: alice.user, sender: '', message: 'hi', cid: 'c1' })
    const again = await hub.send({ room: 'r', user: alice.user, sender: '', message: 'hi', cid: 'c1' })
    expect(again).toMatchObject({ duplicate: true, frame: { id: first.frame!.id } })
    expect(ids(bob)).toEqual([1])
  })

  it('counts two connections of one user as one presence entry', async () => {
    const { hub } = setup()
    const [other, tab1, tab2] = await joinInTurn(hub, 'u2', 'u1', 'u1')
    expect(other.frames.filter(frame => frame.type === 'presence_diff')).toEqual([
      { type: 'presence_diff', room: 'r', joins: [{ id: 'u1', name: 'u1' }], leaves: [], count: 2, user: 'server', message: '2 online' },
    ])
    expect(tab2.frames.find(frame => frame.type === 'presence')).toMatchObject({ users: [{ id: 'u2' }, { id: 'u1' }], message: '2 online' })
    expect(other.frames.filter(frame => frame.type === 'system' && frame.event === 'join')).toHaveLength(1)
    hub.leave('r', tab1)
    await endOfTurn()
    expect(other.frames.filter(frame => frame.type === 'system' && frame.event === 'leave')).toHaveLength(0)
    hub.leave('r', tab2)
    await endOfTurn()
    expect(other.frames.filter(frame => frame.type === 'system' && frame.event === 'leave')).toHaveLength(1)
    expect(other.frames.at(-1)).toEqual({ type: 'presence_diff', room: 'r', joins: [], leaves: [{ id: 'u1', name: 'u1' }], count: 1, user: 'server', message: '1 online' })
  })

  it('sends the full list to the newcomer only, and diffs to everyone else', async () => {
    const { hub } = setup()
    const [alice, bob, carol] = await joinInTurn(hub, 'alice', 'bob', 'carol')
    const presenceOf = (member: { frames: ChatServerFrame[] }) => member.frames.filter(frame => frame.type.startsWith('presence'))
    expect(presenceOf(alice).map(frame => frame.type)).toEqual(['presence', 'presence_diff', 'presence_diff'])
    expect(presenceOf(bob).map(frame => frame.type)).toEqual(['presence', 'presence_diff'])
    expect(presenceOf(carol)).toEqual([{ type: 'presence', room: 'r', users: [alice.user, bob.user, carol.user], user: 'server', message: '3 online' }])
    expect(presenceOf(alice)[2]).toMatchObject({ joins: [carol.user], leaves: [], count: 3 })
    hub.leave('r', bob)
    await endOfTurn()
    expect(presenceOf(carol).at(-1)).toMatchObject({ type: 'presence_diff', joins: [], leaves: [bob.user], count: 2 })
  })

  it('holds a newcomer\'s first list (and its replay) until the other instance said who it has in the room', async () => {
    const { hub, published, inject } = setup(1)
    const member = testMember('here')
    const joined = hub.join('r', member, undefined)
    await endOfTurn()
    expect(published).toContainEqual({ kind: 'presence?', room: 'r' })
    // Welcome only: no list before the answer.
    expect(member.frames.map(frame => frame.type)).toEqual(['system'])
    inject({ kind: 'presence', room: 'r', frame: JSON.stringify([{ id: 'there', name: 'there' }]) })
    await joined
    expect(member.frames[1]).toMatchObject({ type: 'presence', users: [member.user, { id: 'there', name: 'there' }] })
    // The second newcomer finds the room known: no new question, the same whole list.
    const second = testMember('second')
    await hub.join('r', second, undefined)
    expect(published.filter(event => event.kind === 'presence?')).toHaveLength(1)
    expect(second.frames[1]).toMatchObject({ type: 'presence', users: [member.user, second.user, { id: 'there', name: 'there' }] })
  })

  it('tells the joins of one turn in one join frame and one diff per member; each newcomer gets the full list, then its replay', async () => {
    const { hub } = setup()
    const [alice] = await joinInTurn(hub, 'alice')
    await hub.send({ room: 'r', user: alice.user, sender: '', message: 'before' })
    const before = alice.frames.length
    // A storm: 50 newcomers whose upgrades are read in one turn.
    const newcomers = Array.from({ length: 50 }, (_, i) => testMember(`n${i}`))
    await Promise.all(newcomers.map(member => hub.join('r', member, undefined)))
    // Her membership (made by her message) is told outside the room's order, whenever it is stored.
    const heard = alice.frames.slice(before).filter(frame => frame.type !== 'member')
    expect(heard.map(frame => frame.type)).toEqual(['system', 'presence_diff'])
    expect(heard[0]).toMatchObject({ event: 'join', peer: newcomers[0]!.user, peers: newcomers.map(member => member.user), message: 'n0, n1, n2 and 47 others joined!' })
    expect(heard[1]).toMatchObject({ joins: newcomers.map(member => member.user), leaves: [], count: 51 })
    for (const member of newcomers) {
      // A signed-in member also gets its read state (docs/PROTOCOL.md "Read state").
      expect(member.frames.map(frame => frame.type).filter(type => type !== 'read')).toEqual(['system', 'presence', 'message'])
      expect(member.frames[1]).toMatchObject({ users: [alice.user, ...newcomers.map(other => other.user)], message: '51 online' })
    }
    // Later turns: one join is the seed's frame, as before.
    const [late] = await joinInTurn(hub, 'late')
    expect(alice.frames.at(-2)).toEqual({ type: 'system', event: 'join', room: 'r', user: 'server', message: 'late joined!', peer: late!.user })
    expect(newcomers[7]!.frames.at(-1)).toMatchObject({ type: 'presence_diff', joins: [late!.user], count: 52 })
  })

  it('never announces a user who joins and leaves within one turn; leaves of one turn are one frame', async () => {
    const { hub } = setup()
    const [alice, bob, carol] = await joinInTurn(hub, 'alice', 'bob', 'carol')
    const before = alice.frames.length
    const ghost = testMember('ghost')
    const joining = hub.join('r', ghost, undefined)
    hub.leave('r', ghost)
    await joining
    await endOfTurn()
    expect(alice.frames.length).toBe(before)
    hub.leave('r', bob!)
    hub.leave('r', carol!)
    await endOfTurn()
    expect(alice.frames.slice(before)).toEqual([
      { type: 'system', event: 'leave', room: 'r', user: 'server', message: 'bob and carol left!', peer: bob!.user, peers: [bob!.user, carol!.user] },
      { type: 'presence_diff', room: 'r', joins: [], leaves: [bob!.user, carol!.user], count: 1, user: 'server', message: '1 online' },
    ])
  })

  it('a signed-in user who leaves before their join is told still gets a read position (joining makes it), and no frame', async () => {
    const { hub, store } = setup()
    const quick = testMember('quick')
    const joining = hub.join('r', quick, undefined, undefined, true)
    hub.leave('r', quick)
    await joining
    await settle()
    expect(await store.readState('r', 'quick')).toMatchObject({ room: 'r', read: 0 })
    expect(quick.frames.map(frame => frame.type)).toEqual(['system'])
  })

  it('a join that did not come from the app\'s own page (a plain GET) makes no read position, but still tells an existing one', async () => {
    const { hub, store } = setup()
    const plain = testMember('plain')
    await hub.join('r', plain, undefined)
    await settle()
    expect(await store.readState('r', 'plain')).toBeUndefined()
    expect(plain.frames.some(frame => frame.type === 'read')).toBe(false)
    await store.joinRead('r', 'plain')
    const again = testMember('plain')
    await hub.join('r', again, undefined)
    await settle()
    expect(again.frames.find(frame => frame.type === 'read')).toMatchObject({ room: 'r', read: 0 })
    // Neither join chose to join the room: no membership, so on no rooms list.
    expect(await store.memberRooms('plain', 10)).toEqual([])
  })

  it('a join from the app\'s own page is choosing to join: a plain membership (told as the `member` frame) in a room without a record; a guest\'s makes none', async () => {
    const { hub, store } = setup()
    const joiner = testMember('joiner')
    await hub.join('r', joiner, undefined, undefined, true)
    await settle()
    expect(await store.member('r', 'joiner')).toMatchObject({ role: 'member' })
    expect(await store.memberRooms('joiner', 10)).toEqual(['r'])
    expect(joiner.frames.find(frame => frame.type === 'member')).toEqual({ type: 'member', room: 'r', uid: 'joiner', role: 'member' })
    const guest = testMember('guest:AAAAAAAAAAAAAAAAAAAAAA')
    guest.user.guest = true
    await hub.join('r', guest, undefined, undefined, true)
    await settle()
    expect(await store.member('r', guest.user.id)).toBeUndefined()
  })

  it('tells a big room of joins at most once per 50 ms: newcomers of later turns wait and are told together', async () => {
    const { hub } = setup()
    const crowd = Array.from({ length: 60 }, (_, i) => testMember(`m${i}`))
    await Promise.all(crowd.map(member => hub.join('r', member, undefined)))
    await new Promise(resolve => setTimeout(resolve, 60))
    const watcher = crowd[0]!
    const before = watcher.frames.length
    const [a, b, c] = ['a', 'b', 'c'].map(testMember)
    const joins = [hub.join('r', a!, undefined)]
    await endOfTurn()
    joins.push(hub.join('r', b!, undefined))
    await endOfTurn()
    joins.push(hub.join('r', c!, undefined))
    await Promise.all(joins)
    const heard = watcher.frames.slice(before).filter(frame => frame.type === 'system')
    expect(heard.map(frame => frame.message)).toEqual(['a joined!', 'b and c joined!'])
    expect(c!.frames.find(frame => frame.type === 'presence')).toMatchObject({ message: '63 online' })
  })

  it('a room emptied while its leaves wait for the 50 ms window announces a newcomer after those leaves, never an empty list after it', async () => {
    const { hub, published } = setup()
    const crowd = Array.from({ length: 12 }, (_, i) => testMember(`m${i}`))
    await Promise.all(crowd.map(member => hub.join('r', member, undefined)))
    await new Promise(resolve => setTimeout(resolve, 60))
    // All leave within the window, over two turns: the second turn's leaves (a big room told just now) wait for the window's timer.
    hub.leave('r', crowd[0]!)
    await endOfTurn()
    for (const member of crowd.slice(1)) hub.leave('r', member)
    const u99 = testMember('u99')
    await hub.join('r', u99, undefined)
    await new Promise(resolve => setTimeout(resolve, 60))
    const told = published.flatMap((event) => {
      if (event.room !== 'r') return []
      if (event.kind === 'presence') return [JSON.parse(event.frame).map((user: { id: string }) => user.id)]
      return event.kind === 'system' ? [JSON.parse(event.frame).message] : []
    })
    // The other instances hear u99 online after every leave of the crowd.
    expect(told.slice(told.indexOf('u99 joined!'))).toEqual(['u99 joined!', 'm1, m2, m3 and 8 others left!', ['u99']])
    expect(u99.frames.find(frame => frame.type === 'presence')).toMatchObject({ message: '1 online' })
  })

  it('turns changes of other instances\' presence into diffs; an unchanged announcement sends nothing', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'Date'] })
    try {
      const { hub, inject } = setup()
      const alice = testMember('alice')
      await hub.join('r', alice, undefined)
      const diffs = () => alice.frames.filter(frame => frame.type === 'presence_diff')
      const remote = (users: string[]) => inject({ kind: 'presence', room: 'r', frame: JSON.stringify(users.map(id => ({ id, name: id }))) })
      remote(['x', 'y'])
      expect(diffs()).toEqual([{ type: 'presence_diff', room: 'r', joins: [{ id: 'x', name: 'x' }, { id: 'y', name: 'y' }], leaves: [], count: 3, user: 'server', message: '3 online' }])
      // The periodic re-announcement of the same list.
      remote(['y', 'x'])
      remote(['x', 'y', 'alice'])
      expect(diffs()).toHaveLength(1)
      remote(['x'])
      expect(diffs().at(-1)).toMatchObject({ joins: [], leaves: [{ id: 'y' }], count: 2 })
      // The other instance goes quiet: after 3 intervals its users leave, once.
      vi.advanceTimersByTime(4 * config.presenceInterval)
      expect(diffs().at(-1)).toMatchObject({ joins: [], leaves: [{ id: 'x' }], count: 1, message: '1 online' })
      expect(diffs()).toHaveLength(3)
      vi.advanceTimersByTime(4 * config.presenceInterval)
      expect(diffs()).toHaveLength(3)
      expect(alice.frames.filter(frame => frame.type === 'presence')).toHaveLength(1)
      await hub.close()
    }
    finally {
      vi.useRealTimers()
    }
  })

  it('applies the message hook: rewrite or reject', async () => {
    const { hub } = setup()
    const hooks = createHooks<ChatRuntimeHooks>()
    hooks.hook('chat:message', (context) => {
      if (context.message.includes('bad')) context.reject = 'nope'
      context.message = context.message.toUpperCase()
    })
    const store = createMemoryRoomLog()
    const moderated = createChatHub({ config, store, bus: testBus().bus, hooks, logger: consola })
    expect(await moderated.send({ room: 'r', user: { id: 'a', name: 'a' }, sender: '', message: 'bad word', cid: 'c' })).toMatchObject({ status: 403, error: { code: 'rejected', message: 'nope', cid: 'c' } })
    expect(await moderated.send({ room: 'r', user: { id: 'a', name: 'a' }, sender: '', message: 'fine' })).toMatchObject({ frame: { message: 'FINE' } })
    expect((await store.replaySince('r', undefined, 10)).map(message => message.message)).toEqual(['FINE'])
    await hub.close()
  })

  it('asks an injected allowSend before the hook and the store', async () => {
    const asked: SendInput[] = []
    const store = createMemoryRoomLog()
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola, allowSend: (input) => {
      asked.push(input)
      return input.ip !== 'blocked'
    } })
    const user = { id: 'a', name: 'a' }
    expect(await hub.send({ room: 'r', user, sender: 'a', message: 'no', cid: 'c1', ip: 'blocked' })).toMatchObject({ status: 429, error: { code: 'rate_limited', cid: 'c1' } })
    expect(await hub.send({ room: 'r', user, sender: 'a', message: 'yes', ip: '127.0.0.1' })).toMatchObject({ status: 200, frame: { id: 1 } })
    expect(asked.map(input => [input.ip, input.message])).toEqual([['blocked', 'no'], ['127.0.0.1', 'yes']])
    expect((await store.replaySince('r', undefined, 10)).map(message => message.message)).toEqual(['yes'])
    await hub.close()
  })
})

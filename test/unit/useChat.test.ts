import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import { useChat } from '../../src/runtime/app/composables/useChat'
import { forgetSharedSockets } from '../../src/runtime/app/sharedSocket'

/** A WebSocket stand-in: records URLs, what was written and whether it was closed. */
class FakeSocket {
  static instances: FakeSocket[] = []
  readyState = 0
  closed = false
  sent: string[] = []
  onopen: (() => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  constructor(readonly url: URL, readonly protocols?: string | string[]) {
    FakeSocket.instances.push(this)
  }

  /** Open as a version 2 server does: the socket, then `hello`. */
  greet() {
    this.accept()
    this.receive({ type: 'hello', version: 2, me: { id: 'guest:me', name: 'me', guest: true }, limits: { maxLength: 2000, maxRooms: 100 } })
  }

  receive(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }

  /** The commands sent, parsed. */
  get commands(): Record<string, unknown>[] {
    return this.sent.map(text => JSON.parse(text))
  }

  /** Answer the `join` of `room` with `joined` (the room is open then). */
  joined(room: string) {
    const join = this.commands.findLast(command => command.type === 'join' && command.room === room)!
    this.receive({ type: 'joined', room, ref: join.ref, me: { id: 'guest:me', name: 'me', guest: true } })
  }

  send(data: string) {
    this.sent.push(data)
  }

  accept() {
    this.readyState = 1
    this.onopen?.()
  }

  close() {
    this.closed = true
    this.readyState = 3
  }
}

const open = () => FakeSocket.instances.filter(socket => !socket.closed)

describe('useChat', () => {
  beforeEach(() => {
    FakeSocket.instances = []
    vi.stubGlobal('WebSocket', FakeSocket)
    vi.stubGlobal('location', { href: 'http://localhost:3000/' })
    vi.stubGlobal('document', { visibilityState: 'visible', addEventListener() {} })
    vi.stubGlobal('window', { addEventListener() {} })
  })
  afterEach(() => {
    forgetSharedSockets()
    vi.useRealTimers()
    vi.unstubAllGlobals()
  })

  it('shares one connection between components on the same room, and closes it with the last', () => {
    vi.useFakeTimers()
    const first = effectScope()
    const second = effectScope()
    const a = first.run(() => useChat({ room: 'lobby' }))!
    const b = second.run(() => useChat({ room: 'lobby' }))!
    expect(FakeSocket.instances).toHaveLength(1)
    const [socket] = FakeSocket.instances
    // One socket per tab, version 2: the room is joined on it, not named in its URL.
    expect(socket!.protocols).toBe('nuxt-chat.2')
    expect(socket!.url.searchParams.has('room')).toBe(false)
    socket!.greet()
    expect(socket!.commands).toEqual([expect.objectContaining({ type: 'join', room: 'lobby' })])
    expect(a.status.value).toBe('CONNECTING')
    socket!.joined('lobby')
    expect(b.status.value).toBe('OPEN')
    first.stop()
    expect(socket!.commands.some(command => command.type === 'leave')).toBe(false)
    second.stop()
    expect(socket!.commands.at(-1)).toEqual({ type: 'leave', room: 'lobby' })
    // With no room left, the socket goes after a moment (a room switch would have reused it).
    vi.advanceTimersByTime(1000)
    expect(open()).toHaveLength(0)
  })

  it('shares one subscription between components on the same direct room, on the tab\'s socket: `dm`, then its room', async () => {
    vi.useFakeTimers()
    const first = effectScope()
    const second = effectScope()
    const a = first.run(() => useChat({ dm: 'bob' }))!
    const b = second.run(() => useChat({ dm: 'bob' }))!
    const lobby = effectScope()
    lobby.run(() => useChat({ room: 'lobby' }))
    expect(FakeSocket.instances).toHaveLength(1)
    const [socket] = FakeSocket.instances
    expect(socket!.protocols).toBe('nuxt-chat.2')
    expect(socket!.url.searchParams.has('dm')).toBe(false)
    socket!.greet()
    const asked = socket!.commands.filter(command => command.type === 'dm')
    expect(asked).toEqual([{ type: 'dm', user: 'bob', ref: expect.any(String) }])
    socket!.receive({ type: 'joined', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA', ref: asked[0]!.ref, me: { id: 'user-me', name: 'me' } })
    expect(a.status.value).toBe('OPEN')
    // From its `joined` on, the direct room's frames are routed by its room.
    socket!.receive({ type: 'message', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA', id: 1, user: 'Bob', uid: 'bob', message: 'hi', ts: 1 })
    await nextTick()
    expect(b.messages.value.map(message => message.message)).toEqual(['hi'])
    b.send('hello')
    const message = socket!.commands.at(-1)!
    expect(message).toMatchObject({ type: 'message', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA', message: 'hello' })
    socket!.receive({ type: 'message', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA', id: 2, user: 'me', uid: 'user-me', message: 'hello', ts: 2, cid: message.cid })
    first.stop()
    expect(socket!.commands.some(command => command.type === 'leave')).toBe(false)
    second.stop()
    expect(socket!.commands.at(-1)).toEqual({ type: 'leave', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA' })
    lobby.stop()
  })

  it('leaves the direct room a `dm` joined after its last holder went before the answer', () => {
    const scope = effectScope()
    scope.run(() => useChat({ dm: 'bob' }))
    const stays = effectScope()
    stays.run(() => useChat({ room: 'lobby' }))
    const [socket] = FakeSocket.instances
    socket!.greet()
    const [asked] = socket!.commands.filter(command => command.type === 'dm')
    scope.stop()
    socket!.receive({ type: 'joined', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA', ref: asked!.ref, me: { id: 'user-me', name: 'me' } })
    expect(socket!.commands.at(-1)).toEqual({ type: 'leave', room: 'dm:AAAAAAAAAAAAAAAAAAAAAA' })
    stays.stop()
  })

  it('switches rooms when the room ref changes: a leave and a join on the same socket', async () => {
    const scope = effectScope()
    const room = ref('one')
    scope.run(() => useChat({ room }))
    const [socket] = FakeSocket.instances
    socket!.greet()
    socket!.joined('one')
    room.value = 'two'
    await nextTick()
    expect(FakeSocket.instances).toHaveLength(1)
    expect(socket!.commands.map(({ type, room }) => `${type} ${room}`)).toEqual(['join one', 'leave one', 'join two'])
    scope.stop()
  })

  it('does not connect with immediate: false until open()', () => {
    const scope = effectScope()
    const chat = scope.run(() => useChat({ room: 'later', immediate: false }))!
    expect(FakeSocket.instances).toHaveLength(0)
    chat.open()
    expect(FakeSocket.instances).toHaveLength(1)
    scope.stop()
  })

  it('does nothing during SSR (no window)', () => {
    vi.stubGlobal('window', undefined)
    const scope = effectScope()
    const chat = scope.run(() => useChat({ room: 'ssr' }))!
    expect(FakeSocket.instances).toHaveLength(0)
    expect(chat.status.value).toBe('CLOSED')
    expect(chat.messages.value).toEqual([])
    expect(chat.send('x')).toBe(false)
    scope.stop()
  })
})

describe('useChat: rooms, identity, hydration (issues 11, 12)', () => {
  let storage: Map<string, string>

  beforeEach(() => {
    FakeSocket.instances = []
    storage = new Map()
    vi.useFakeTimers()
    vi.stubGlobal('WebSocket', FakeSocket)
    vi.stubGlobal('location', { href: 'http://localhost:3000/' })
    vi.stubGlobal('document', { visibilityState: 'visible', addEventListener() {} })
    vi.stubGlobal('window', { addEventListener() {} })
    vi.stubGlobal('sessionStorage', { getItem: (key: string) => storage.get(key) ?? null, setItem: (key: string, value: string) => storage.set(key, value) })
  })
  afterEach(() => {
    forgetSharedSockets()
    vi.useRealTimers()
    vi.unstubAllGlobals()
  })

  const sockets = () => FakeSocket.instances

  it('a room switch keeps the old room until its queue is delivered', async () => {
    const scope = effectScope()
    const one = `one-${Math.random()}`
    const room = ref(one)
    const chat = scope.run(() => useChat({ room }))!
    const [socket] = sockets()
    socket!.greet()
    socket!.joined(one)
    expect(chat.send('queued in one')).toBe(true)
    const { cid } = socket!.commands.find(command => command.type === 'message')!
    room.value = 'two'
    await nextTick()
    // Still in the room: its message is in flight.
    expect(socket!.commands.some(command => command.type === 'leave')).toBe(false)
    socket!.receive({ type: 'message', id: 1, room: one, user: 'me', message: 'queued in one', ts: 1, cid })
    expect(socket!.commands.at(-1)).toEqual({ type: 'leave', room: one })
    expect(socket!.closed).toBe(false)
    expect(sockets()).toHaveLength(1)
    expect(chat.error.value).toBeNull()
    scope.stop()
  })

  it('a room switch that cannot deliver reports undelivered messages: error and failed', async () => {
    const scope = effectScope()
    const room = ref(`one-${Math.random()}`)
    const chat = scope.run(() => useChat({ room, drainTimeout: 5000 }))!
    chat.send('never delivered')
    await Promise.resolve()
    const [message] = chat.messages.value
    room.value = `two-${Math.random()}`
    await nextTick()
    vi.advanceTimersByTime(5000)
    expect(chat.error.value).toMatchObject({ code: 'undelivered', cids: [message!.cid] })
    expect(message).toMatchObject({ failed: true })
    expect(sockets().filter(socket => !socket.closed)).toHaveLength(1)
    scope.stop()
  })

  it('presents one random guest key per tab, the same on every connection', async () => {
    const scope = effectScope()
    const room = ref('k1')
    scope.run(() => useChat({ room }))
    room.value = 'k2'
    await nextTick()
    // Another name is another socket of the tab, with the same key.
    const other = effectScope()
    other.run(() => useChat({ room: 'k3', name: 'Other' }))
    const keys = sockets().map(socket => socket.url.searchParams.get('guest'))
    expect(keys).toHaveLength(2)
    expect(keys[0]).toMatch(/^[\w-]{22}$/)
    expect(keys[1]).toBe(keys[0])
    expect(storage.get('nuxt-chat:guest-key')).toBe(keys[0])
    other.stop()
    scope.stop()
  })
})

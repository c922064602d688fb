import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import { useChat } from '../../src/runtime/app/composables/useChat'

/** A WebSocket stand-in: records URLs, what was written and whether it was closed. */
class FakeSocket {
  static instances: FakeSocket[] = []
  readyState = 0
  closed = false
  sent: string[] = []
  onopen: (() => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  constructor(readonly url: URL) {
    FakeSocket.instances.push(this)
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
    vi.unstubAllGlobals()
  })

  it('shares one connection between components on the same room, and closes it with the last', () => {
    const first = effectScope()
    const second = effectScope()
    const a = first.run(() => useChat({ room: 'lobby' }))!
    const b = second.run(() => useChat({ room: 'lobby' }))!
    expect(FakeSocket.instances).toHaveLength(1)
    expect(FakeSocket.instances[0]!.url.searchParams.get('room')).toBe('lobby')
    expect(a.status.value).toBe('CONNECTING')
    expect(b.status.value).toBe('CONNECTING')
    first.stop()
    expect(open()).toHaveLength(1)
    second.stop()
    expect(open()).toHaveLength(0)
  })

  it('switches rooms when the room ref changes', async () => {
    const scope = effectScope()
    const room = ref('one')
    scope.run(() => useChat({ room }))
    room.value = 'two'
    await nextTick()
    expect(FakeSocket.instances.map(socket => socket.url.searchParams.get('room'))).toEqual(['one', 'two'])
    expect(open().map(socket => socket.url.searchParams.get('room'))).toEqual(['two'])
    scope.stop()
    expect(open()).toHaveLength(0)
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
    vi.useRealTimers()
    vi.unstubAllGlobals()
  })

  const sockets = () => FakeSocket.instances

  it('a room switch keeps the old connection until its queue is delivered', async () => {
    const scope = effectScope()
    const room = ref(`one-${Math.random()}`)
    const chat = scope.run(() => useChat({ room }))!
    const [first] = sockets()
    first!.accept()
    expect(chat.send('queued in one')).toBe(true)
    const { cid } = JSON.parse(first!.sent[0]!)
    room.value = 'two'
    await nextTick()
    // Still open: its message is in flight.
    expect(first!.closed).toBe(false)
    first!.onmessage!({ data: JSON.stringify({ type: 'message', id: 1, room: 'one', user: 'me', message: 'queued in one', ts: 1, cid }) })
    expect(first!.closed).toBe(true)
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
    const keys = sockets().map(socket => socket.url.searchParams.get('guest'))
    expect(keys[0]).toMatch(/^[\w-]{22}$/)
    expect(keys[1]).toBe(keys[0])
    expect(storage.get('nuxt-chat:guest-key')).toBe(keys[0])
    scope.stop()
  })
})

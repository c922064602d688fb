import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import { useChat } from '../../src/runtime/app/composables/useChat'

/** A WebSocket stand-in: records URLs and whether it was closed. */
class FakeSocket {
  static instances: FakeSocket[] = []
  readyState = 0
  closed = false
  onopen: (() => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  constructor(readonly url: URL) {
    FakeSocket.instances.push(this)
  }

  send() {}
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

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createChatConnection, type ChatConnectionOptions } from '../../src/runtime/app/chatConnection'
import type { ChatServerFrame } from '../../src/runtime/shared/protocol'

/** A WebSocket stand-in the test opens, feeds and drops by hand. */
class FakeSocket {
  static instances: FakeSocket[] = []
  readyState = 0
  sent: string[] = []
  onopen: (() => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  url: URL
  constructor(url: URL) {
    this.url = url
    FakeSocket.instances.push(this)
  }

  send(data: string) {
    this.sent.push(data)
  }

  close() {
    this.readyState = 3
  }

  accept() {
    this.readyState = 1
    this.onopen?.()
  }

  receive(frame: ChatServerFrame | Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }

  drop() {
    this.readyState = 3
    this.onclose?.()
  }
}

const latest = () => FakeSocket.instances[FakeSocket.instances.length - 1]!
const welcome = { type: 'system', event: 'welcome', room: 'r', user: 'server', message: 'Welcome me!', peer: { id: 'p1', name: 'me' } } as const
const message = (id: number, text = `m${id}`, cid?: string) => ({ type: 'message', id, room: 'r', user: 'someone', message: text, ts: id, ...(cid ? { cid } : {}) }) as const
const flush = () => new Promise<void>(resolve => queueMicrotask(resolve))

function connection<T = unknown>(overrides: Partial<ChatConnectionOptions> = {}) {
  return createChatConnection<T>({
    room: 'r',
    transport: 'ws',
    route: '/_ws',
    sseRoute: '/api/sse',
    maxMessages: 500,
    maxQueue: 100,
    maxLength: 2000,
    autoReconnect: true,
    heartbeat: { interval: 25_000, timeout: 10_000 },
    typingTimeout: 4000,
    baseURL: 'http://localhost:3000/',
    ...overrides,
  })
}

beforeEach(() => {
  FakeSocket.instances = []
  vi.useFakeTimers()
  vi.stubGlobal('WebSocket', FakeSocket)
  // Jitter at its maximum: delays are exactly the ceiling.
  vi.spyOn(Math, 'random').mockReturnValue(1)
})
afterEach(() => {
  vi.useRealTimers()
  vi.unstubAllGlobals()
  vi.restoreAllMocks()
})

describe('reconnection', () => {
  it('backs off exponentially and resets the count after a successful connect', () => {
    const chat = connection()
    chat.open()
    expect(latest().url.href).toBe('ws://localhost:3000/_ws?room=r')
    latest().drop()
    expect(chat.status.value).toBe('CLOSED')
    vi.advanceTimersByTime(499)
    expect(FakeSocket.instances).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.instances).toHaveLength(2)
    latest().drop()
    vi.advanceTimersByTime(999)
    expect(FakeSocket.instances).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.instances).toHaveLength(3)
    latest().accept()
    latest().receive(welcome)
    latest().drop()
    // Back to the first delay: the welcome proved the connection good.
    vi.advanceTimersByTime(500)
    expect(FakeSocket.instances).toHaveLength(4)
  })

  it('gives up after `retries` and calls onFailed', () => {
    const onFailed = vi.fn()
    const chat = connection({ autoReconnect: { retries: 2, delay: 100, maxDelay: 100, onFailed } })
    chat.open()
    for (let i = 0; i < 3; i++) {
      latest().drop()
      vi.advanceTimersByTime(100)
    }
    expect(FakeSocket.instances).toHaveLength(3)
    expect(onFailed).toHaveBeenCalledOnce()
  })

  it('does not reconnect after close()', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.close()
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.instances).toHaveLength(1)
    expect(chat.status.value).toBe('CLOSED')
  })

  it('resumes from the newest id it holds', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(welcome)
    latest().receive(message(7))
    latest().receive(message(9))
    latest().drop()
    vi.advanceTimersByTime(500)
    expect(latest().url.searchParams.get('since')).toBe('9')
    await flush()
    chat.clear()
    latest().drop()
    vi.advanceTimersByTime(500)
    // clear() empties the view, not the cursor: old messages do not come back.
    expect(latest().url.searchParams.get('since')).toBe('9')
  })
})

describe('heartbeat', () => {
  it('pings every interval and reconnects when no answer comes within the timeout', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    vi.advanceTimersByTime(25_000)
    expect(latest().sent).toEqual(['{"type":"ping"}'])
    vi.advanceTimersByTime(9_999)
    expect(chat.status.value).toBe('OPEN')
    vi.advanceTimersByTime(1)
    expect(chat.status.value).toBe('CLOSED')
    expect(chat.error.value?.code).toBe('connection')
    vi.advanceTimersByTime(500)
    expect(FakeSocket.instances).toHaveLength(2)
  })

  it('counts any frame as an answer', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    vi.advanceTimersByTime(25_000)
    latest().receive({ type: 'pong', user: 'server', message: 'pong' })
    vi.advanceTimersByTime(20_000)
    expect(chat.status.value).toBe('OPEN')
    expect(FakeSocket.instances).toHaveLength(1)
  })
})

describe('send queue', () => {
  it('queues while disconnected, shows the message as pending, and the echo turns it into the stored one', async () => {
    const chat = connection()
    expect(chat.send('hello')).toBe(true)
    await flush()
    const [pending] = chat.messages.value
    expect(pending).toMatchObject({ message: 'hello', pending: true })
    expect(pending!.id).toBeUndefined()
    chat.open()
    latest().accept()
    const sent = JSON.parse(latest().sent[0]!)
    expect(sent).toEqual({ type: 'message', message: 'hello', cid: pending!.cid })
    latest().receive(message(1, 'hello', pending!.cid))
    await flush()
    expect(chat.messages.value).toHaveLength(1)
    expect(chat.messages.value[0]).toBe(pending)
    expect(pending).toMatchObject({ id: 1, message: 'hello' })
    expect(pending!.pending).toBeUndefined()
    expect(chat.queued).toBe(0)
  })

  it('resends unacknowledged messages with the same cid after a reconnect', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.send('one')
    const cid = JSON.parse(latest().sent[0]!).cid
    latest().drop()
    vi.advanceTimersByTime(500)
    latest().accept()
    expect(latest().sent.map(data => JSON.parse(data).cid)).toEqual([cid])
  })

  it('refuses beyond maxQueue and says why', () => {
    const chat = connection({ maxQueue: 2 })
    expect(chat.send('a')).toBe(true)
    expect(chat.send('b')).toBe(true)
    expect(chat.send('c')).toBe(false)
    expect(chat.error.value?.code).toBe('queue_full')
  })

  it('refuses empty and too long text locally', () => {
    const chat = connection({ maxLength: 5 })
    expect(chat.send('   ')).toBe(false)
    expect(chat.error.value?.code).toBe('empty')
    expect(chat.send('123456')).toBe(false)
    expect(chat.error.value?.code).toBe('too_long')
  })

  it('drops a pending message the server refused', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.send('bad')
    const cid = JSON.parse(latest().sent[0]!).cid
    latest().receive({ type: 'error', code: 'rejected', user: 'server', message: 'no', cid })
    await flush()
    expect(chat.messages.value).toEqual([])
    expect(chat.error.value).toMatchObject({ code: 'rejected', cid })
    expect(chat.queued).toBe(0)
  })

  it('sends objects as JSON and exposes them parsed', async () => {
    const chat = connection<{ n: number }>()
    chat.open()
    latest().accept()
    chat.send({ n: 1 })
    expect(JSON.parse(JSON.parse(latest().sent[0]!).message)).toEqual({ n: 1 })
    latest().receive(message(1, '{"n":1}'))
    await flush()
    expect(chat.messages.value.find(entry => entry.id === 1)?.data).toEqual({ n: 1 })
  })
})

describe('message log', () => {
  it('keeps messages sorted by id, each once', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    for (const id of [3, 1, 2, 3, 1, 5, 4]) latest().receive(message(id))
    await flush()
    expect(chat.messages.value.map(entry => entry.id)).toEqual([1, 2, 3, 4, 5])
  })

  it('caps the log at maxMessages, dropping the oldest', async () => {
    const chat = connection({ maxMessages: 3 })
    chat.open()
    latest().accept()
    for (let id = 1; id <= 10; id++) latest().receive(message(id))
    await flush()
    expect(chat.messages.value.map(entry => entry.id)).toEqual([8, 9, 10])
  })

  it('tracks presence and typing, and typing expires', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(welcome)
    latest().receive({ type: 'presence', room: 'r', users: [{ id: 'p1', name: 'me' }, { id: 'p2', name: 'bob' }], user: 'server', message: '2 online' })
    expect(chat.users.value.map(user => user.name)).toEqual(['me', 'bob'])
    latest().receive({ type: 'typing', room: 'r', user: 'bob', uid: 'p2', message: '' })
    latest().receive({ type: 'typing', room: 'r', user: 'me', uid: 'p1', message: '' })
    expect(chat.typing.value).toEqual([{ id: 'p2', name: 'bob' }])
    vi.advanceTimersByTime(4000)
    expect(chat.typing.value).toEqual([])
  })

  it('takes 10,000 incoming message frames quickly (one publish per burst)', async () => {
    vi.useRealTimers()
    const chat = connection({ maxMessages: 500 })
    chat.open()
    latest().accept()
    const frames = Array.from({ length: 10_000 }, (_, i) => ({ data: JSON.stringify(message(i + 1)) }))
    const started = performance.now()
    for (const frame of frames) latest().onmessage!(frame)
    await flush()
    const elapsed = performance.now() - started
    expect(chat.messages.value).toHaveLength(500)
    expect(chat.messages.value[499]!.id).toBe(10_000)
    // Goal 100 ms on this machine; the bound leaves room for a loaded CI box.
    expect(elapsed).toBeLessThan(400)
  })
})

describe('resume', () => {
  it('reconnects at once (browser online / tab visible) instead of waiting out the backoff', () => {
    const chat = connection({ autoReconnect: { delay: 5000, maxDelay: 5000 } })
    chat.open()
    latest().drop()
    expect(FakeSocket.instances).toHaveLength(1)
    chat.resume()
    expect(FakeSocket.instances).toHaveLength(2)
    // The pending backoff timer was replaced, not added to.
    vi.advanceTimersByTime(10_000)
    expect(FakeSocket.instances).toHaveLength(2)
  })

  it('does nothing when the connection is up or was closed on purpose', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.resume()
    expect(FakeSocket.instances).toHaveLength(1)
    chat.close()
    chat.resume()
    expect(FakeSocket.instances).toHaveLength(1)
  })
})

describe('in-flight cap', () => {
  it('keeps at most 10 messages unanswered, sending the next as answers come', () => {
    const chat = connection()
    for (let i = 0; i < 15; i++) chat.send(`m${i}`)
    chat.open()
    latest().accept()
    expect(latest().sent).toHaveLength(10)
    const first = JSON.parse(latest().sent[0]!)
    latest().receive(message(1, 'm0', first.cid))
    expect(latest().sent.map(data => JSON.parse(data).message)).toEqual(Array.from({ length: 11 }, (_, i) => `m${i}`))
  })

  it('does not start a new heartbeat wait while one is running (timeout longer than interval)', () => {
    const chat = connection({ heartbeat: { interval: 1000, timeout: 2500 } })
    chat.open()
    latest().accept()
    vi.advanceTimersByTime(2000)
    expect(latest().sent).toEqual(['{"type":"ping"}'])
    vi.advanceTimersByTime(1500)
    expect(chat.status.value).toBe('CLOSED')
  })
})

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createChatConnection, type ChatConnectionOptions } from '../../src/runtime/app/chatConnection'
import { forgetSharedSockets } from '../../src/runtime/app/sharedSocket'
import { parseHistoryRequest, type ChatServerFrame } from '../../src/runtime/shared/protocol'

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

/** An EventSource stand-in: the test opens, feeds and fails it by hand. */
class FakeEventSource {
  static instances: FakeEventSource[] = []
  readyState = 0
  onopen: (() => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onerror: (() => void) | null = null
  closed = false
  constructor(readonly url: URL) {
    FakeEventSource.instances.push(this)
  }

  close() {
    this.closed = true
    this.readyState = 2
  }

  accept() {
    this.readyState = 1
    this.onopen?.()
  }

  receive(frame: ChatServerFrame | Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }

  fail() {
    this.readyState = 2
    this.onerror?.()
  }
}

/** Every fetch the client made (refusal probes, POSTs), answered by `answer`. */
let requests: { url: URL, init?: RequestInit }[] = []
let answer: (url: URL, init?: RequestInit) => { status: number, body?: unknown } = () => ({ status: 426 })
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

beforeEach(() => {
  FakeSocket.instances = []
  FakeEventSource.instances = []
  requests = []
  answer = () => ({ status: 426 })
  vi.useFakeTimers()
  vi.stubGlobal('WebSocket', FakeSocket)
  vi.stubGlobal('EventSource', FakeEventSource)
  vi.stubGlobal('fetch', async (input: URL | string, init?: RequestInit) => {
    const url = new URL(input)
    requests.push({ url, init })
    const { status, body } = answer(url, init)
    return { status, text: async () => JSON.stringify(body ?? {}) }
  })
  // Jitter at its maximum: delays are exactly the ceiling.
  vi.spyOn(Math, 'random').mockReturnValue(1)
})
afterEach(() => {
  vi.useRealTimers()
  vi.unstubAllGlobals()
  vi.restoreAllMocks()
})

describe('reconnection', () => {
  it('backs off exponentially and resets the count after a successful connect', async () => {
    const chat = connection()
    chat.open()
    expect(latest().url.href).toBe('ws://localhost:3000/_ws?room=r')
    latest().drop()
    expect(chat.status.value).toBe('CLOSED')
    // Closed before it opened: one probe (426: it would have upgraded), then the backoff.
    await settle()
    expect(requests.map(request => request.url.href)).toEqual(['http://localhost:3000/_ws?room=r'])
    vi.advanceTimersByTime(499)
    expect(FakeSocket.instances).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.instances).toHaveLength(2)
    latest().drop()
    await settle()
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

  it('gives up after `retries` and calls onFailed', async () => {
    const onFailed = vi.fn()
    const chat = connection({ autoReconnect: { retries: 2, delay: 100, maxDelay: 100, onFailed } })
    chat.open()
    for (let i = 0; i < 3; i++) {
      latest().drop()
      await settle()
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
    latest().receive(message(8))
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

  it('marks a message the server refused for good as failed, and does not resend it', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.send('bad')
    const cid = JSON.parse(latest().sent[0]!).cid
    latest().receive({ type: 'error', code: 'rejected', user: 'server', message: 'no', cid })
    await flush()
    expect(chat.messages.value).toEqual([expect.objectContaining({ message: 'bad', cid, failed: true })])
    expect(chat.messages.value[0]!.pending).toBeUndefined()
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

const sentMessages = (socket: FakeSocket) => socket.sent.map(data => JSON.parse(data)).filter(command => command.type === 'message') as { message: string, cid: string }[]
const refusal = (code: string, cid: string) => ({ type: 'error', code, user: 'server', message: 'not now', cid })

describe('lifecycle: open() and close() never strand messages (issue 12)', () => {
  it('open() while connected resends everything unanswered on the new socket', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    for (let i = 0; i < 11; i++) chat.send(`m${i}`)
    expect(sentMessages(latest())).toHaveLength(10)
    // "Reconnect now": the old socket is likely dead, its 10 in-flight messages unanswered.
    chat.open()
    latest().accept()
    expect(sentMessages(latest()).map(command => command.message)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`))
    expect(chat.queued).toBe(11)
  })

  it('close() then open() resends what was in flight', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.send('one')
    chat.send('two')
    chat.close()
    chat.open()
    latest().accept()
    expect(sentMessages(latest()).map(command => command.message)).toEqual(['one', 'two'])
  })
})

describe('order of one sender\'s messages (issue 12)', () => {
  it('after a refusal for now, resends the refused message first and then the rest, in send order, after a backoff', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    for (let i = 0; i < 5; i++) chat.send(`m${i}`)
    const cids = sentMessages(latest()).map(command => command.cid)
    latest().receive(message(1, 'm0', cids[0]))
    // The server refuses m1 for now and holds m2..m4 behind it (docs/PROTOCOL.md, "Held refusals").
    for (const cid of cids.slice(1)) latest().receive(refusal('rate_limited', cid!))
    expect(sentMessages(latest())).toHaveLength(5)
    vi.advanceTimersByTime(499)
    expect(sentMessages(latest())).toHaveLength(5)
    vi.advanceTimersByTime(1)
    expect(sentMessages(latest()).slice(5).map(command => command.message)).toEqual(['m1', 'm2', 'm3', 'm4'])
    expect(sentMessages(latest()).slice(5).map(command => command.cid)).toEqual(cids.slice(1))
  })

  it('writes nothing new while a refusal is being waited out', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.send('a')
    const [first] = sentMessages(latest())
    latest().receive(refusal('unavailable', first!.cid))
    chat.send('b')
    expect(sentMessages(latest()).map(command => command.message)).toEqual(['a'])
    vi.advanceTimersByTime(500)
    expect(sentMessages(latest()).map(command => command.message)).toEqual(['a', 'a', 'b'])
  })
})

describe('resume cursor (issue 12)', () => {
  it('a duplicate answer never moves the cursor, though its message is shown', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(message(1))
    chat.send('again')
    const [sent] = sentMessages(latest())
    // The server answers a repeated cid with the stored frame, outside the room's order.
    latest().receive({ ...message(5, 'again', sent!.cid), duplicate: true })
    await flush()
    expect(chat.messages.value.map(entry => entry.id)).toEqual([1, 5])
    expect(chat.queued).toBe(0)
    latest().drop()
    vi.advanceTimersByTime(500)
    expect(latest().url.searchParams.get('since')).toBe('1')
  })

  it('moves only through contiguous ids', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(message(1))
    latest().receive(message(3))
    latest().drop()
    vi.advanceTimersByTime(500)
    expect(latest().url.searchParams.get('since')).toBe('1')
    latest().accept()
    latest().receive(welcome)
    // The replay starts a new run; 2 then fills the gap up to 3.
    latest().receive(message(2))
    latest().receive(message(3))
    latest().receive(message(4))
    latest().drop()
    vi.advanceTimersByTime(500)
    expect(latest().url.searchParams.get('since')).toBe('4')
  })
})

describe('presence and typing (issue 12)', () => {
  it('a message from someone ends their typing notice', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive({ type: 'typing', room: 'r', user: 'bob', uid: 'p2', message: '' })
    expect(chat.typing.value.map(user => user.id)).toEqual(['p2'])
    latest().receive({ ...message(1, 'hi'), user: 'bob', uid: 'p2' })
    expect(chat.typing.value).toEqual([])
  })

  it('empties users and typing while disconnected', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive({ type: 'presence', room: 'r', users: [{ id: 'p1', name: 'me' }, { id: 'p2', name: 'bob' }], user: 'server', message: '2 online' })
    latest().receive({ type: 'typing', room: 'r', user: 'bob', uid: 'p2', message: '' })
    latest().drop()
    expect(chat.users.value).toEqual([])
    expect(chat.typing.value).toEqual([])
  })

  it('applies presence_diff: leaves, then joins', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive({ type: 'presence', room: 'r', users: [{ id: 'p1', name: 'me' }, { id: 'p2', name: 'bob' }], user: 'server', message: '2 online' })
    latest().receive({ type: 'presence_diff', room: 'r', joins: [{ id: 'guest:x', name: 'Eve', guest: true }], leaves: [{ id: 'p2', name: 'bob' }], count: 2, user: 'server', message: '2 online' })
    expect(chat.users.value).toEqual([{ id: 'p1', name: 'me' }, { id: 'guest:x', name: 'Eve', guest: true }])
  })
})

describe('identity: guest key and cids (issue 11)', () => {
  const key = 'AAAAAAAAAAAAAAAAAAAAAA'

  it('sends the guest key on WebSocket, SSE and POST', async () => {
    const ws = connection({ guestKey: key })
    ws.open()
    expect(latest().url.searchParams.get('guest')).toBe(key)
    const sse = connection({ guestKey: key, transport: 'sse' })
    sse.open()
    const source = FakeEventSource.instances[0]!
    expect(source.url.searchParams.get('guest')).toBe(key)
    source.accept()
    sse.send('hi')
    await settle()
    const post = requests.find(request => request.init?.method === 'POST')!
    expect(post.url.searchParams.get('guest')).toBe(key)
  })

  it('makes cids of 128 random bits, without time or counter', () => {
    const chat = connection()
    chat.open()
    latest().accept()
    chat.send('a')
    chat.send('b')
    const cids = sentMessages(latest()).map(command => command.cid)
    for (const cid of cids) expect(cid).toMatch(/^[0-9a-f]{32}$/)
    expect(cids[0]).not.toBe(cids[1])
  })
})

describe('refusals reach the app (issue 11)', () => {
  it('a refused upgrade: one probe, error unauthorized, CLOSED, no retries until open()', async () => {
    answer = () => ({ status: 401 })
    const chat = connection()
    chat.open()
    latest().drop()
    await settle()
    expect(chat.error.value?.code).toBe('unauthorized')
    expect(chat.status.value).toBe('CLOSED')
    vi.advanceTimersByTime(60_000)
    chat.resume()
    expect(FakeSocket.instances).toHaveLength(1)
    expect(requests).toHaveLength(1)
    expect(chat.send('hello')).toBe(false)
    // Signed in now: open() tries again.
    answer = () => ({ status: 426 })
    chat.open()
    expect(FakeSocket.instances).toHaveLength(2)
    latest().accept()
    expect(chat.send('hello')).toBe(true)
  })

  it('a refused SSE stream: forbidden', async () => {
    answer = () => ({ status: 403 })
    const chat = connection({ transport: 'sse' })
    chat.open()
    FakeEventSource.instances[0]!.fail()
    await settle()
    expect(chat.error.value?.code).toBe('forbidden')
    expect(chat.status.value).toBe('CLOSED')
    vi.advanceTimersByTime(60_000)
    expect(FakeEventSource.instances).toHaveLength(1)
    expect(requests.map(request => request.url.pathname)).toEqual(['/api/sse'])
  })

  it('a server that is down is retried with backoff, not reported as a refusal', async () => {
    answer = () => {
      throw new TypeError('fetch failed')
    }
    const chat = connection()
    chat.open()
    latest().drop()
    await settle()
    expect(chat.error.value).toBeNull()
    vi.advanceTimersByTime(500)
    expect(FakeSocket.instances).toHaveLength(2)
  })
})

describe('a join a limit refused, on the tab\'s shared socket', () => {
  afterEach(() => forgetSharedSockets())
  const hello = { type: 'hello', version: 2, me: { id: 'p1', name: 'me' }, limits: { maxLength: 2000, maxRooms: 100 } }
  const joinsOn = (socket: FakeSocket) => socket.sent.map(text => JSON.parse(text) as { type: string, ref?: string, room?: string }).filter(command => command.type === 'join')
  const refused = (ref: string | undefined, retryAfter: number) => ({ type: 'join_refused', room: 'r', ref, code: 'rate_limited', message: `Too many joins from you; retry in ${retryAfter} s`, scope: 'person', limit: 'joins', retryAfter })

  /** A room connection on the tab's shared socket, greeted: its first `join` is sent. */
  const greeted = () => {
    const chat = connection({ shareSocket: true })
    chat.open()
    const socket = latest()
    socket.accept()
    socket.receive(hello)
    return { chat, socket }
  }

  it('joins that room again after retryAfter plus the backoff, asks the route nothing, backs off further while refused, and opens when let in', async () => {
    const { chat, socket } = greeted()
    expect(joinsOn(socket)).toHaveLength(1)
    socket.receive(refused(joinsOn(socket)[0]!.ref, 3))
    await settle()
    expect(chat.status.value).toBe('CLOSED')
    // Not a refusal for good, and no probe: the server said why and when.
    expect(chat.error.value).toBeNull()
    expect(requests).toHaveLength(0)
    // 3 s, then the first backoff (500 ms: jitter at its maximum).
    vi.advanceTimersByTime(3499)
    expect(joinsOn(socket)).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(joinsOn(socket)).toHaveLength(2)
    // Refused again: 3 s and a longer backoff (1 s).
    socket.receive(refused(joinsOn(socket)[1]!.ref, 3))
    await settle()
    vi.advanceTimersByTime(3999)
    expect(joinsOn(socket)).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(joinsOn(socket)).toHaveLength(3)
    const last = joinsOn(socket)[2]!
    socket.receive({ type: 'joined', room: 'r', ref: last.ref, me: { id: 'p1', name: 'me' } })
    socket.receive({ type: 'caught_up', room: 'r', ref: last.ref })
    expect(chat.status.value).toBe('OPEN')
    expect(FakeSocket.instances).toHaveLength(1)
    expect(requests).toHaveLength(0)
    chat.close()
  })

  it('waits out a large retryAfter, and an absent one is the plain backoff', async () => {
    const { chat, socket } = greeted()
    socket.receive(refused(joinsOn(socket)[0]!.ref, 60))
    await settle()
    vi.advanceTimersByTime(60_000)
    expect(joinsOn(socket)).toHaveLength(1)
    vi.advanceTimersByTime(500)
    expect(joinsOn(socket)).toHaveLength(2)
    socket.receive({ ...refused(joinsOn(socket)[1]!.ref, 1), retryAfter: undefined })
    await settle()
    vi.advanceTimersByTime(1000)
    expect(joinsOn(socket)).toHaveLength(3)
    chat.close()
  })
})

describe('SSE sending', () => {
  it('posts one message at a time, in order, and retries a failed POST before the next', async () => {
    let fail = true
    answer = (url, init) => {
      if (init?.method !== 'POST') return { status: 426 }
      const body = JSON.parse(String(init.body))
      if (fail) {
        fail = false
        return { status: 503, body: { type: 'error', code: 'unavailable', user: 'server', message: 'down' } }
      }
      return { status: 200, body: { type: 'message', id: 1, room: 'r', user: 'me', message: body.message, ts: 1, cid: body.cid } }
    }
    const chat = connection({ transport: 'sse' })
    chat.open()
    FakeEventSource.instances[0]!.accept()
    chat.send('one')
    chat.send('two')
    await settle()
    vi.advanceTimersByTime(500)
    await settle()
    await settle()
    const posted = requests.filter(request => request.init?.method === 'POST').map(request => JSON.parse(String(request.init!.body)).message)
    expect(posted).toEqual(['one', 'one', 'two'])
  })
})

describe('ids the client sends stay within what the server accepts (issue 22, finding 11)', () => {
  // The bound docs/PROTOCOL.md ("Ids and cursors") gives, over WebSocket and HTTP alike.
  const MAX_ID = 2 ** 53 - 1
  const emptyPage = { type: 'history', room: 'r', before: MAX_ID, messages: [], more: false, user: 'server', message: '0 older messages' }
  /** What the server makes of a history request's `before` and `limit`. */
  const acceptedByServer = (url: URL) => parseHistoryRequest(url.searchParams.get('before') ?? undefined, url.searchParams.get('limit') ?? undefined)

  it('asks an empty room for its newest page without a cursor, over HTTP before the socket opens and over the socket after', async () => {
    answer = url => url.pathname === '/api/sse' && url.searchParams.has('history') ? { status: 200, body: emptyPage } : { status: 400, body: { type: 'error', code: 'bad_request', message: 'Bad Request: `before` must be a positive integer' } }
    const chat = connection()
    chat.open()
    // Still connecting: the page comes over HTTP.
    expect(await chat.loadOlder()).toBe(0)
    const [get] = requests
    expect(get!.url.searchParams.has('before')).toBe(false)
    expect(get!.url.searchParams.has('history')).toBe(true)
    expect(acceptedByServer(get!.url)).toEqual({ before: MAX_ID, limit: 50 })
    expect(chat.error.value).toBeNull()
    expect(chat.hasMore.value).toBe(false)

    latest().accept()
    latest().receive(welcome)
    const pending = chat.loadOlder(20)
    const command = JSON.parse(latest().sent.at(-1)!)
    expect(command).toEqual({ type: 'history', limit: 20 })
    latest().receive(emptyPage)
    expect(await pending).toBe(0)
    expect(chat.error.value).toBeNull()
    chat.close()
  })

  it('refuses ids no server accepts in markRead, edit, remove and react, and sends nothing for them', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(welcome)
    latest().receive(message(1))
    const sentBefore = latest().sent.length
    for (const [call, id] of [[() => chat.markRead(2 ** 53), 2 ** 53], [() => chat.edit(1.5, 'x'), 1.5], [() => chat.remove(Number.NaN), Number.NaN], [() => chat.react(-1, '👍'), -1], [() => chat.edit(MAX_ID + 2, 'x'), MAX_ID + 2]] as const) {
      chat.error.value = null
      expect(call(), String(id)).toBe(false)
      expect(chat.error.value, String(id)).toMatchObject({ code: 'bad_request' })
    }
    await settle()
    vi.advanceTimersByTime(100)
    expect(latest().sent.slice(sentBefore)).toEqual([])
    // In range, the same calls are sent.
    expect(chat.markRead(1)).toBe(true)
    expect(chat.react(1, '👍')).toBe(true)
    chat.close()
  })

  it('never resumes or pages from a cursor past the bound, whatever id a frame carried', async () => {
    answer = () => ({ status: 200, body: emptyPage })
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(welcome)
    latest().receive(message(2 ** 60))
    latest().drop()
    vi.advanceTimersByTime(20_000)
    // A cursor no server accepts is no cursor: the reconnect asks for the newest replay.
    expect(latest().url.searchParams.get('since')).toBeNull()
    // Still connecting: a page below it, over HTTP, asks for what the server accepts.
    expect(await chat.loadOlder()).toBe(0)
    const page = requests.find(request => request.url.searchParams.has('limit'))!
    expect(page.url.searchParams.get('before')).toBe(String(MAX_ID))
    expect(acceptedByServer(page.url)).toEqual({ before: MAX_ID, limit: 50 })
    expect(chat.error.value).toBeNull()
    chat.close()
  })
})

describe('threads', () => {
  it('keeps replies out of messages, in the thread view, counted once on the parent, and unread for a participant until the room is read', async () => {
    const chat = connection()
    chat.open()
    latest().accept()
    latest().receive(welcome)
    const parent = { ...message(1, 'topic'), uid: 'p1', user: 'me' }
    const reply = (id: number, uid: string) => ({ ...message(id, `reply ${id}`), uid, thread: 1 })
    latest().receive({ type: 'read', room: 'r', uid: 'p1', read: 1, unread: 0, upTo: 1, user: 'server', message: '0 unread' })
    latest().receive(parent)
    latest().receive(reply(2, 'p2'))
    latest().receive({ ...reply(3, 'p3'), alsoInRoom: true })
    latest().receive(reply(4, 'p1'))
    await flush()
    expect(chat.messages.value.map(entry => entry.id)).toEqual([1, 3])
    expect(chat.threadMessages(1).map(entry => entry.id)).toEqual([2, 3, 4])
    expect(chat.messages.value[0]!.replies).toEqual({ count: 3, lastId: 4, lastTs: 4, users: ['p1', 'p3', 'p2'] })
    // Started by this user: the others' replies above the read position are unread; one delivered again counts nothing.
    expect(chat.threadUnread(1)).toBe(2)
    latest().receive(reply(2, 'p2'))
    await flush()
    expect(chat.messages.value[0]!.replies?.count).toBe(3)
    chat.markRead(4)
    await flush()
    expect(chat.threadUnread(1)).toBe(0)
    // Room unread counts main-timeline messages only.
    latest().receive(reply(5, 'p2'))
    await flush()
    expect(chat.unread.value).toBe(0)
    expect(chat.threadUnread(1)).toBe(1)
    chat.close()
  })
})

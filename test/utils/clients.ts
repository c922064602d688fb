import WebSocket from 'ws'
import { applyPresenceDiff, type ChatMessageFrame, type ChatServerFrame, type ChatUser } from '../../src/runtime/shared/protocol'
import { PROTOCOL_V2 } from '../../src/runtime/shared/protocolV2'

/** Wait until `check` returns (or resolves to) a truthy value, polling; fails with `what` after `timeout` ms. */
export async function until<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeout = 10_000): Promise<T> {
  const deadline = Date.now() + timeout
  for (;;) {
    // Awaited: a pending promise is truthy, and would pass at once.
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

type Frame = ChatServerFrame & Record<string, unknown>

/** Users online as a reader sees them: its full presence list with the later diffs applied. */
export function presenceSeen(reader: { frames: ChatServerFrame[] }): ChatUser[] {
  let users: ChatUser[] = []
  for (const frame of reader.frames) {
    if (frame.type === 'presence') users = frame.users
    else if (frame.type === 'presence_diff') users = applyPresenceDiff(users, frame)
  }
  return users
}

/**
 * Wait until two instances hear each other on the bus: a reader on `b` finds a reader on `a` in
 * its first list, and the one on `a` hears of it. A server answers HTTP before its Redis
 * connections are ready and subscribed (a cold start after a build took seconds).
 */
export async function untilOnOneBus(a: { wsUrl: (path?: string) => string }, b: { wsUrl: (path?: string) => string }, timeout = 15_000) {
  const deadline = Date.now() + timeout
  for (let attempt = 1; ; attempt++) {
    const room = `bus-check-${attempt}-${Math.random().toString(36).slice(2, 8)}`
    const onA = await ChatSocket.open(a.wsUrl(''), { room, name: 'bus-check-a' })
    await onA.waitFor(frame => frame.type === 'presence')
    const onB = await ChatSocket.open(b.wsUrl(''), { room, name: 'bus-check-b' })
    try {
      await onB.waitFor(frame => frame.type === 'presence')
      const first = onB.frames.find(frame => frame.type === 'presence') as { users: ChatUser[] }
      if (first.users.some(user => user.name === 'bus-check-a')) {
        await until(() => presenceSeen(onA).some(user => user.name === 'bus-check-b'), 'the first instance to hear of the second\'s reader', 2000)
        return
      }
    }
    finally {
      await Promise.all([onA.close(), onB.close()])
    }
    if (Date.now() > deadline) throw new Error(`the two instances did not hear each other on the bus within ${timeout} ms (${attempt} tries)`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** Query string for the chat endpoints. */
function query(params: Record<string, string | number | undefined>) {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, String(value))
  const text = search.toString()
  return text ? `?${text}` : ''
}

/** A real WebSocket client that records every frame it receives. */
export class ChatSocket {
  frames: Frame[] = []
  /** Raw frames as received, with whether they were binary. */
  raw: { data: string, binary: boolean }[] = []
  closed: { code: number, reason: string } | undefined

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      const text = data.toString()
      this.raw.push({ data: text, binary })
      try {
        this.frames.push(JSON.parse(text))
      }
      catch {
        this.frames.push({ type: 'unparsed', text } as unknown as Frame)
      }
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
    })
    ws.on('error', () => {})
  }

  /** Open a socket to `base` (ws://host:port) and wait for it to be open. */
  static async open(base: string, params: { room?: string, name?: string, since?: number, guest?: string, rooms?: '', deltas?: 1 } = {}, options: WebSocket.ClientOptions = {}): Promise<ChatSocket> {
    const ws = new WebSocket(`${base}/_ws${query(params)}`, options)
    const socket = new ChatSocket(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
    })
    return socket
  }

  /** Chat messages received, in arrival order. */
  get messages(): ChatMessageFrame[] {
    return this.frames.filter((frame): frame is ChatMessageFrame & Record<string, unknown> => frame.type === 'message')
  }

  send(data: string | object) {
    this.ws.send(typeof data === 'string' ? data : JSON.stringify(data))
  }

  /** Wait for a frame matching `predicate` (already received ones count). */
  waitFor(predicate: (frame: Frame) => boolean, what = 'a frame', timeout?: number): Promise<Frame> {
    return until(() => this.frames.find(predicate), what, timeout)
  }

  close() {
    this.ws.close()
    return until(() => this.closed, 'close')
  }
}

/** A real SSE reader (fetch streaming) that records frames and their event ids. */
export class ChatStream {
  frames: Frame[] = []
  ids: (string | undefined)[] = []
  text = ''
  status = 0
  #controller = new AbortController()
  done: Promise<void> = Promise.resolve()

  static async open(base: string, params: { room?: string, name?: string, since?: number, guest?: string, rooms?: '', deltas?: 1 } = {}, headers: Record<string, string> = {}): Promise<ChatStream> {
    const stream = new ChatStream()
    // What a browser's EventSource on the app's own page sends (Fetch Metadata): such a stream makes a read position.
    const response = await fetch(`${base}/api/sse${query(params)}`, { headers: { 'sec-fetch-site': 'same-origin', ...headers }, signal: stream.#controller.signal })
    stream.status = response.status
    if (!response.ok || !response.body) {
      stream.text = await response.text()
      return stream
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    stream.done = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          stream.text += value
          stream.#parse()
        }
      }
      catch {
        // Aborted by close().
      }
    })()
    return stream
  }

  #consumed = 0
  #parse() {
    let end: number
    while ((end = this.text.indexOf('\n\n', this.#consumed)) >= 0) {
      const block = this.text.slice(this.#consumed, end)
      this.#consumed = end + 2
      let id: string | undefined
      let data: string | undefined
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4)
        else if (line.startsWith('data: ')) data = line.slice(6)
      }
      if (data === undefined) continue
      this.frames.push(JSON.parse(data))
      this.ids.push(id)
    }
  }

  get messages(): ChatMessageFrame[] {
    return this.frames.filter((frame): frame is ChatMessageFrame & Record<string, unknown> => frame.type === 'message')
  }

  waitFor(predicate: (frame: Frame) => boolean, what = 'an SSE frame', timeout?: number): Promise<Frame> {
    return until(() => this.frames.find(predicate), what, timeout)
  }

  close() {
    this.#controller.abort()
    return this.done
  }
}

export /** The HTTP status an upgrade request is answered with (101 when it opens). */
function upgradeStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options)
    ws.on('open', () => {
      ws.close()
      resolve(101)
    })
    ws.on('unexpected-response', (_request, response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    ws.on('error', () => resolve(0))
  })
}

/** POST a message over HTTP; returns status and parsed JSON body. */
export async function postMessage(base: string, body: unknown, params: { room?: string, name?: string, guest?: string } = {}, headers: Record<string, string> = {}) {
  const isText = typeof body === 'string'
  const response = await fetch(`${base}/api/sse${query(params)}`, {
    method: 'POST',
    headers: { 'content-type': isText ? 'text/plain' : 'application/json', ...headers },
    body: isText ? body : JSON.stringify(body),
  })
  const text = await response.text()
  let json: Frame | undefined
  try {
    json = JSON.parse(text)
  }
  catch {
    // Not JSON: the caller looks at `text`.
  }
  return { status: response.status, json, text }
}

/**
 * Sign the real client (`createChatConnection`: its WebSocket, EventSource and POSTs) in from
 * Node: a request whose `name` query parameter is a key of `cookies` carries that cookie (the
 * fixture's toy session). Returns a function that puts the globals back.
 */
export function signInByName(cookies: Record<string, string>): () => void {
  const { fetch: plainFetch, WebSocket: PlainWebSocket } = globalThis
  const cookieFor = (url: string | URL) => cookies[new URL(url).searchParams.get('name') ?? '']
  globalThis.fetch = (input, init) => {
    const cookie = cookieFor(input instanceof Request ? input.url : input)
    const headers = init?.headers as Record<string, string> | undefined
    // A request that brings its own cookie (a test's other user) keeps it.
    return plainFetch(input, cookie && !headers?.cookie ? { ...init, headers: { ...headers, cookie } } : init)
  }
  globalThis.WebSocket = class extends PlainWebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      const cookie = cookieFor(url)
      // undici's WebSocket takes headers in its init object (not a browser API; Node only).
      super(url, cookie ? { protocols, headers: { cookie } } as unknown as string[] : protocols)
    }
  }
  return () => {
    globalThis.fetch = plainFetch
    globalThis.WebSocket = PlainWebSocket
  }
}

/** Open a socket, or the refused upgrade's status and JSON body. */
export function openOrRefused(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<{ socket: ChatSocket } | { status: number, body: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, localAddress })
    const socket = new ChatSocket(ws)
    ws.once('open', () => resolve({ socket }))
    ws.once('unexpected-response', (_request, response) => {
      let text = ''
      response.on('data', (chunk) => {
        text += chunk
      })
      response.on('end', () => {
        let body: Record<string, unknown> = {}
        try {
          body = JSON.parse(text)
        }
        catch {
          // Not JSON: the status says enough.
        }
        resolve({ status: response.statusCode ?? 0, body })
      })
    })
    ws.once('error', () => resolve({ status: 0, body: {} }))
  })
}

export { PROTOCOL_V2 }

/** A frame as a version 2 client reads it: any server frame, loosely typed (v2 adds `room` and `ref` to v1's). */
export type FrameV2 = { type: string, room?: string, ref?: string, message?: unknown } & Record<string, unknown>

/** A real version 2 client: one socket, many rooms; records every frame and answers `join` by `ref`. */
export class ChatSocketV2 {
  frames: FrameV2[] = []
  closed: { code: number, reason: string } | undefined
  #refs = 0

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString()
      try {
        this.frames.push(JSON.parse(text))
      }
      catch {
        this.frames.push({ type: 'unparsed', text })
      }
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
    })
    ws.on('error', () => {})
  }

  /** Open a v2 socket to `base` (ws://host:port); `params` are the identity ones (`name`, `guest`). */
  static async openV2(base: string, params: { name?: string, guest?: string } = {}, options: WebSocket.ClientOptions = {}): Promise<ChatSocketV2> {
    const ws = new WebSocket(`${base}/_ws${query(params)}`, PROTOCOL_V2, options)
    const socket = new ChatSocketV2(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
    })
    return socket
  }

  /** A version 2 socket signed in as the fixture's toy session `user` (none: a guest named Guest), once its `hello` came. */
  static async openAs(base: string, user?: string): Promise<ChatSocketV2> {
    const socket = await ChatSocketV2.openV2(base, user ? {} : { name: 'Guest' }, user ? { headers: { cookie: `session=${user}` } } : {})
    await socket.waitFor(frame => frame.type === 'hello', 'hello')
    return socket
  }

  /** A fresh `ref`. */
  ref(): string {
    return `r${++this.#refs}`
  }

  /** Send `command` with a fresh `ref`; the first frame answering it (by `ref`, not `joined`, and `answered`) is returned. */
  ask(command: Record<string, unknown>, answered: (frame: FrameV2) => boolean = frame => frame.type !== 'joined', timeout?: number): Promise<FrameV2> {
    const ref = this.ref()
    this.send({ ...command, ref })
    return this.waitFor(frame => frame.ref === ref && answered(frame), `answer to ${String(command.type)}`, timeout)
  }

  send(data: string | object) {
    this.ws.send(typeof data === 'string' ? data : JSON.stringify(data))
  }

  waitFor(predicate: (frame: FrameV2) => boolean, what = 'a frame', timeout?: number): Promise<FrameV2> {
    return until(() => this.frames.find(predicate), what, timeout)
  }

  /** Send `join` and wait for its `caught_up` (or `join_refused`), returned. */
  async join(room: string, since?: number, timeout?: number): Promise<FrameV2> {
    const ref = this.ref()
    this.send({ type: 'join', room, ref, ...(since === undefined ? {} : { since }) })
    return this.waitFor(frame => (frame.type === 'caught_up' || frame.type === 'join_refused') && frame.ref === ref, `join ${room}`, timeout)
  }

  /** Chat messages of every room, in arrival order. */
  get messages(): ChatMessageFrame[] {
    return this.frames.filter(frame => frame.type === 'message') as unknown as ChatMessageFrame[]
  }

  /** Frames about `room`. */
  framesOf(room: string): FrameV2[] {
    return this.frames.filter(frame => frame.room === room)
  }

  /** Chat messages of `room`, in arrival order. */
  messagesOf(room: string): ChatMessageFrame[] {
    return this.messages.filter(frame => frame.room === room)
  }

  close() {
    this.ws.close()
    return until(() => this.closed, 'close')
  }
}

/**
 * A real version 2 SSE client (docs/PROTOCOL.md, "Version 2 over SSE"): one stream (fetch
 * streaming), commands as POSTs naming the stream id from its `hello`.
 */
export class ChatStreamV2 {
  frames: FrameV2[] = []
  #refs = 0
  constructor(readonly base: string, readonly reader: ChatStream, readonly headers: Record<string, string>, readonly params: { name?: string, guest?: string } = {}) {
    this.frames = reader.frames as unknown as FrameV2[]
  }

  /** Open `GET /api/sse?v=2` and wait for its `hello`. */
  static async openV2(base: string, params: { name?: string, guest?: string } = {}, headers: Record<string, string> = {}): Promise<ChatStreamV2> {
    const reader = await ChatStream.open(base, { ...params, v: '2' } as typeof params, headers)
    const stream = new ChatStreamV2(base, reader, headers, params)
    if (reader.status !== 200) throw Object.assign(new Error(`HTTP ${reader.status}`), { status: reader.status, text: reader.text })
    await stream.waitFor(frame => frame.type === 'hello', 'hello')
    return stream
  }

  /** The stream id from `hello`. */
  get id(): string {
    return this.frames.find(frame => frame.type === 'hello')!.stream as string
  }

  ref(): string {
    return `s${++this.#refs}`
  }

  /** POST one command to a stream (this one unless `stream` says), as the stream's person (its identity parameters); status and parsed body. */
  async send(command: object | string, stream = this.id, headers = this.headers) {
    const response = await fetch(`${this.base}/api/sse${query({ ...this.params, v: 2, stream })}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof command === 'string' ? command : JSON.stringify(command),
    })
    const text = await response.text()
    let json: FrameV2 | undefined
    try {
      json = JSON.parse(text)
    }
    catch {
      // Empty (202).
    }
    return { status: response.status, json, text }
  }

  waitFor(predicate: (frame: FrameV2) => boolean, what = 'a frame', timeout?: number): Promise<FrameV2> {
    return until(() => this.frames.find(predicate), what, timeout)
  }

  /** POST `join` and wait for its `caught_up` (or `join_refused`) on the stream. */
  async join(room: string, since?: number): Promise<FrameV2> {
    const ref = this.ref()
    const answer = await this.send({ type: 'join', room, ref, ...(since === undefined ? {} : { since }) })
    if (answer.status !== 202) throw new Error(`join answered ${answer.status}: ${answer.text}`)
    return this.waitFor(frame => (frame.type === 'caught_up' || frame.type === 'join_refused') && frame.ref === ref, `join ${room}`)
  }

  framesOf(room: string): FrameV2[] {
    return this.frames.filter(frame => frame.room === room)
  }

  messagesOf(room: string): ChatMessageFrame[] {
    return this.framesOf(room).filter(frame => frame.type === 'message') as unknown as ChatMessageFrame[]
  }

  close() {
    return this.reader.close()
  }
}

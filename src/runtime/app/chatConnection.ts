import { shallowRef, type ShallowRef } from 'vue'
import type { ChatErrorFrame, ChatServerFrame, ChatUser } from '../shared/protocol'
import { backoffDelay } from './backoff'
import { createMessageLog, type ChatMessage } from './messageLog'

export type ChatStatus = 'CONNECTING' | 'OPEN' | 'CLOSED'
export type ChatTransport = 'ws' | 'sse'

export interface ChatReconnectOptions {
  /** Give up after this many failed attempts in a row. @default Infinity */
  retries?: number
  /** First delay in milliseconds (doubles each attempt, with jitter). @default 500 */
  delay?: number
  /** Longest delay in milliseconds. @default 10000 */
  maxDelay?: number
  /** Called when `retries` ran out. */
  onFailed?: () => void
}

export interface ChatConnectionOptions {
  room: string
  name?: string
  transport: ChatTransport
  /** WebSocket endpoint path. */
  route: string
  /** SSE endpoint path. */
  sseRoute: string
  /** Messages kept in the log. */
  maxMessages: number
  /** Messages that may wait to be sent. */
  maxQueue: number
  /** Longest message; longer is refused locally. */
  maxLength: number
  /** Reconnection with backoff, or `false`. */
  autoReconnect: boolean | ChatReconnectOptions
  /** App-level ping (WebSocket), or `false`. */
  heartbeat: false | { interval: number, timeout: number }
  /** How long a typing notice lasts without a new one, in ms. */
  typingTimeout: number
  /** Where the server is; defaults to the page's location. */
  baseURL?: string
}

/** A client-side error: a refused frame from the server, or the client's own (`queue_full`, `connection`, and the local `empty` / `too_long`). */
export interface ChatClientError {
  code: ChatErrorFrame['code'] | 'queue_full' | 'connection'
  message: string
  cid?: string
}

/** One outgoing message until the server acknowledges it. */
interface Outgoing {
  cid: string
  message: string
  /** Written to the current connection already. */
  sent: boolean
}

const TYPING_SEND_INTERVAL = 2000
// A reconnect with a full queue would otherwise trip the server's rate limit (and its 1008).
const MAX_IN_FLIGHT = 10
// A POST that hangs would hold up every message queued behind it.
const POST_TIMEOUT = 15_000

let cidCounter = 0
/** A client message id, unique enough to de-duplicate resends: random prefix + counter. */
function newCid(): string {
  const random = globalThis.crypto?.randomUUID?.().slice(0, 8) ?? Math.random().toString(36).slice(2, 10)
  return `${random}-${Date.now().toString(36)}-${(cidCounter++).toString(36)}`
}

/**
 * One connection to one room: the socket (or EventSource + POST), the message log, the send
 * queue, heartbeats and reconnection. Framework-free apart from Vue refs, so it is unit-tested
 * with a stubbed socket; `useChat()` shares one per room between components.
 */
export function createChatConnection<T = unknown>(options: ChatConnectionOptions) {
  const messages: ShallowRef<ChatMessage<T>[]> = shallowRef([])
  const status = shallowRef<ChatStatus>('CLOSED')
  const users = shallowRef<ChatUser[]>([])
  const typing = shallowRef<ChatUser[]>([])
  const error = shallowRef<ChatClientError | null>(null)
  const me = shallowRef<ChatUser | null>(null)

  const log = createMessageLog<T>(options.maxMessages)
  const outbox: Outgoing[] = []
  const reconnect = options.autoReconnect === false ? undefined : { retries: Infinity, delay: 500, maxDelay: 10_000, ...(options.autoReconnect === true ? {} : options.autoReconnect) }
  /** Newest id ever received: the resume cursor (survives `clear()`). */
  let cursor: number | undefined
  let socket: WebSocket | undefined
  let source: EventSource | undefined
  let wanted = false
  let attempts = 0
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined
  let pingTimer: ReturnType<typeof setInterval> | undefined
  let pongTimer: ReturnType<typeof setTimeout> | undefined
  let flushScheduled = false
  let posting: Promise<unknown> = Promise.resolve()
  /** Bumped when queued POSTs must not go out any more (a failure or a drop: the outbox is resent in order). */
  let postRound = 0
  let lastTypingSent = 0
  const typingTimers = new Map<string, ReturnType<typeof setTimeout>>()
  // WebSocket after a passing refusal (rate limit, store down): one message in flight until the outbox drains, so order holds.
  let throttled = false
  let retryTimer: ReturnType<typeof setTimeout> | undefined

  // Frames arrive in bursts (a replay is hundreds); publish the log once per burst.
  function scheduleFlush() {
    if (flushScheduled) return
    flushScheduled = true
    queueMicrotask(() => {
      flushScheduled = false
      log.trim()
      messages.value = log.entries()
    })
  }

  function handleFrame(frame: ChatServerFrame) {
    switch (frame.type) {
      case 'message': {
        if (cursor === undefined || frame.id > cursor) cursor = frame.id
        if (frame.cid !== undefined) {
          const index = outbox.findIndex(item => item.cid === frame.cid)
          if (index >= 0) outbox.splice(index, 1)
          if (index >= 0) nextAfterAnswer()
        }
        if (log.add(frame)) scheduleFlush()
        break
      }
      case 'system':
        if (frame.event === 'welcome') {
          // A welcome is a successful connect: the next drop starts the backoff afresh.
          attempts = 0
          if (frame.peer) me.value = frame.peer
        }
        break
      case 'presence':
        users.value = frame.users
        break
      case 'typing':
        if (frame.uid !== me.value?.id) markTyping({ id: frame.uid, name: frame.user })
        break
      case 'error':
        error.value = { code: frame.code, message: frame.message, cid: frame.cid }
        if (frame.cid && frame.code !== 'rate_limited' && frame.code !== 'unavailable') dropOutgoing(frame.cid)
        else if (frame.cid && options.transport === 'ws') retryLater(frame.cid)
        break
    }
  }

  function markTyping(user: ChatUser) {
    clearTimeout(typingTimers.get(user.id))
    typingTimers.set(user.id, setTimeout(() => {
      typingTimers.delete(user.id)
      typing.value = typing.value.filter(entry => entry.id !== user.id)
    }, options.typingTimeout))
    if (!typing.value.some(entry => entry.id === user.id)) typing.value = [...typing.value, user]
  }

  /** A message the server refused for good: not retried, no longer shown as pending. */
  function dropOutgoing(cid: string) {
    const index = outbox.findIndex(item => item.cid === cid)
    if (index >= 0) outbox.splice(index, 1)
    log.removePending(cid)
    scheduleFlush()
    nextAfterAnswer()
  }

  /** Refused for now: without a retry it would stay pending until the next reconnect. */
  function retryLater(cid: string) {
    const item = outbox.find(entry => entry.cid === cid)
    if (!item) return
    item.sent = false
    throttled = true
    clearTimeout(retryTimer)
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      flushOutbox()
    }, reconnect?.delay ?? 500)
  }

  /** An answer came: the next messages may go (one at a time while throttled); an empty outbox ends throttling. */
  function nextAfterAnswer() {
    if (!outbox.length) throttled = false
    else flushOutbox()
  }

  function parseFrame(data: unknown) {
    if (typeof data !== 'string') return
    let frame: ChatServerFrame
    try {
      frame = JSON.parse(data)
    }
    catch {
      return
    }
    if (frame && typeof frame === 'object') handleFrame(frame)
  }

  function url(path: string, protocol?: 'ws') {
    const base = new URL(options.baseURL ?? globalThis.location.href)
    const target = new URL(path, base)
    if (protocol) target.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:'
    target.searchParams.set('room', options.room)
    if (options.name) target.searchParams.set('name', options.name)
    return target
  }

  // ---- connecting ----

  function connect() {
    teardown()
    status.value = 'CONNECTING'
    if (options.transport === 'sse') connectSse()
    else connectWs()
  }

  function connectWs() {
    const target = url(options.route, 'ws')
    if (cursor !== undefined) target.searchParams.set('since', String(cursor))
    const ws = new WebSocket(target)
    socket = ws
    ws.onopen = () => {
      if (socket !== ws) return
      status.value = 'OPEN'
      startHeartbeat()
      flushOutbox()
    }
    ws.onmessage = (event) => {
      if (socket !== ws) return
      clearTimeout(pongTimer)
      pongTimer = undefined
      parseFrame(event.data)
    }
    ws.onclose = () => {
      if (socket !== ws) return
      dropped()
    }
  }

  function connectSse() {
    const target = url(options.sseRoute)
    if (cursor !== undefined) target.searchParams.set('since', String(cursor))
    const es = new EventSource(target)
    source = es
    es.onopen = () => {
      if (source !== es) return
      status.value = 'OPEN'
      flushOutbox()
    }
    es.onmessage = event => source === es && parseFrame(event.data)
    // EventSource retries by itself, but not after an HTTP error and not with our backoff: own it.
    es.onerror = () => {
      if (source !== es) return
      dropped()
    }
  }

  /** The connection went away: mark what was sent as unsent, then come back (with backoff). */
  function dropped() {
    teardown()
    status.value = 'CLOSED'
    markAllUnsent()
    if (!wanted || !reconnect) return
    if (attempts >= reconnect.retries) {
      reconnect.onFailed?.()
      return
    }
    reconnectTimer = setTimeout(connect, backoffDelay(attempts++, reconnect))
  }

  /** Everything waiting goes again, in order; POSTs queued for the old round are skipped. */
  function markAllUnsent() {
    postRound++
    for (const item of outbox) item.sent = false
  }

  function teardown() {
    clearTimeout(reconnectTimer)
    clearInterval(pingTimer)
    clearTimeout(pongTimer)
    clearTimeout(retryTimer)
    reconnectTimer = pingTimer = pongTimer = retryTimer = undefined
    if (socket) {
      const ws = socket
      socket = undefined
      ws.onopen = ws.onmessage = ws.onclose = null
      if (ws.readyState === 0 || ws.readyState === 1) ws.close()
    }
    if (source) {
      source.onopen = source.onmessage = source.onerror = null
      source.close()
      source = undefined
    }
  }

  /** App-level ping; no frame within `timeout` means the socket is dead though it looks open. */
  function startHeartbeat() {
    if (!options.heartbeat) return
    const { interval, timeout } = options.heartbeat
    pingTimer = setInterval(() => {
      // Still waiting for an answer (timeout >= interval): let that wait run out.
      if (!socket || socket.readyState !== 1 || pongTimer) return
      socket.send('{"type":"ping"}')
      pongTimer = setTimeout(() => {
        error.value = { code: 'connection', message: 'No answer from the server; reconnecting' }
        dropped()
      }, timeout)
    }, interval)
  }

  // ---- sending ----

  /** Send what waits, in order: at most MAX_IN_FLIGHT unanswered (one while throttled). */
  function flushOutbox() {
    if (retryTimer) return
    const limit = throttled ? 1 : MAX_IN_FLIGHT
    let inFlight = 0
    for (const item of outbox) {
      if (!item.sent) {
        write(item)
        // Not connected: what follows must not overtake it.
        if (!item.sent) return
      }
      if (++inFlight >= limit) return
    }
  }

  function write(item: Outgoing) {
    if (options.transport === 'ws') {
      if (socket?.readyState !== 1) return
      socket.send(JSON.stringify({ type: 'message', message: item.message, cid: item.cid }))
      item.sent = true
      return
    }
    if (status.value !== 'OPEN') return
    item.sent = true
    const target = url(options.sseRoute)
    if (me.value && !options.name) target.searchParams.set('name', me.value.name)
    // Network failure or a passing refusal: resend it and everything queued behind it, in order (the cid makes that
    // safe), also while the stream stays up.
    const round = postRound
    const retry = () => {
      markAllUnsent()
      if (status.value === 'OPEN') setTimeout(flushOutbox, reconnect?.delay ?? 500)
    }
    // One POST at a time: concurrent requests would store a burst (or a resent outbox) out of order.
    posting = posting.then(async () => {
      if (round !== postRound || !outbox.includes(item)) return
      let frame: ChatServerFrame
      try {
        const response = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: item.message, cid: item.cid }), signal: AbortSignal.timeout(POST_TIMEOUT) })
        frame = await response.json()
      }
      catch {
        retry()
        return
      }
      // Only errors matter here: the stream delivers the stored frame in order, and only the stream may move the cursor.
      if (frame?.type !== 'error') return
      handleFrame(frame)
      if (!outbox.includes(item)) return
      // Refusals without a cid (a lapsed session, an oversized body) are final too.
      if (frame.code === 'rate_limited' || frame.code === 'unavailable') retry()
      else dropOutgoing(item.cid)
    })
  }

  /**
   * Send a message (objects are sent as JSON text). Shown at once as pending; queued while
   * disconnected. Returns false when it cannot be: too long, empty, or the queue is full.
   */
  function send(data: string | T): boolean {
    const text = typeof data === 'string' ? data : JSON.stringify(data)
    if (!text.trim()) {
      error.value = { code: 'empty', message: 'Message is empty' }
      return false
    }
    if (text.length > options.maxLength) {
      error.value = { code: 'too_long', message: `Message is longer than ${options.maxLength} characters` }
      return false
    }
    if (outbox.length >= options.maxQueue) {
      error.value = { code: 'queue_full', message: `${options.maxQueue} messages are already waiting to be sent` }
      return false
    }
    const item: Outgoing = { cid: newCid(), message: text, sent: false }
    outbox.push(item)
    log.addPending({ room: options.room, user: me.value?.name ?? options.name ?? '', message: text, ts: Date.now(), cid: item.cid })
    scheduleFlush()
    // Never ahead of older messages still waiting to be (re)sent; throttled: after they are answered.
    if (!throttled) flushOutbox()
    return true
  }

  return {
    messages,
    status,
    users,
    typing,
    error,
    me,
    send,
    /** Send a ping (WebSocket); the answer is a `pong` frame. */
    ping() {
      if (socket?.readyState === 1) socket.send('ping')
    },
    /** Tell the room this user is typing (throttled). */
    notifyTyping() {
      const now = Date.now()
      if (now - lastTypingSent < TYPING_SEND_INTERVAL || socket?.readyState !== 1) return
      lastTypingSent = now
      socket.send('{"type":"typing"}')
    },
    /** Connect (or reconnect now, resetting the backoff). */
    open() {
      wanted = true
      attempts = 0
      connect()
    },
    /** Disconnect and stay disconnected. */
    close() {
      wanted = false
      teardown()
      status.value = 'CLOSED'
    },
    /** Reconnect at once if a drop left us waiting (browser back online, tab visible again). */
    resume() {
      if (wanted && status.value === 'CLOSED') {
        attempts = 0
        connect()
      }
    },
    /** Empty the shown log (the resume cursor stays, so nothing old comes back). */
    clear() {
      log.clear()
      for (const item of outbox) log.addPending({ room: options.room, user: me.value?.name ?? '', message: item.message, ts: Date.now(), cid: item.cid })
      scheduleFlush()
    },
    /** Messages waiting for the server's acknowledgement. */
    get queued() {
      return outbox.length
    },
  }
}

export type ChatConnection<T = unknown> = ReturnType<typeof createChatConnection<T>>

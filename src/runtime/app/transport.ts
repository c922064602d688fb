import { errorFrame, type ChatServerFrame } from '../shared/protocol'
import type { ChatJoinRefusalCode, ChatSeenFrame } from '../shared/protocolV2'
import type { OutgoingAction } from './outbox'

/** What a link reports to the connection that owns it. */
export interface ChatLinkEvents {
  /** The link is up: writes may go. */
  opened: () => void
  /** A frame from the server; `outOfOrder`: an answer outside the room's order (a POST's reply), never a cursor. */
  /** A room's frame (version 2's `seen` only on the shared connection). */
  frame: (frame: ChatServerFrame | ChatSeenFrame, outOfOrder?: boolean) => void
  /**
   * The link is gone; `beforeOpen`: it never opened, so the server may have refused it; `refused`: the server said why (a `join_refused`'s code),
   * and `retryAfter`: the whole seconds a limit's refusal (`rate_limited`) asks to wait.
   */
  dropped: (beforeOpen: boolean, refused?: ChatJoinRefusalCode, retryAfter?: number) => void
}

/** One connection to the server, whatever carries it: WebSocket, or EventSource + POST. */
export interface ChatLink {
  /** Messages that may be unanswered at once on this link. */
  readonly window: number
  /** Write one chat message; its answer comes back as a frame (the stored echo, or an error with its cid). */
  write: (message: string, cid: string, action?: OutgoingAction) => void
  /** Send a control command (`ping`, `typing`); false where the link cannot. */
  command: (text: string) => boolean
  /** Close for good; no event follows. */
  close: () => void
}

/** Where a link connects and posts (the connection builds these from its options and state). */
export interface ChatLinkTargets {
  /** The URL to connect to (room, name, guest key, cursor). */
  connect: () => URL
  /** The URL to POST messages to (SSE only). */
  post: () => URL
}

// A WebSocket after a reconnect with a full queue would otherwise trip the server's rate limit.
const WS_WINDOW = 10
// A POST that hangs would hold up every message queued behind it.
const POST_TIMEOUT = 15_000

/** The command (WebSocket) or body (POST) that stores a message, an edit or a delete. */
export function sendCommand(message: string, cid: string, action?: OutgoingAction) {
  return action ? { ...action, message, cid } : { type: 'message', message, cid }
}

/** A frame's JSON text, read loosely (any object with a `type`); undefined when it is not a frame. */
export function parseFrame(data: unknown): ChatServerFrame | undefined {
  if (typeof data !== 'string') return undefined
  try {
    const frame = JSON.parse(data)
    return frame && typeof frame === 'object' && typeof frame.type === 'string' ? frame : undefined
  }
  catch {
    return undefined
  }
}

/** A WebSocket link: frames both ways on one socket. */
export function openWebSocketLink(targets: ChatLinkTargets, events: ChatLinkEvents): ChatLink {
  const ws = new WebSocket(targets.connect())
  let opened = false
  ws.onopen = () => {
    opened = true
    events.opened()
  }
  ws.onmessage = (event) => {
    const frame = parseFrame(event.data)
    if (frame) events.frame(frame)
  }
  ws.onclose = () => events.dropped(!opened)
  const writable = () => ws.readyState === 1
  return {
    window: WS_WINDOW,
    write(message, cid, action) {
      if (writable()) ws.send(JSON.stringify(sendCommand(message, cid, action)))
    },
    command(text) {
      if (!writable()) return false
      ws.send(text)
      return true
    },
    close() {
      ws.onopen = ws.onmessage = ws.onclose = null
      if (ws.readyState === 0 || ws.readyState === 1) ws.close()
    },
  }
}

/**
 * An SSE link: an EventSource receives, each message is a POST. One POST at a time (window 1):
 * concurrent requests could be stored out of order, and POST has no connection to hold later
 * messages behind a refusal.
 */
export function openSseLink(targets: ChatLinkTargets, events: ChatLinkEvents): ChatLink {
  const source = new EventSource(targets.connect())
  const aborter = new AbortController()
  let opened = false
  let closed = false
  source.onopen = () => {
    opened = true
    events.opened()
  }
  source.onmessage = (event) => {
    const frame = parseFrame(event.data)
    if (frame) events.frame(frame)
  }
  // EventSource retries by itself, but not after an HTTP error and not with our backoff: own it.
  source.onerror = () => {
    close()
    events.dropped(!opened)
  }
  function close() {
    closed = true
    source.onopen = source.onmessage = source.onerror = null
    source.close()
    aborter.abort()
  }
  async function post(message: string, cid: string, action?: OutgoingAction) {
    let frame: ChatServerFrame | undefined
    try {
      const response = await fetch(targets.post(), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sendCommand(message, cid, action)),
        signal: AbortSignal.any([aborter.signal, AbortSignal.timeout(POST_TIMEOUT)]),
      })
      frame = parseFrame(await response.text())
    }
    catch {
      // Network failure or timeout: a passing fault, answered like the server's `unavailable`.
    }
    if (closed) return
    if (!frame) frame = errorFrame('unavailable', 'The message could not be posted; retrying', cid)
    // Refusals without a cid (a lapsed session, an oversized body) are about this message too.
    if (frame.type === 'error' && !frame.cid) frame = { ...frame, cid }
    // The stored frame (message, edit or delete) a POST answers with is outside the room's order.
    events.frame(frame, frame.type !== 'error')
  }
  return {
    window: 1,
    write(message, cid, action) {
      if (opened && !closed) void post(message, cid, action)
    },
    command: () => false,
    close,
  }
}

/**
 * After a connect that failed before it opened: ask the route once, with a plain GET, why
 * (401 / 403 / 400 / 429, or 426 "upgrade required" when it would have accepted). The body is
 * not read. Undefined when the server cannot be reached.
 */
export async function probeRefusal(target: URL): Promise<number | undefined> {
  const url = new URL(target)
  if (url.protocol === 'ws:') url.protocol = 'http:'
  if (url.protocol === 'wss:') url.protocol = 'https:'
  const aborter = new AbortController()
  try {
    const response = await fetch(url, { signal: aborter.signal, headers: { accept: 'application/json' } })
    return response.status
  }
  catch {
    return undefined
  }
  finally {
    aborter.abort()
  }
}

/**
 * A page of older history over HTTP (`GET <sseRoute>?room=…&before=…&limit=…`): the `history`
 * frame, an `error` frame when refused, undefined when the server cannot be reached.
 */
export async function fetchHistory(target: URL): Promise<ChatServerFrame | undefined> {
  try {
    const response = await fetch(target, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(POST_TIMEOUT) })
    return parseFrame(await response.text())
  }
  catch {
    return undefined
  }
}

/** POST a command (e.g. `read`) to the SSE route: the frame it answers with, undefined when the server cannot be reached. */
export async function postCommand(target: URL, command: object): Promise<ChatServerFrame | undefined> {
  try {
    const response = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(command), signal: AbortSignal.timeout(POST_TIMEOUT) })
    return parseFrame(await response.text())
  }
  catch {
    return undefined
  }
}

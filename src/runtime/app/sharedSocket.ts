/**
 * One WebSocket per tab for every room and the rooms list (protocol version 2, docs/PROTOCOL.md
 * "Version 2"). Each room connection (and the rooms list) takes a `ChatLink` from here, as it
 * would from `openWebSocketLink`: opening it joins the room on the shared socket, closing it
 * leaves. A server that does not speak version 2 (its first frame is not `hello`) gets the
 * version 1 per-room sockets instead, and so does every later link to it from this tab.
 */
import type { ChatServerFrame, ChatSystemFrame } from '../shared/protocol'
import { PROTOCOL_V2, type ChatServerFrameV2 } from '../shared/protocolV2'
import type { OutgoingAction } from './outbox'
import { openWebSocketLink, type ChatLink, type ChatLinkEvents, type ChatLinkTargets } from './transport'

// As many unanswered messages per room as a version 1 socket allows.
const WS_WINDOW = 10
// A room switch leaves one room and joins another at once: the socket stays up this long with no room.
const LINGER = 1000

/** Where the shared sockets go: the route's URL without what chooses a room. */
const sockets = new Map<string, SharedSocket>()
/** Routes (origin + path) whose server answered without version 2: version 1 links from now on. */
const versionOneRoutes = new Set<string>()

/** A room's link (or the rooms list's, `room` undefined) on a shared socket. */
interface Subscriber {
  room: string | undefined
  since: number | undefined
  events: ChatLinkEvents
  /** `join` (or `rooms`) sent, with this ref. */
  ref: string | undefined
  opened: boolean
  /** Set when the server turned out to speak version 1: the link this one forwards to. */
  fallback: ChatLink | undefined
  targets: ChatLinkTargets
  /** The socket it is on (a rooms list moves to the tab's rooms' socket when they come). */
  socket: SharedSocket | undefined
}

/** Any frame a version 2 server sends, read loosely: `room` and `ref` where it has them. */
type Frame = (ChatServerFrame | ChatServerFrameV2) & { room?: string, ref?: string }

let refs = 0

function parse(data: unknown): Frame | undefined {
  if (typeof data !== 'string') return undefined
  try {
    const frame = JSON.parse(data)
    return frame && typeof frame === 'object' && typeof frame.type === 'string' ? frame : undefined
  }
  catch {
    return undefined
  }
}

/** The socket's key: the route with its identity parameters, without the room, cursor and list flag. */
function socketKeyOf(target: URL): string {
  const key = new URL(target)
  for (const name of ['room', 'since', 'rooms']) key.searchParams.delete(name)
  key.searchParams.sort()
  return key.href
}

const routeOf = (target: URL) => target.origin + target.pathname

/** One version 2 WebSocket and the rooms it follows. */
class SharedSocket {
  readonly ws: WebSocket
  /** Room → its subscriber; `''` is the rooms list. */
  readonly subscribers = new Map<string, Subscriber>()
  greeted = false
  /** A ping is on its way: its pong answers every room's heartbeat, so no second one is sent. */
  pinging = false
  linger: ReturnType<typeof setTimeout> | undefined

  constructor(readonly key: string, readonly url: URL) {
    this.ws = new WebSocket(url, PROTOCOL_V2)
    this.ws.onmessage = event => this.receive(parse(event.data))
    this.ws.onclose = () => this.dropped()
  }

  add(subscriber: Subscriber) {
    clearTimeout(this.linger)
    this.linger = undefined
    subscriber.socket = this
    this.subscribers.set(subscriber.room ?? '', subscriber)
    if (this.greeted) this.subscribe(subscriber)
  }

  remove(subscriber: Subscriber) {
    const slot = subscriber.room ?? ''
    if (this.subscribers.get(slot) !== subscriber) return
    this.subscribers.delete(slot)
    if (subscriber.room !== undefined && subscriber.ref) this.send({ type: 'leave', room: subscriber.room })
    if (this.subscribers.size) return
    this.linger = setTimeout(() => {
      if (this.subscribers.size) return
      this.close()
    }, LINGER)
  }

  send(command: object): boolean {
    if (this.ws.readyState !== 1) return false
    this.ws.send(JSON.stringify(command))
    return true
  }

  subscribe(subscriber: Subscriber) {
    subscriber.ref = `j${++refs}`
    if (subscriber.room === undefined) this.send({ type: 'rooms', ref: subscriber.ref })
    else this.send({ type: 'join', room: subscriber.room, ref: subscriber.ref, ...(subscriber.since === undefined ? {} : { since: subscriber.since }) })
  }

  receive(frame: Frame | undefined) {
    if (!frame) return
    if (!this.greeted) {
      // An older server greets with version 1's welcome: this route speaks version 1 only.
      if (frame.type !== 'hello') return this.fallBack()
      this.greeted = true
      for (const subscriber of this.subscribers.values()) this.subscribe(subscriber)
      return
    }
    if (frame.type === 'rooms' || frame.type === 'room') return this.deliver(this.subscribers.get(''), frame)
    if (frame.type === 'pong') this.pinging = false
    if (frame.type === 'pong' || (frame.type === 'error' && frame.room === undefined && frame.ref === undefined)) {
      for (const subscriber of this.subscribers.values()) this.deliver(subscriber, frame)
      return
    }
    const subscriber = frame.room === undefined ? this.subscribers.get('') : this.subscribers.get(frame.room)
    if (!subscriber) return
    if (frame.type === 'error' && subscriber.room === undefined && !subscriber.opened && frame.ref === subscriber.ref) {
      // The rooms list refused (a guest's): the list asks the route why, as after a refused upgrade.
      this.subscribers.delete('')
      subscriber.events.dropped(true)
      return
    }
    switch (frame.type) {
      case 'joined': {
        if (frame.ref !== subscriber.ref) return
        subscriber.opened = true
        subscriber.events.opened()
        // The room connection knows who it is from version 1's welcome.
        const welcome: ChatSystemFrame = { type: 'system', event: 'welcome', room: frame.room, user: 'server', message: `Welcome ${frame.me.name}!`, peer: frame.me }
        this.deliver(subscriber, welcome)
        return
      }
      case 'join_refused':
      case 'left':
        // A `left` answering our own `leave` is about a subscriber already gone (the room may be joined again since).
        if (frame.type === 'join_refused' ? frame.ref !== subscriber.ref : frame.reason === 'left') return
        this.subscribers.delete(frame.room)
        // Refused: the room connection asks the route why (version 1's probe), as after a refused upgrade.
        subscriber.events.dropped(frame.type === 'join_refused')
        return
      case 'caught_up':
      case 'ack':
      case 'hello':
        return
    }
    // Before its `joined`, a room's frames are the previous subscription's (left, not yet told).
    if (subscriber.room !== undefined && !subscriber.opened) return
    this.deliver(subscriber, frame)
  }

  deliver(subscriber: Subscriber | undefined, frame: ChatServerFrame) {
    if (!subscriber) return
    // The rooms list opens with its first list.
    if (subscriber.room === undefined && !subscriber.opened && frame.type === 'rooms') {
      subscriber.opened = true
      subscriber.events.opened()
    }
    subscriber.events.frame(frame)
  }

  /** Version 1 only here: every link opens its own version 1 socket. */
  fallBack() {
    versionOneRoutes.add(routeOf(this.url))
    this.close()
    for (const subscriber of this.subscribers.values()) subscriber.fallback = openWebSocketLink(subscriber.targets, subscriber.events)
    this.subscribers.clear()
  }

  dropped() {
    if (sockets.get(this.key) === this) sockets.delete(this.key)
    const subscribers = [...this.subscribers.values()]
    this.subscribers.clear()
    for (const subscriber of subscribers) subscriber.events.dropped(!subscriber.opened)
  }

  close() {
    clearTimeout(this.linger)
    if (sockets.get(this.key) === this) sockets.delete(this.key)
    this.ws.onmessage = this.ws.onclose = null
    if (this.ws.readyState === 0 || this.ws.readyState === 1) this.ws.close()
  }
}

/** The command (WebSocket) that stores a message, an edit or a delete. */
function sendCommand(message: string, cid: string, action?: OutgoingAction) {
  return action ? { ...action, message, cid } : { type: 'message', message, cid }
}

/** Sockets of the same route and guest key as `target` (any name). */
function* tabSocketsOf(target: URL): Generator<SharedSocket> {
  const guest = target.searchParams.get('guest')
  for (const socket of sockets.values()) {
    if (routeOf(socket.url) === routeOf(target) && socket.url.searchParams.get('guest') === guest) yield socket
  }
}

/**
 * The socket a link to `target` shares. A rooms list (it names nobody) takes any socket of its
 * route and guest key; a room opened after a list that is alone on its socket takes the list
 * onto its own (named) socket, so the tab keeps one.
 */
function socketFor(target: URL, list: boolean): SharedSocket {
  const key = socketKeyOf(target)
  const known = sockets.get(key)
  if (known) return known
  if (list) {
    for (const socket of tabSocketsOf(target)) return socket
  }
  const socket = new SharedSocket(key, new URL(key))
  sockets.set(key, socket)
  for (const alone of tabSocketsOf(target)) {
    const listed = alone.subscribers.get('')
    if (alone === socket || !listed || alone.subscribers.size > 1) continue
    alone.subscribers.clear()
    alone.close()
    socket.add(listed)
  }
  return socket
}

/**
 * A link to one room (the URL's `room` and `since`), or to the rooms list (`rooms`), on the tab's
 * shared version 2 socket; a version 1 socket of its own where the server speaks version 1 only.
 */
export function openSharedWebSocketLink(targets: ChatLinkTargets, events: ChatLinkEvents): ChatLink {
  const target = targets.connect()
  if (versionOneRoutes.has(routeOf(target))) return openWebSocketLink(targets, events)
  const list = target.searchParams.has('rooms')
  const since = target.searchParams.get('since')
  const subscriber: Subscriber = {
    room: list ? undefined : target.searchParams.get('room') ?? 'chat',
    since: since === null ? undefined : Number(since),
    events,
    ref: undefined,
    opened: false,
    fallback: undefined,
    targets,
    socket: undefined,
  }
  let closed = false
  const take = () => {
    if (!closed) socketFor(target, list).add(subscriber)
  }
  // A rooms list names nobody: it waits a task for the tab's rooms (mounted with it) to choose the socket.
  if (list && tabSocketsOf(target).next().done) setTimeout(take, 0)
  else take()
  const send = (command: object) => subscriber.socket?.send(command) ?? false
  return {
    window: WS_WINDOW,
    write(message, cid, action) {
      if (subscriber.fallback) return subscriber.fallback.write(message, cid, action)
      if (subscriber.opened) send({ ...sendCommand(message, cid, action), room: subscriber.room })
    },
    command(text) {
      if (subscriber.fallback) return subscriber.fallback.command(text)
      if (!subscriber.opened) return false
      const command = text === 'ping' ? { type: 'ping' } : parse(text) as Record<string, unknown> | undefined
      if (!command) return false
      const socket = subscriber.socket
      if (!socket) return false
      if (command.type === 'ping') {
        // Every room's heartbeat asks; the pong of the ping on its way answers them all.
        if (socket.pinging) return true
        socket.pinging = socket.send(command)
        return socket.pinging
      }
      return socket.send(subscriber.room === undefined ? command : { ...command, room: subscriber.room })
    },
    close() {
      closed = true
      if (subscriber.fallback) return subscriber.fallback.close()
      subscriber.socket?.remove(subscriber)
    },
  }
}

/** Close every shared socket at once, telling no link (tests start each case from a fresh tab). */
export function forgetSharedSockets() {
  for (const socket of [...sockets.values()]) socket.close()
  versionOneRoutes.clear()
}

/** What `askSharedSocket` gives: the answer frame, and whether the tab follows the answer's room on that socket. */
export interface SharedSocketAnswer {
  frame: Frame
  followed: boolean
}

/**
 * Send one version 2 command (with its `ref`) on the tab's shared socket to `target`'s route (the
 * rooms list's URL; a socket opens if the tab has none), and resolve with the first frame that
 * carries the ref (not `caught_up`); `'v1'` where the route speaks version 1 only, `undefined` when
 * the socket closed or no answer came within `timeout` ms. A room the command joined (`create`,
 * `dm`) is left at once unless the tab follows it: its room links join it themselves.
 */
export function askSharedSocket(target: URL, command: { ref: string }, timeout: number): Promise<SharedSocketAnswer | 'v1' | undefined> {
  if (versionOneRoutes.has(routeOf(target))) return Promise.resolve('v1')
  const socket = socketFor(target, true)
  return new Promise((resolve) => {
    let sent = false
    const trySend = () => {
      if (!sent && socket.greeted) sent = socket.send(command)
    }
    const finish = (answer: SharedSocketAnswer | 'v1' | undefined) => {
      clearTimeout(timer)
      socket.ws.removeEventListener('message', onMessage)
      socket.ws.removeEventListener('open', trySend)
      socket.ws.removeEventListener('close', onClose)
      // Opened for this command alone: it goes as a socket its last room left does.
      if (!socket.subscribers.size && !socket.linger) socket.linger = setTimeout(() => socket.subscribers.size || socket.close(), LINGER)
      resolve(answer)
    }
    // The socket's own handler runs first (registered first): a `hello` has greeted it by now.
    const onMessage = (event: MessageEvent) => {
      if (versionOneRoutes.has(routeOf(target))) return finish('v1')
      trySend()
      const frame = parse(event.data)
      if (!frame || frame.ref !== command.ref || frame.type === 'caught_up') return
      const followed = frame.room !== undefined && socket.subscribers.has(frame.room)
      if (frame.type === 'joined' && !followed) socket.send({ type: 'leave', room: frame.room })
      finish({ frame, followed })
    }
    const onClose = () => finish(versionOneRoutes.has(routeOf(target)) ? 'v1' : undefined)
    const timer = setTimeout(onClose, timeout)
    socket.ws.addEventListener('message', onMessage)
    socket.ws.addEventListener('open', trySend)
    socket.ws.addEventListener('close', onClose)
    trySend()
  })
}

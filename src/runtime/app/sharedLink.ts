/**
 * One version 2 connection per tab for every room, direct room and the rooms list (docs/PROTOCOL.md
 * "Version 2"), whatever carries it: a WebSocket (./sharedSocket.ts) or an event stream with
 * commands as POSTs (./sharedStream.ts). Each room connection (and the rooms list) takes a
 * `ChatLink` from here, as it would from a version 1 link: opening it joins the room on the shared
 * connection (a direct room with `dm`, which names its room in the answer), closing it leaves. A
 * server that does not speak version 2 (its first frame is not `hello`) gets the carrier's
 * version 1 per-room links instead, and so does every later link to it from this tab.
 */
import type { ChatServerFrame, ChatSystemFrame } from '../shared/protocol'
import type { ChatJoinRefusalCode, ChatSeenFrame, ChatServerFrameV2 } from '../shared/protocolV2'
import { parseFrame, sendCommand, type ChatLink, type ChatLinkEvents, type ChatLinkTargets } from './transport'

// A room switch leaves one room and joins another at once: the connection stays up this long with no room.
const LINGER = 1000

/** Any frame a version 2 server sends, read loosely: `room` and `ref` where it has them. */
export type SharedFrame = (ChatServerFrame | ChatServerFrameV2) & { room?: string, ref?: string }

/** A version 2 command as the shared connection sends it. */
export type SharedCommand = { type: string, room?: string, ref?: string, cid?: string } & Record<string, unknown>

/** What a carrier tells the shared connection on it. */
export interface CarrierEvents {
  frame: (frame: SharedFrame) => void
  /** The carrier is gone (closed by the server or the network). */
  dropped: () => void
}

/** What carries one version 2 connection: commands out, frames in. */
export interface SharedCarrier {
  /** Send a command; false when it cannot go now. */
  send: (command: SharedCommand) => boolean
  /** Close for good; no event follows. */
  close: () => void
}

/** A kind of carrier: how one opens, and what a link does where the server has no version 2. */
export interface CarrierKind {
  /** Open a carrier to the connection's URL (its route and identity parameters). */
  open: (url: URL, events: CarrierEvents) => SharedCarrier
  /** Messages that may be unanswered at once per room. */
  window: number
  /** A version 1 link of its own for one room (or the rooms list). */
  openVersionOne: (targets: ChatLinkTargets, events: ChatLinkEvents) => ChatLink
}

/** A room's link (or the rooms list's: `room` and `dm` undefined) on a shared connection. */
interface Subscriber {
  /** A direct room's is undefined until the server names it (`joined`). */
  room: string | undefined
  /** A direct room's other person (`?dm=`). */
  dm: string | undefined
  since: number | undefined
  events: ChatLinkEvents
  /** `join` (or `dm`, or `rooms`) sent, with this ref. */
  ref: string | undefined
  opened: boolean
  /** Set when the server turned out to speak version 1: the link this one forwards to. */
  fallback: ChatLink | undefined
  targets: ChatLinkTargets
  /** The connection it is on (a rooms list moves to the tab's rooms' connection when they come). */
  connection: SharedConnection | undefined
}

/** The shared connections by key: the route's URL without what chooses a room. */
const connections = new Map<string, SharedConnection>()
/** Routes (origin + path) whose server answered without version 2: version 1 links from now on. */
const versionOneRoutes = new Set<string>()

let refs = 0

/** The connection's key: the route with its identity parameters, without the room (or `dm`), cursor and list flag. */
function connectionKeyOf(target: URL): string {
  const key = new URL(target)
  for (const name of ['room', 'since', 'rooms', 'dm']) key.searchParams.delete(name)
  key.searchParams.sort()
  return key.href
}

const routeOf = (target: URL) => target.origin + target.pathname

/** Direct rooms the tab was told, by route, own user id and the other person: a resume joins the room from its cursor. */
const directRooms = new Map<string, string>()

/** A direct room's slot on its connection until the server names the room (`|` is in no room name). */
const directSlot = (user: string) => `dm|${user}`
/** Where a subscriber is kept on its connection: its room, a direct room's slot, or `''` (the rooms list). */
const slotOf = (subscriber: Subscriber) => subscriber.room ?? (subscriber.dm === undefined ? '' : directSlot(subscriber.dm))

/** What `askShared` gives: the frame answering the command, and whether the tab follows the answer's room on that connection. */
export interface SharedAnswer {
  frame: SharedFrame
  followed: boolean
}

/** A command waiting for its answer (by `ref`). */
interface Waiter {
  answered: (frame: SharedFrame) => void
  /** The connection is gone; `versionOne`: the route speaks version 1 only. */
  gone: (versionOne: boolean) => void
}

/** One version 2 connection and the rooms it follows. */
class SharedConnection {
  readonly carrier: SharedCarrier
  /** Slot (`slotOf`) → its subscriber. */
  readonly subscribers = new Map<string, Subscriber>()
  /** `dm` commands whose link closed before the answer, by ref (→ the other person): the room they join is left at once. */
  readonly unfollowed = new Map<string, string>()
  /** The user id the `hello` named (a direct room's id is made of it). */
  me: string | undefined
  /** Commands sent on their own (`askShared`), by ref; `unsent`: those waiting for the `hello`. */
  readonly waiters = new Map<string, Waiter>()
  readonly unsent: SharedCommand[] = []
  greeted = false
  /** A ping is on its way: its pong answers every room's heartbeat, so no second one is sent. */
  pinging = false
  linger: ReturnType<typeof setTimeout> | undefined

  constructor(readonly key: string, readonly url: URL, readonly kind: CarrierKind) {
    this.carrier = kind.open(url, { frame: frame => this.receive(frame), dropped: () => this.dropped() })
  }

  add(subscriber: Subscriber) {
    clearTimeout(this.linger)
    this.linger = undefined
    subscriber.connection = this
    const slot = slotOf(subscriber)
    // The room is the tab's on this connection already (`room: 'dm:…'` beside its `dm`): the server joins a room once per connection.
    if (slot !== '' && this.subscribers.has(slot)) return this.takeVersionOne(subscriber)
    this.subscribers.set(slot, subscriber)
    if (this.greeted) this.subscribe(subscriber)
  }

  remove(subscriber: Subscriber) {
    const slot = slotOf(subscriber)
    if (this.subscribers.get(slot) !== subscriber) return
    this.subscribers.delete(slot)
    if (subscriber.room !== undefined && subscriber.ref) this.send({ type: 'leave', room: subscriber.room })
    else if (subscriber.dm !== undefined && subscriber.ref) this.unfollowed.set(subscriber.ref, subscriber.dm)
    if (this.subscribers.size) return
    this.linger = setTimeout(() => {
      if (this.subscribers.size) return
      this.close()
    }, LINGER)
  }

  send(command: SharedCommand): boolean {
    return this.carrier.send(command)
  }

  subscribe(subscriber: Subscriber) {
    if (subscriber.room === undefined && subscriber.dm !== undefined) {
      // A resume: the room is known, and a `join` carries the cursor (each message once, as in any room).
      const known = subscriber.since === undefined ? undefined : directRooms.get(this.directKey(subscriber.dm))
      if (known === undefined) return this.askDirect(subscriber, subscriber.dm)
      if (!this.settle(subscriber, known, false)) return
    }
    subscriber.ref = `j${++refs}`
    if (subscriber.room === undefined) this.send({ type: 'rooms', ref: subscriber.ref })
    else this.send({ type: 'join', room: subscriber.room, ref: subscriber.ref, ...(subscriber.since === undefined ? {} : { since: subscriber.since }) })
  }

  /** `dm`, or the answer of one whose link closed before it came (the server is joining that room already). */
  askDirect(subscriber: Subscriber, user: string) {
    const adopted = [...this.unfollowed].find(([, other]) => other === user)?.[0]
    if (adopted !== undefined) {
      this.unfollowed.delete(adopted)
      subscriber.ref = adopted
      return
    }
    subscriber.ref = `j${++refs}`
    this.send({ type: 'dm', user, ref: subscriber.ref })
  }

  directKey(user: string) {
    return `${routeOf(this.url)}\n${this.me ?? ''}\n${user}`
  }

  /**
   * A direct room's subscriber knows its room: it takes the room's slot. Where another link of the
   * tab holds it, the one the server did not join (`granted`: this one was) takes a version 1 link.
   */
  settle(subscriber: Subscriber, room: string, granted: boolean): boolean {
    if (this.subscribers.get(slotOf(subscriber)) === subscriber) this.subscribers.delete(slotOf(subscriber))
    subscriber.room = room
    const holder = this.subscribers.get(room)
    if (holder && !granted) {
      this.takeVersionOne(subscriber)
      return false
    }
    // Its join waits for a refusal (the server joined this one first); no frame of the room is its.
    if (holder) this.takeVersionOne(holder)
    this.subscribers.set(room, subscriber)
    return true
  }

  /** The tab holds this room on the connection already: this link goes on a version 1 link of its own. */
  takeVersionOne(subscriber: Subscriber) {
    if (this.subscribers.get(slotOf(subscriber)) === subscriber) this.subscribers.delete(slotOf(subscriber))
    subscriber.connection = undefined
    subscriber.ref = undefined
    subscriber.fallback = this.kind.openVersionOne(subscriber.targets, subscriber.events)
    this.lingerIfIdle()
  }

  /**
   * Is a join refused `bad_request` (already in the room) about another link of the tab: one
   * holding the room, or a `dm` not answered yet (its room may be this one)?
   */
  joinedElsewhere(subscriber: Subscriber, room: string): boolean {
    if (this.unfollowed.size) return true
    for (const [slot, other] of this.subscribers) {
      if (other !== subscriber && (slot === room || (other.dm !== undefined && other.room === undefined))) return true
    }
    return false
  }

  /** The answer to a direct room's `dm` (matched by ref): `joined` names its room; a refusal ends the link, as a `join_refused` does. */
  answerDirect(subscriber: Subscriber, frame: SharedFrame): boolean {
    if (frame.type === 'joined') {
      if (subscriber.dm !== undefined) directRooms.set(this.directKey(subscriber.dm), frame.room)
      return this.settle(subscriber, frame.room, true)
    }
    this.subscribers.delete(slotOf(subscriber))
    const refusal = frame.type === 'join_refused' || frame.type === 'error' ? frame : undefined
    if (frame.type === 'join_refused' && frame.code === 'bad_request' && this.joinedElsewhere(subscriber, frame.room)) this.takeVersionOne(subscriber)
    else subscriber.events.dropped(true, refusal?.code as ChatJoinRefusalCode | undefined, refusal?.retryAfter)
    return false
  }

  receive(frame: SharedFrame) {
    if (!this.greeted) {
      // An older server greets with version 1's welcome: this route speaks version 1 only.
      if (frame.type !== 'hello') return this.fallBack()
      this.greeted = true
      this.me = frame.me?.id
      // A copy: a direct room's subscriber moves to its room's slot as it subscribes.
      for (const subscriber of [...this.subscribers.values()]) this.subscribe(subscriber)
      for (const command of this.unsent.splice(0)) this.send(command)
      return
    }
    const waiter = frame.ref === undefined || frame.type === 'caught_up' ? undefined : this.waiters.get(frame.ref)
    if (waiter) return waiter.answered(frame)
    if (frame.ref !== undefined && (frame.type === 'joined' || frame.type === 'join_refused' || frame.type === 'error')) {
      const user = this.unfollowed.get(frame.ref)
      if (user !== undefined) {
        this.unfollowed.delete(frame.ref)
        // Its link closed before the answer: out of the room again.
        if (frame.type === 'joined') this.send({ type: 'leave', room: frame.room })
        return
      }
      const direct = this.directAwaiting(frame.ref)
      // Joined: on as for a `join`, now that the subscriber holds its room.
      if (direct && !this.answerDirect(direct, frame)) return
    }
    if (frame.type === 'rooms' || frame.type === 'room') {
      const list = this.subscribers.get('')
      // A first list answering the request of a list link since closed: this one's comes with its own ref.
      if (frame.type === 'rooms' && frame.ref !== undefined && frame.ref !== list?.ref) return
      return this.deliver(list, frame)
    }
    if (frame.type === 'pong') this.pinging = false
    if (frame.type === 'pong' || (frame.type === 'error' && frame.room === undefined && frame.ref === undefined)) {
      for (const subscriber of this.subscribers.values()) this.deliver(subscriber, frame)
      return
    }
    const subscriber = frame.room === undefined ? this.subscribers.get('') : this.subscribers.get(frame.room)
    if (!subscriber) return
    if (frame.type === 'error' && subscriber.room === undefined && !subscriber.opened && frame.ref === subscriber.ref) {
      // The rooms list refused (a guest's): the list asks the route why, as after a refused connect.
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
        // The person's membership of the room, as version 1's welcome carries it.
        if (frame.role) welcome.role = frame.role
        if (frame.mutedUntil !== undefined) welcome.mutedUntil = frame.mutedUntil
        this.deliver(subscriber, welcome)
        return
      }
      case 'join_refused':
      case 'left':
        // A `left` answering our own `leave` is about a subscriber already gone (the room may be joined again since).
        if (frame.type === 'join_refused' ? frame.ref !== subscriber.ref : frame.reason === 'left') return
        this.subscribers.delete(frame.room)
        // Already in the room by the tab's other link to it (a `dm` of it): this one takes a version 1 link.
        if (frame.type === 'join_refused' && frame.code === 'bad_request' && this.joinedElsewhere(subscriber, frame.room)) this.takeVersionOne(subscriber)
        // Refused: the room connection learns why from the code, or asks the route (version 1's probe).
        else if (frame.type === 'join_refused') subscriber.events.dropped(true, frame.code, frame.retryAfter)
        else subscriber.events.dropped(false)
        return
      case 'caught_up':
      case 'ack':
      case 'hello':
      case 'search_results':
      case 'members':
        // (A search or members list answered after its asker gave up, a `rooms` of a closed list link `superseded`: nobody's frame.)
        return
    }
    // Before its `joined`, a room's frames are the previous subscription's (left, not yet told).
    if (subscriber.room !== undefined && !subscriber.opened) return
    this.deliver(subscriber, frame)
  }

  /** The direct room's subscriber whose `dm` has this ref, not answered yet. */
  directAwaiting(ref: string): Subscriber | undefined {
    for (const subscriber of this.subscribers.values()) {
      if (subscriber.dm !== undefined && subscriber.room === undefined && subscriber.ref === ref) return subscriber
    }
    return undefined
  }

  deliver(subscriber: Subscriber | undefined, frame: ChatServerFrame | ChatSeenFrame) {
    if (!subscriber) return
    // The rooms list opens with its first list.
    if (subscriber.room === undefined && !subscriber.opened && frame.type === 'rooms') {
      subscriber.opened = true
      subscriber.events.opened()
    }
    subscriber.events.frame(frame)
  }

  /** Version 1 only here: every link opens its own version 1 link. */
  fallBack() {
    versionOneRoutes.add(routeOf(this.url))
    this.endWaiters(true)
    this.close()
    for (const subscriber of this.subscribers.values()) subscriber.fallback = this.kind.openVersionOne(subscriber.targets, subscriber.events)
    this.subscribers.clear()
  }

  dropped() {
    if (connections.get(this.key) === this) connections.delete(this.key)
    clearTimeout(this.linger)
    this.endWaiters(false)
    const subscribers = [...this.subscribers.values()]
    this.subscribers.clear()
    for (const subscriber of subscribers) subscriber.events.dropped(!subscriber.opened)
  }

  close() {
    clearTimeout(this.linger)
    if (connections.get(this.key) === this) connections.delete(this.key)
    this.endWaiters(false)
    this.carrier.close()
  }

  endWaiters(versionOne: boolean) {
    const waiters = [...this.waiters.values()]
    this.waiters.clear()
    for (const waiter of waiters) waiter.gone(versionOne)
  }

  /** Nothing follows it any more: it goes after the linger, as when its last room left. */
  lingerIfIdle() {
    if (this.subscribers.size || this.waiters.size || this.linger || connections.get(this.key) !== this) return
    this.linger = setTimeout(() => {
      if (!this.subscribers.size && !this.waiters.size) this.close()
    }, LINGER)
  }
}

/** Connections of the same kind, route and guest key as `target` (any name). */
function* tabConnectionsOf(kind: CarrierKind, target: URL): Generator<SharedConnection> {
  const guest = target.searchParams.get('guest')
  for (const connection of connections.values()) {
    if (connection.kind === kind && routeOf(connection.url) === routeOf(target) && connection.url.searchParams.get('guest') === guest) yield connection
  }
}

/**
 * The connection a link to `target` shares. A rooms list (it names nobody) takes any connection of
 * its route and guest key; a room opened after a list that is alone on its connection takes the
 * list onto its own (named) connection, so the tab keeps one.
 */
function connectionFor(kind: CarrierKind, target: URL, list: boolean): SharedConnection {
  const key = connectionKeyOf(target)
  const known = connections.get(key)
  if (known) return known
  if (list) {
    for (const connection of tabConnectionsOf(kind, target)) return connection
  }
  const connection = new SharedConnection(key, new URL(key), kind)
  connections.set(key, connection)
  for (const alone of tabConnectionsOf(kind, target)) {
    const listed = alone.subscribers.get('')
    if (alone === connection || !listed || alone.subscribers.size > 1) continue
    alone.subscribers.clear()
    alone.close()
    connection.add(listed)
  }
  return connection
}

/**
 * A link to one room (the URL's `room` and `since`), a direct room (`dm`), or the rooms list
 * (`rooms`), on the tab's shared version 2 connection of this kind; a version 1 link of its own
 * where the server speaks version 1 only, or where the tab holds the room there already.
 */
export function openSharedLink(kind: CarrierKind, targets: ChatLinkTargets, events: ChatLinkEvents): ChatLink {
  const target = targets.connect()
  if (versionOneRoutes.has(routeOf(target))) return kind.openVersionOne(targets, events)
  const list = target.searchParams.has('rooms')
  const since = target.searchParams.get('since')
  const dm = list ? null : target.searchParams.get('dm')
  const subscriber: Subscriber = {
    room: list || dm !== null ? undefined : target.searchParams.get('room') ?? 'chat',
    dm: dm ?? undefined,
    since: since === null ? undefined : Number(since),
    events,
    ref: undefined,
    opened: false,
    fallback: undefined,
    targets,
    connection: undefined,
  }
  let closed = false
  const take = () => {
    if (!closed) connectionFor(kind, target, list).add(subscriber)
  }
  // A rooms list names nobody: it waits a task for the tab's rooms (mounted with it) to choose the connection.
  if (list && tabConnectionsOf(kind, target).next().done) setTimeout(take, 0)
  else take()
  const send = (command: SharedCommand) => subscriber.connection?.send(command) ?? false
  return {
    window: kind.window,
    write(message, cid, action) {
      if (subscriber.fallback) return subscriber.fallback.write(message, cid, action)
      if (subscriber.opened) send({ ...sendCommand(message, cid, action), room: subscriber.room })
    },
    command(text) {
      if (subscriber.fallback) return subscriber.fallback.command(text)
      if (!subscriber.opened) return false
      const command = text === 'ping' ? { type: 'ping' } : parseFrame(text) as SharedCommand | undefined
      if (!command) return false
      const connection = subscriber.connection
      if (!connection) return false
      if (command.type === 'ping') {
        // Every room's heartbeat asks; the pong of the ping on its way answers them all.
        if (connection.pinging) return true
        connection.pinging = connection.send(command)
        return connection.pinging
      }
      return connection.send(subscriber.room === undefined ? command : { ...command, room: subscriber.room })
    },
    close() {
      closed = true
      if (subscriber.fallback) return subscriber.fallback.close()
      subscriber.connection?.remove(subscriber)
    },
  }
}

/**
 * Send one version 2 command (with its `ref`) on the tab's connection of this kind to `target`'s
 * route (the rooms list's URL: a connection opens if the tab has none), and resolve with the frame
 * answering it (not `caught_up`); `'v1'` where the route speaks version 1 only, undefined when the
 * connection went or no answer came within `timeout` ms. A room the command joined (`create`,
 * `dm`) is left at once unless the tab follows it: its room links join it themselves.
 */
export function askShared(kind: CarrierKind, target: URL, command: SharedCommand & { ref: string }, timeout: number): Promise<SharedAnswer | 'v1' | undefined> {
  if (versionOneRoutes.has(routeOf(target))) return Promise.resolve('v1')
  const connection = connectionFor(kind, target, true)
  clearTimeout(connection.linger)
  connection.linger = undefined
  return new Promise((resolve) => {
    const finish = (answer: SharedAnswer | 'v1' | undefined) => {
      clearTimeout(timer)
      connection.waiters.delete(command.ref)
      connection.lingerIfIdle()
      resolve(answer)
    }
    const timer = setTimeout(finish, timeout, undefined)
    connection.waiters.set(command.ref, {
      answered(frame) {
        // A `dm` refused as already joined while the tab's own `dm` of that person waits for its answer: the tab follows it.
        const followed = frame.room !== undefined && (connection.subscribers.has(frame.room) || (frame.type === 'join_refused' && command.type === 'dm' && connection.subscribers.has(directSlot(String(command.user)))))
        if (frame.type === 'joined' && !followed) connection.send({ type: 'leave', room: frame.room })
        finish({ frame, followed })
      },
      gone: versionOne => finish(versionOne ? 'v1' : undefined),
    })
    if (connection.greeted) connection.send(command)
    else connection.unsent.push(command)
  })
}

/** Close every shared connection at once, telling no link (tests start each case from a fresh tab). */
export function forgetSharedLinks() {
  for (const connection of [...connections.values()]) connection.close()
  versionOneRoutes.clear()
  directRooms.clear()
}

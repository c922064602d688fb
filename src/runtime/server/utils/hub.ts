import type { Hookable } from 'hookable'
import type { ConsolaInstance } from 'consola'
import { errorFrame, systemFrame, systemFrameOf, type ChatHistoryFrame, type ChatStoredFrame, type ChatTypingFrame, type ChatUser } from '../../shared/protocol'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import type { ChatBus, BusEvent } from './bus'
import { parseUsers, createRoomPresence, type RoomPresence } from './presence'
import { createPresenceQueries, usersOf } from './presenceQueries'
import { createRoomDelivery, messageFrame, RoomFrame, type Member, type RoomDelivery } from './roomDelivery'
import type { ReadPosition, RoomLog } from './roomLog'
import { createListAdmission } from './listAdmission'
import { createReadState, type RoomsWatcher } from './readState'
import { createSendLimiter, createSendPipeline, type AllowSend, type SendInput } from './sendPipeline'
import { createChatLimits, limitRefusalFrame, limitSubjectOf, type LimitRefusal, type LimitSubject } from './chatLimits'

export { RoomFrame, deliverToMember, messageFrame, type Member } from './roomDelivery'
export type { SendInput, SendResult } from './sendPipeline'

/** A room as this instance sees it: its ordered delivery to local members, and its presence. */
interface Room {
  name: string
  delivery: RoomDelivery
  presence: RoomPresence
  /** Joins and leaves not told yet, told to the room at once (see `batchOf`). */
  batch?: PresenceBatch
  /** When the room was last told a batch (`performance.now()`). */
  toldAt: number
  /** Until the other instances answered who is here (a room new to this instance): its first batch waits. */
  heard?: Promise<void>
}

/**
 * The joins and leaves of one event-loop turn in a room: a storm of newcomers costs each member
 * one `join` frame and one `presence_diff` per turn, not one per newcomer.
 */
interface PresenceBatch {
  /** Connections waiting for their full list (no diff reaches them before it), with their replay cursors. */
  newcomers: Map<Member, Newcomer>
  /** Users whose first connection here arrived (by id), and whose last one went. */
  joined: Map<string, ChatUser>
  left: Map<string, ChatUser>
  /** Settles once the batch was told (newcomers then get their replay). */
  told: Promise<void>
  tell: () => void
}

/** A connection of a batch, from its join until its replay is sent. */
interface Newcomer {
  since: number | undefined
  /** Joining makes the signed-in user's read position (see `ChatAdmission.createsReadPosition`). */
  createsPosition: boolean
  /** Set when the batch is told: settles once its replay (and what arrived meanwhile) was written. */
  replayed?: Promise<void>
}

export interface ChatHubOptions {
  config: ChatRuntimeConfig
  store: RoomLog
  bus: ChatBus
  hooks: Hookable<ChatRuntimeHooks>
  logger: ConsolaInstance
  /** The rate limit of the send pipeline; by default a token bucket per person and one per client address. */
  allowSend?: AllowSend
}

const TYPING_THROTTLE = 1000
/** Room names known to have messages (no new-room check for them): a bound, so a flood of names cannot grow it. */
const MAX_KNOWN_ROOMS = 10_000
/** A big room is told of joins and leaves at most once per this many ms: a storm costs each member a few frames, not one per turn. */
const PRESENCE_WINDOW = 50
/** Members from which a room is big: telling it costs a frame per member; a small room is told at the end of every turn. */
const PRESENCE_WINDOW_FROM = 10
const RECOVERY_RECHECK = 1000
/** Longest wait for the other instances to say who is in a room new here (first presence list, name check, `presence()`). */
const PRESENCE_QUERY_WAIT = 500

/**
 * The chat hub: the room index of this instance, wiring ordered delivery, presence, the send
 * pipeline and the bridge to other instances. Transports (WebSocket, SSE, POST) only parse
 * requests and call it.
 */
export function createChatHub({ config, store, bus, hooks, logger, allowSend }: ChatHubOptions) {
  const rooms = new Map<string, Room>()
  // Newcomers' replays from memory, unless retention by age may delete what memory still holds.
  const { max, maxAge } = config.history
  const recent = maxAge > 0 || (max > 0 && max < config.replay) ? 0 : config.replay
  const limits = createChatLimits(config)
  const limiter = allowSend ? undefined : createSendLimiter(config, limits)
  /** Rooms seen with messages, least recently added first. */
  const roomsWithMessages = new Set<string>()
  /** Rooms with messages stored while the bus was down: the others must be told to catch up. */
  const unpublished = new Set<string>()
  const presenceQueries = createPresenceQueries({ bus, wait: PRESENCE_QUERY_WAIT })
  let closed = false
  const listAdmission = createListAdmission({ hooks, logger })
  const readState = createReadState({
    store,
    bus,
    logger,
    membersOf: name => rooms.get(name)?.delivery.members,
    maxReadPositions: config.maxReadPositions,
    // A list without its request (none in practice) shows nothing it cannot ask about.
    admitListed: (watcher, room) => watcher.request ? listAdmission.admitted(watcher.request, watcher.user, room) : false,
    allowNewPosition(member) {
      const refused = limits.take('rooms', limitSubjectOf({ sender: member.sender, ip: member.ip, user: member.user }))
      return refused && limitRefusalFrame(refused)
    },
    allowStoredRead(connection, user) {
      const refused = limits.take('reads', limitSubjectOf({ sender: user.id, ip: (connection as Partial<Member>).ip, user }))
      return refused && { status: 429, error: limitRefusalFrame(refused) }
    },
  })

  function rememberRoomWithMessages(name: string) {
    if (roomsWithMessages.has(name)) return
    if (roomsWithMessages.size >= MAX_KNOWN_ROOMS) roomsWithMessages.delete(roomsWithMessages.values().next().value!)
    roomsWithMessages.add(name)
  }

  /** Per unknown room, the last new-room check asked: checks of one room run in arrival order. */
  const newRoomChecks = new Map<string, Promise<LimitRefusal | undefined>>()

  /**
   * A message to a room with no messages makes a new room: limited per person and address
   * (docs/PROTOCOL.md, revision 6). Checks of one room are chained, so its first messages reach
   * the store in the order they arrived and only the first takes a token.
   */
  function newRoomRefusal(input: SendInput): Promise<LimitRefusal | undefined> | undefined {
    if (roomsWithMessages.has(input.room)) return undefined
    const check = (newRoomChecks.get(input.room) ?? Promise.resolve(undefined)).then(() => checkNewRoom(input))
    newRoomChecks.set(input.room, check)
    void check.finally(() => {
      if (newRoomChecks.get(input.room) === check) newRoomChecks.delete(input.room)
    })
    return check
  }

  async function checkNewRoom(input: SendInput): Promise<LimitRefusal | undefined> {
    if (roomsWithMessages.has(input.room)) return undefined
    let last: number
    try {
      last = await store.lastId(input.room)
    }
    catch {
      // The append that follows meets the same store and answers `unavailable` itself.
      return undefined
    }
    // Another message made the room meanwhile (its first is on its way): not new.
    if (last > 0 || roomsWithMessages.has(input.room)) {
      rememberRoomWithMessages(input.room)
      return undefined
    }
    const refused = limits.take('rooms', limitSubjectOf(input))
    // Its first message is on its way: the ones behind it make no new room (one token per room, not per message).
    if (!refused) rememberRoomWithMessages(input.room)
    return refused
  }

  function roomOf(name: string): Room {
    const known = rooms.get(name)
    if (known) return known
    const room: Room = { name, delivery: createRoomDelivery({ room: name, store, logger, recent }), presence: createRoomPresence(name), toldAt: -Infinity }
    rooms.set(name, room)
    // A newcomer's first list is the whole room: what the other instances have (asked for a name check just before, or now).
    const query = presenceQueries.ask(name)
    if (query) {
      for (const [origin, users] of query.answers) room.presence.heardFrom(origin, users, Date.now() + 3 * config.presenceInterval)
      if (!query.settled) {
        room.heard = query.done.then(() => {
          room.heard = undefined
        })
      }
    }
    return room
  }

  /** Tell the room who joined and left, if anyone did; newcomers waiting for their full list are skipped. */
  function broadcastPresenceDiff(room: Room) {
    const text = room.presence.diffFrame()
    if (text !== undefined) room.delivery.broadcast(new RoomFrame(text), room.batch?.newcomers)
  }

  function announcePresence(name: string, room: Room) {
    // One instance: nobody to tell (and 500 rooms' lists serialised every few seconds for nothing).
    if (bus.alone) return
    bus.publish({ kind: 'presence', room: name, id: 0, frame: JSON.stringify(room.presence.localUsers()) })
  }

  /** Rooms with a batch to tell at the end of this turn. */
  let batched: Room[] = []

  /**
   * The room's batch of joins and leaves: told after this turn's I/O callbacks (all upgrades read
   * in one poll); in a big room told less than `PRESENCE_WINDOW` ago (a storm), once that
   * window has passed.
   */
  function batchOf(room: Room): PresenceBatch {
    if (room.batch) return room.batch
    let tell!: () => void
    const told = new Promise<void>(resolve => tell = resolve)
    room.batch = { newcomers: new Map(), joined: new Map(), left: new Map(), told, tell }
    const wait = room.delivery.members.size < PRESENCE_WINDOW_FROM ? 0 : room.toldAt + PRESENCE_WINDOW - performance.now()
    // Members wait in their batch (live frames held) until the other instances answered.
    if (room.heard) void room.heard.then(() => tellBatch(room))
    else if (wait > 0) setTimeout(() => tellBatch(room), wait).unref?.()
    else if (batched.push(room) === 1) setImmediate(tellBatches)
    return room.batch
  }

  function tellBatches() {
    const ready = batched
    batched = []
    for (const room of ready) tellBatch(room)
  }

  /**
   * Tell a room its batch: one `join` and one `leave` frame for the users that came and went
   * (to the room's members but the newcomers, and to the other instances), one diff, then
   * every newcomer the same full list and at once its replay: from memory, both leave in the
   * same write (a store read makes the replay follow later).
   */
  function tellBatch(room: Room) {
    const batch = room.batch!
    room.toldAt = performance.now()
    const { name, delivery } = room
    const { newcomers } = batch
    for (const [event, users] of [['join', batch.joined], ['leave', batch.left]] as const) {
      if (!users.size) continue
      const text = JSON.stringify(systemFrameOf(event, name, [...users.values()]))
      delivery.broadcast(new RoomFrame(text), newcomers)
      bus.publish({ kind: 'system', room: name, id: 0, frame: text })
    }
    if (batch.joined.size || batch.left.size) announcePresence(name, room)
    broadcastPresenceDiff(room)
    room.batch = undefined
    // One list for every newcomer of the turn: serialised and framed once.
    const full = new RoomFrame(room.presence.fullFrame())
    for (const [member, newcomer] of newcomers) {
      member.write(full)
      // A signed-in user's read state, once after the welcome and full list (held while the replay is being sent).
      void readState.joined(name, member, newcomer.createsPosition)
      try {
        // The replay is history served: charged to the newcomer's byte budget (checked at admission, `replayRefusal`).
        newcomer.replayed = delivery.replay(member, newcomer.since, config, bytes => limits.chargeHistoryBytes(limitSubjectOf(member), bytes))
      }
      catch (error) {
        // Its join fails (and is logged) as before; the other newcomers still get theirs.
        newcomer.replayed = Promise.reject(error)
      }
    }
    batch.tell()
    // Forgotten only once its leaves are told: a join meanwhile reuses it, so nothing stale is announced after that join.
    if (delivery.members.size === 0) rooms.delete(name)
  }

  /**
   * Add a connection to a room: welcome (and `name_refused` when its name wish was refused) at
   * once; at the end of the turn the full presence list (the others get the turn's `join` and
   * `presence_diff`), then the replay (messages after `since`, or the last `replay` ones), then
   * everything live, each once. A signed-in user's read position is made only with `createsPosition`.
   */
  async function join(name: string, member: Member, since: number | undefined, nameRefused?: string, createsPosition = false) {
    const room = roomOf(name)
    room.delivery.add(member)
    member.write(member.greeting?.(name) ?? new RoomFrame(JSON.stringify(systemFrame('welcome', name, member.user))))
    if (nameRefused) member.write(new RoomFrame(JSON.stringify(errorFrame('name_refused', nameRefused))))
    const batch = batchOf(room)
    const newcomer: Newcomer = { since, createsPosition }
    batch.newcomers.set(member, newcomer)
    // Back within the same turn: neither left nor joined.
    if (room.presence.connect(member.user) && !batch.left.delete(member.user.id)) batch.joined.set(member.user.id, member.user)
    await batch.told
    // Gone before its batch was told: no replay.
    await newcomer.replayed
  }

  /** Remove a connection; the last connection of a user tells the room, at the end of the turn, that they left. */
  function leave(name: string, member: Member) {
    const room = rooms.get(name)
    if (!room || !room.delivery.remove(member)) return
    const batch = batchOf(room)
    // Gone before its batch was told: it still joined, so a signed-in user's position is made (no frames for it).
    const newcomer = batch.newcomers.get(member)
    if (newcomer && batch.newcomers.delete(member)) void readState.joined(name, member, newcomer.createsPosition)
    // Gone within the turn it came: never announced.
    if (room.presence.disconnect(member.user) && !batch.joined.delete(member.user.id)) batch.left.set(member.user.id, member.user)
  }

  const send = createSendPipeline({
    config,
    store,
    hooks,
    logger,
    allowSend: allowSend ?? limiter!.allowSend,
    newRoomRefusal,
    onStored(frame, text) {
      rememberRoomWithMessages(frame.room)
      rooms.get(frame.room)?.delivery.deliver(frame.id, text)
      if (readState.watches(frame.room)) readState.stored(frame.room, frame)
      if (!bus.publish({ kind: 'message', room: frame.room, id: frame.id, frame: text })) unpublished.add(frame.room)
      // After delivery, on a later turn: a slow or failing hook never holds a message back.
      setImmediate(() => {
        Promise.resolve(hooks.callHook('chat:stored', { room: frame.room, frame })).catch((error: unknown) => logger.error('[nuxt-chat] the chat:stored hook failed', error))
      })
    },
  })

  /** Close this instance's connections of `userId` in a room; how many there were. */
  function disconnectHere(name: string, userId: string): number {
    let count = 0
    for (const member of rooms.get(name)?.delivery.members ?? []) {
      if (member.user.id !== userId || !member.close) continue
      member.close()
      count++
    }
    return count
  }

  /** Everyone online in a room, on every instance (asking the others when no member is here). */
  async function presenceOf(name: string): Promise<ChatUser[]> {
    const room = rooms.get(name)
    if (room) {
      await room.heard
      return room.presence.online()
    }
    const query = presenceQueries.ask(name)
    if (!query) return []
    await query.done
    return usersOf(query)
  }

  /** Signed-in users' names in a room on every instance (a guest may not take a look-alike); asks the others when the room is new here. */
  async function signedInNamesOf(name: string): Promise<string[]> {
    const room = rooms.get(name)
    if (!room) return (await presenceOf(name)).filter(user => !user.guest).map(user => user.name)
    await room.heard
    return room.presence.signedInNames()
  }

  /** Tell the others in the room that `member` is typing (at most once a second per connection). */
  function typing(name: string, member: Member) {
    const room = rooms.get(name)
    const now = Date.now()
    if (!room || (member.typingAt && now - member.typingAt < TYPING_THROTTLE)) return
    member.typingAt = now
    const frame: ChatTypingFrame = { type: 'typing', room: name, user: member.user.name, uid: member.user.id, message: '' }
    if (member.user.guest) frame.guest = true
    const text = JSON.stringify(frame)
    room.delivery.broadcast(new RoomFrame(text), member)
    bus.publish({ kind: 'typing', room: name, id: 0, frame: text })
  }

  // ---- other instances ----

  bus.onEvent((event: BusEvent, origin: string) => {
    if (event.kind === 'presence') presenceQueries.heard(event.room, origin, parseUsers(event.frame))
    // Rooms lists follow rooms this instance may have no member in.
    if (event.kind === 'read') readState.heard(event.frame)
    else if (event.kind === 'forget' || event.kind === 'disconnect') readState.unlistHere(event.room, event.frame)
    else if (event.kind === 'message' && readState.watches(event.room)) readState.heardStored(event.room, event.frame)
    else if (event.kind === 'sync') readState.resync(event.room)
    const room = rooms.get(event.room)
    // Asked about a room with nobody here: say so, so the asker need not wait out the bound.
    if (!room && event.kind === 'presence?') bus.publish({ kind: 'presence', room: event.room, id: 0, frame: '[]' })
    if (!room) return
    switch (event.kind) {
      case 'disconnect':
        disconnectHere(event.room, event.frame)
        break
      case 'message':
        room.delivery.deliver(event.id, event.frame)
        break
      case 'system':
      case 'typing':
        room.delivery.broadcast(new RoomFrame(event.frame))
        break
      case 'presence':
        room.presence.heardFrom(origin, parseUsers(event.frame), Date.now() + 3 * config.presenceInterval)
        broadcastPresenceDiff(room)
        break
      case 'presence?':
        announcePresence(event.room, room)
        break
      case 'sync':
        room.delivery.catchUp(event.id + 1)
        break
    }
  })

  function catchUp() {
    for (const [name, room] of rooms) {
      store.lastId(name).then(id => room.delivery.catchUp(id + 1), error => logger.error('[nuxt-chat] catch-up failed', error))
    }
  }

  // After an outage: catch every local room up from the shared store (again a moment later:
  // the bus may report ready before it has resubscribed), and tell the other instances which
  // rooms got messages here that the bus dropped.
  bus.onRecover(() => {
    catchUp()
    readState.resync()
    // Joins and leaves went unheard both ways meanwhile: tell who is here, ask who is there.
    for (const [name, room] of rooms) {
      announcePresence(name, room)
      bus.publish({ kind: 'presence?', room: name, id: 0, frame: '' })
    }
    setTimeout(catchUp, RECOVERY_RECHECK).unref?.()
    for (const name of unpublished) {
      store.lastId(name).then((id) => {
        if (bus.publish({ kind: 'sync', room: name, id, frame: '' })) unpublished.delete(name)
      }, error => logger.error('[nuxt-chat] catch-up failed', error))
    }
  })

  // Presence heartbeat: re-announce local users, expire instances that went quiet.
  const presenceTimer = setInterval(() => {
    for (const [name, room] of rooms) {
      announcePresence(name, room)
      broadcastPresenceDiff(room)
    }
    limits.sweep()
  }, config.presenceInterval)
  presenceTimer.unref?.()

  async function historyPage(name: string, before: number, limit: number): Promise<ChatHistoryFrame> {
    const rows = await store.before(name, before, limit + 1)
    const more = rows.length > limit
    const messages = (more ? rows.slice(1) : rows).map(messageFrame)
    return { type: 'history', room: name, before, messages, more, user: 'server', message: `${messages.length} older messages` }
  }

  return {
    join,
    leave,
    send,
    typing,
    presence: presenceOf,
    /** The newest `limit` stored messages of a room before id `before`, oldest first. */
    history: async (name: string, before: number, limit: number): Promise<ChatStoredFrame[]> => (await store.before(name, before, limit)).map(messageFrame),
    /** A page of older history as the `history` frame a client asked for (one more row read tells whether older ones exist). */
    historyPage,
    /**
     * A page of older history for `subject`, within its history limits (pages and bytes, per person
     * and per address): the frame as JSON text, or the refusal. Its bytes are charged once served.
     */
    async limitedHistoryPage(subject: LimitSubject, name: string, before: number, limit: number): Promise<{ text: string } | { refused: LimitRefusal }> {
      const refused = limits.take('history', subject)
      if (refused) return { refused }
      const text = JSON.stringify(await historyPage(name, before, limit))
      limits.chargeHistoryBytes(subject, Buffer.byteLength(text))
      return { text }
    },
    /** May `subject` join a room (or open a rooms list) now? Its replay (or list) is history served: refused while its history byte budget is spent. */
    replayRefusal(subject: LimitSubject): LimitRefusal | undefined {
      return limits.replayRefusal(subject)
    },
    /** A `read` POST (or a guest's command, refused without a store read) within the reads limit: the refusal when over it. WebSocket reads of signed-in users are counted as they reach the store (`readFrom`). */
    readRefusal(subject: LimitSubject): LimitRefusal | undefined {
      return limits.take('reads', subject)
    },
    /** Up to `limit` stored room names after `after`, in name order. */
    storedRooms: (after: string | undefined, limit: number) => store.rooms(after, limit),
    /** Close a user's connections to a room, here and on every other instance; resolves to how many were here. */
    disconnect(name: string, userId: string): number {
      bus.publish({ kind: 'disconnect', room: name, id: 0, frame: userId })
      readState.unlistHere(name, userId)
      return disconnectHere(name, userId)
    },
    /** Move a signed-in user's read position in a room forward (absent `id`: to the newest); all their connections learn it. */
    markRead: (name: string, user: ChatUser, id?: number) => readState.markRead(name, user, id),
    /** The `read` command of a connection: the `read` frame, or why it was refused. */
    read: readState.read,
    /** The same from a WebSocket connection: one in flight per connection, later ones folded (docs/PROTOCOL.md, "Read state"). */
    readFrom: readState.readFrom,
    /** Read positions another part deleted (retention): their users' rooms lists, here and on every instance, drop the rooms. */
    readsPruned(positions: ReadPosition[]) {
      for (const { uid, room } of positions) {
        readState.unlistHere(room, uid)
        bus.publish({ kind: 'forget', room, id: 0, frame: uid })
      }
    },
    /** Delete a user's read position in a room; their rooms lists on every instance drop the room. */
    async forget(name: string, userId: string): Promise<boolean> {
      const had = await readState.forget(name, userId)
      bus.publish({ kind: 'forget', room: name, id: 0, frame: userId })
      return had
    },
    /** A user's read position and unread count in a room; undefined when they have none. */
    readStateOf: (name: string, userId: string) => store.readState(name, userId),
    /** Follow a signed-in user's rooms list on this connection (`?rooms`). */
    /** Start a rooms list; its first list (up to 100 rooms' last messages) is history served to `subject`, charged to its byte budget. */
    async watchRooms(watcher: RoomsWatcher, subject: LimitSubject): Promise<void> {
      const bytes = await readState.watch(watcher)
      if (bytes) limits.chargeHistoryBytes(subject, bytes)
    },
    unwatchRooms: (watcher: RoomsWatcher) => readState.unwatch(watcher),
    signedInNames: signedInNamesOf,
    async close() {
      if (closed) return
      closed = true
      clearInterval(presenceTimer)
      await bus.close()
      await store.close()
    },
  }
}

export type ChatHub = ReturnType<typeof createChatHub>

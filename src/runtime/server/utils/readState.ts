import { errorFrame, type ChatErrorFrame, type ChatMessageFrame, type ChatReadFrame, type ChatRoomFrame, type ChatRoomState, type ChatRoomsFrame, type ChatStoredFrame, type ChatUser } from '../../shared/protocol'
import type { ChatRequestInfo } from '../../types'
import type { ChatBus } from './bus'
import { deliverToMember, messageFrame, type Member } from './roomDelivery'
import { RoomFrame } from '../transport/frame'
import { MAX_UNREAD, type ReadState, type RoomLog } from './roomLog'
import type { RoomDescription } from './roomListing'
import { isMembership } from './roomMembers'

/** Rooms a rooms list shows at most (most recently active first). */
export const MAX_LISTED_ROOMS = 100

/** Store reads of rooms lists in flight at once on an instance: a bus resync refreshes every (list, room) pair. */
export const MAX_REFRESHING = 8

/** A connection that follows its user's rooms list (`?rooms`), WebSocket or SSE. */
export interface RoomsWatcher {
  readonly user: ChatUser
  write: (frame: RoomFrame) => void
  /** The list as this connection was last told it, least recently read first. Set by the read state. */
  entries?: Map<string, ChatRoomState>
  /** While the first list is read: rooms that changed meanwhile, read again once it is sent. */
  loading?: Set<string>
  /** The request that opened a version 1 list: `chat:identify` is asked with it again for each room (see `admitListed`). */
  request?: ChatRequestInfo
  /** What `chat:identify` set as `ctx.data`: `chat:join` is asked with it for each room. */
  data?: Record<string, unknown>
}

export interface ReadStateOptions {
  store: Pick<RoomLog, 'markRead' | 'joinRead' | 'forgetRead' | 'readState' | 'memberRooms' | 'member'>
  bus: Pick<ChatBus, 'publish'>
  logger: { error: (message: string, error?: unknown) => void }
  /** This instance's connections in a room. */
  membersOf: (room: string) => Iterable<Member> | undefined
  /** Read positions a user keeps at most (joining one more drops the least recently read); 0: no cap. */
  maxReadPositions?: number
  /**
   * May a rooms list still show `room` (the app's `chat:identify` asked again, cached briefly)? A
   * boolean when known at once. Absent: every room the user is in.
   */
  admitListed?: (watcher: RoomsWatcher, room: string) => boolean | Promise<boolean>
  /** Is `uid` a member of `room` whom the room's connections are told reads of ("Seen by")? @default never */
  tellsSeen?: (room: string, uid: string) => boolean
  /** May this member's user get a first read position (a new room for them)? The refusal frame to tell it when not. @default always */
  allowNewPosition?: (member: Member) => ChatErrorFrame | undefined
  /** May a connection's `read` command reach the store now (folded ones never ask)? The refusal when not. @default always */
  allowStoredRead?: (connection: object, user: ChatUser) => ReadRefusal | undefined
  /** What a list shows of a room besides its read state (its record's title, …). @default nothing */
  describe?: (room: string, uid: string) => Promise<RoomDescription>
  /** A signed-in user's stored message named them (a direct room's title for the other member, before their join stored the name). */
  nameHeard?: (uid: string, name: string) => void
  /** Is `uid` a member of `room` (not banned)? Only members' rooms are listed. @default the store's answer */
  isMember?: (room: string, uid: string) => Promise<boolean>
  /**
   * A signed-in user's join made their first position in a room: make them its member (how a room joins their list), while the join
   * still `stands`. False: it no longer does (the person was removed meanwhile), and what it made is undone.
   */
  joinedFirst?: (room: string, uid: string, stands: () => boolean) => Promise<boolean>
  /** A position (and its plain membership) went to keep the user within `maxReadPositions`: forget what is cached of it. */
  evicted?: (room: string, uid: string) => void
}

/** A `read` command refused: the `error` frame, and the HTTP status a POST answers with. */
export interface ReadRefusal {
  status: number
  error: ChatErrorFrame
}

/** What `joined` does without making a position. */
const NOT_JOINED = Object.freeze({ created: false, evicted: [] as string[] })
/** A refresh the app's `chat:identify` refused. */
const REFUSED = Symbol('refused')

const refusal = (status: number, code: ChatErrorFrame['code'], message: string): ReadRefusal => ({ status, error: errorFrame(code, message) })

/** A read state as the `read` frame a user's connections get. */
export function readFrame(uid: string, state: ReadState): ChatReadFrame {
  return { type: 'read', room: state.room, uid, read: state.read, unread: state.unread, upTo: state.upTo, user: 'server', message: `${state.unread} unread` }
}

/** A room's last message as a list shows it: without reactions (they change too often to follow in every list). */
function lastOf(frame: ChatMessageFrame): ChatMessageFrame {
  if (!frame.reactions) return frame
  const { reactions: _reactions, ...last } = frame
  return last
}

function roomState(state: ReadState, description: RoomDescription): ChatRoomState {
  const entry: ChatRoomState = { room: state.room, read: state.read, unread: state.unread, mentions: state.mentions, upTo: state.upTo, ...description }
  if (state.last) entry.last = lastOf(messageFrame(state.last) as ChatMessageFrame)
  return entry
}

/**
 * Read state (docs/PROTOCOL.md, "Read state" and "Rooms list"): read positions of signed-in
 * users, the `read` frames to all of a user's connections in a room, and the rooms lists of
 * `?rooms` connections, kept live from the stored events of the rooms they list. Rooms nobody
 * lists here cost one map lookup per stored event.
 */
export function createReadState({ store, bus, logger, membersOf, maxReadPositions = 0, admitListed = () => true, tellsSeen = () => false, allowNewPosition, allowStoredRead, describe = async () => ({}), nameHeard, isMember, joinedFirst, evicted: forgetEvicted }: ReadStateOptions) {
  const memberOf = isMember ?? (async (room: string, uid: string) => {
    return isMembership(await store.member(room, uid))
  })
  /**
   * A member's read state in a room with what a list shows of the room; undefined for someone who
   * is no member (a read position alone lists nothing). A member without a position gets one.
   */
  const listedState = async (room: string, uid: string, member = false) => {
    if (!member && !await memberOf(room, uid)) return undefined
    const [state, description] = await Promise.all([store.readState(room, uid, true), describe(room, uid)])
    if (state) return roomState(state, description)
    await store.joinRead(room, uid)
    const made = await store.readState(room, uid, true)
    return made && roomState(made, description)
  }
  /** Positions gone to make room: off the user's lists here and, through the bus, on every instance. */
  const dropEvicted = (rooms: string[], uid: string) => {
    for (const gone of rooms) {
      forgetEvicted?.(gone, uid)
      unlistHere(gone, uid)
      bus.publish({ kind: 'forget', room: gone, uid })
    }
  }
  /** room → the watchers listing it. */
  const watchersOfRoom = new Map<string, Set<RoomsWatcher>>()
  /** user id → their watchers on this instance. */
  const watchersOfUser = new Map<string, Set<RoomsWatcher>>()
  /** `read` commands per connection (WebSocket): per room, the highest id asked while one is stored (`busy`), and the position last stored. */
  const readsOf = new WeakMap<object, { busy: Map<string, number | undefined>, known: Map<string, number> }>()
  /** Refreshes waiting for one of the `MAX_REFRESHING` store slots; `slots` in use. */
  const waiting: (() => void)[] = []
  let slots = 0
  /** Run a store read once a slot is free; a finished read hands its slot to the next waiting. */
  const limited = <T>(read: () => Promise<T>): Promise<T> => {
    const slot = slots < MAX_REFRESHING ? (slots++, Promise.resolve()) : new Promise<void>(resolve => waiting.push(resolve))
    return slot.then(read).finally(() => {
      const next = waiting.shift()
      if (next) next()
      else slots--
    })
  }
  /** Refreshes from the store in progress, per watcher and room; a second request while one runs runs once more after it. */
  const refreshing = new Map<RoomsWatcher, Map<string, boolean>>()

  const send = (watcher: RoomsWatcher, entry: ChatRoomState) => {
    const frame: ChatRoomFrame = { type: 'room', ...entry, user: 'server', message: `${entry.room}: ${entry.unread} unread` }
    watcher.write(new RoomFrame(JSON.stringify(frame)))
  }

  /** Take a room off a watcher's list (untold); true when it was on it. */
  const drop = (watcher: RoomsWatcher, room: string) => {
    if (!watcher.entries?.delete(room)) return false
    const watchers = watchersOfRoom.get(room)
    watchers?.delete(watcher)
    if (!watchers?.size) watchersOfRoom.delete(room)
    return true
  }

  /** Take a room off a watcher's list and tell it (the membership or position is gone, or the app disconnected the user from the room). */
  const unlist = (watcher: RoomsWatcher, room: string) => {
    if (!drop(watcher, room)) return
    const frame: ChatRoomFrame = { type: 'room', room, removed: true, read: 0, unread: 0, upTo: 0, user: 'server', message: `${room}: removed` }
    watcher.write(new RoomFrame(JSON.stringify(frame)))
  }

  const list = (watcher: RoomsWatcher, room: string) => {
    watcher.entries!.set(room, watcher.entries!.get(room) ?? { room, read: 0, unread: 0, upTo: 0 })
    let watchers = watchersOfRoom.get(room)
    if (!watchers) watchersOfRoom.set(room, watchers = new Set())
    watchers.add(watcher)
  }

  /** Read one room of a watcher's list again from the store (once the app still lets the user in) and tell it. */
  function refresh(watcher: RoomsWatcher, room: string) {
    if (watcher.loading) {
      watcher.loading.add(room)
      return
    }
    let rooms = refreshing.get(watcher)
    if (!rooms) refreshing.set(watcher, rooms = new Map())
    if (rooms.has(room)) {
      rooms.set(room, true)
      return
    }
    rooms.set(room, false)
    const read = async (): Promise<ChatRoomState | typeof REFUSED | undefined> => await admitListed(watcher, room) ? limited(() => listedState(room, watcher.user.id)) : REFUSED
    read().then((state) => {
      if (!watcher.entries) return
      // No membership (any more), or the app no longer lets the user in: the list must not keep following the room.
      if (!state || state === REFUSED) return unlist(watcher, room)
      // Read before a message this entry has already counted: read again rather than go back.
      if (state.upTo < (watcher.entries.get(room)?.upTo ?? 0)) {
        rooms.set(room, true)
        return
      }
      if (!watcher.entries.has(room)) {
        // A full list drops its least recently read room for the one just read or joined.
        if (watcher.entries.size >= MAX_LISTED_ROOMS) unlist(watcher, watcher.entries.keys().next().value!)
        list(watcher, room)
      }
      watcher.entries.set(room, state)
      send(watcher, state)
    }, error => logger.error('[nuxt-chat] could not read a read state', error)).finally(() => {
      const again = rooms.get(room)
      rooms.delete(room)
      if (again && watcher.entries) refresh(watcher, room)
    })
  }

  async function markRead(room: string, user: ChatUser, id?: number): Promise<ChatReadFrame | undefined> {
    if (await store.markRead(room, user.id, id) === undefined) return undefined
    const state = await store.readState(room, user.id)
    if (!state) return undefined
    const frame = readFrame(user.id, state)
    const text = JSON.stringify(frame)
    moved(frame, text)
    bus.publish({ kind: 'read', room, frame: text })
    return frame
  }

  /**
   * The `read` command of a connection (WebSocket or POST): refused for a guest, for a room a
   * rooms list does not show (`listed`), or one the user has no position in; else `markRead`.
   */
  async function read(room: string | undefined, user: ChatUser, id: number | undefined, listed?: RoomsWatcher): Promise<ChatReadFrame | ReadRefusal> {
    if (user.guest) return refusal(401, 'unauthorized', 'Read state needs a signed-in user')
    if (!room) return refusal(400, 'bad_request', 'No room to mark read')
    if (listed && !listed.entries?.has(room)) return refusal(404, 'not_found', 'Not a room of your rooms list')
    try {
      if (listed && !await admitListed(listed, room)) {
        unlist(listed, room)
        return refusal(403, 'forbidden', 'The app no longer lets you into this room')
      }
      const frame = await markRead(room, user, id)
      if (frame) return frame
      // No position: whatever list still shows the room stops following it.
      unlistHere(room, user.id)
      return refusal(404, 'not_found', 'You are not in this room')
    }
    catch (error) {
      logger.error('[nuxt-chat] could not store a read position', error)
      return refusal(503, 'unavailable', 'The read position could not be stored; try again')
    }
  }

  function unlistHere(room: string, userId: string) {
    for (const watcher of watchersOfUser.get(userId) ?? []) {
      // Still loading: the room is read again once the list is sent, and found gone then.
      if (watcher.loading && watcher.entries?.has(room)) watcher.loading.add(room)
      else unlist(watcher, room)
    }
  }

  /** A user's position moved (here or on another instance): their connections in the room (the others', in a small room, `seen`), and their rooms lists here. */
  function moved(frame: ChatReadFrame, text: string) {
    const out = new RoomFrame(text)
    const seen = tellsSeen(frame.room, frame.uid) ? new RoomFrame(JSON.stringify({ type: 'seen', room: frame.room, seen: { [frame.uid]: frame.read } })) : undefined
    for (const member of membersOf(frame.room) ?? []) {
      if (member.user.id === frame.uid) deliverToMember(member, out)
      else if (seen && member.seesReads) deliverToMember(member, seen)
    }
    for (const watcher of watchersOfUser.get(frame.uid) ?? []) {
      // Read just now: the most recently read entry, the last one a full list drops.
      const entry = watcher.entries?.get(frame.room)
      if (entry && watcher.entries!.delete(frame.room)) watcher.entries!.set(frame.room, entry)
      refresh(watcher, frame.room)
    }
  }

  /** A stored message or event in `room`: the lists showing it count it, or read the room again when they cannot. */
  function stored(room: string, frame: ChatStoredFrame) {
    for (const watcher of watchersOfRoom.get(room) ?? []) {
      const entry = watcher.entries?.get(room)
      if (!entry || frame.id <= entry.upTo) continue
      if (watcher.loading) {
        watcher.loading.add(room)
        continue
      }
      // The next id in order is counted here; a gap (or a change to what the entry shows) is read from the store,
      // and so is anything once the app's last word on the user and room is too old to trust, and a direct
      // room still titled with the other person's id (their name may be known since: two people, few messages;
      // a message of theirs names them, even before their join stored the name).
      const untitledDm = entry.kind === 'dm' && entry.title === entry.with
      if (untitledDm && frame.type === 'message' && frame.uid !== undefined && frame.uid === entry.with && !frame.guest) nameHeard?.(frame.uid, frame.user)
      if (frame.id !== entry.upTo + 1 || entry.upTo === 0 || admitListed(watcher, room) !== true || untitledDm) {
        refresh(watcher, room)
      }
      else if (frame.type === 'message') {
        entry.upTo = frame.id
        const fromOthers = frame.uid !== watcher.user.id && !frame.deleted
        // A thread reply is not in the room's main timeline: neither unread nor the list's last message (docs/PROTOCOL.md, "Threads"); a mention in it counts.
        const inTimeline = frame.thread === undefined || frame.alsoInRoom === true
        if (fromOthers && inTimeline) entry.unread = Math.min(MAX_UNREAD, entry.unread + 1)
        if (fromOthers && (frame.mentionsAll || frame.mentions?.includes(watcher.user.id))) entry.mentions = Math.min(MAX_UNREAD, (entry.mentions ?? 0) + 1)
        if (inTimeline) entry.last = lastOf(frame)
        send(watcher, entry)
      }
      else if (frame.type === 'edit' && !frame.deleted && frame.target === entry.last?.id) {
        // The shown message's new text: applied here, no store read.
        entry.upTo = frame.id
        entry.last = { ...entry.last, message: frame.message, edited: frame.id }
        send(watcher, entry)
      }
      else if (frame.type !== 'reaction' && (frame.target === entry.last?.id || (frame.type === 'delete' && frame.target > entry.read))) {
        refresh(watcher, room)
      }
      else {
        // A reaction (a list shows none), or an edit or delete the entry does not show: nothing it shows changed.
        entry.upTo = frame.id
      }
    }
  }

  return {
    /**
     * A signed-in user joined a room: create their position if they have none (only when
     * `createsPosition`: the app's own page asked; see `ChatAdmission`), dropping their least
     * recently read ones past `maxReadPositions`, and tell this connection its read state. Nothing while the join
     * no longer `stands` (its person's connections to the room ended since its admission).
     */
    async joined(room: string, member: Member, createsPosition: boolean, stands: () => boolean = () => true) {
      if (member.user.guest || !stands()) return
      try {
        // A first position is a new room for the user: limited (docs/PROTOCOL.md, "Limits"); the join goes on without one.
        const refused = createsPosition && allowNewPosition && !await store.readState(room, member.user.id) ? allowNewPosition(member) : undefined
        if (refused) {
          deliverToMember(member, new RoomFrame(JSON.stringify(refused)))
          return
        }
        const { created, evicted } = createsPosition ? await store.joinRead(room, member.user.id, maxReadPositions) : NOT_JOINED
        dropEvicted(evicted, member.user.id)
        // Choosing to join a room makes its member (before the position is told: lists only show members' rooms); a join a removal overtook stops here.
        if (created && joinedFirst) {
          const standing = await joinedFirst(room, member.user.id, stands).catch((error) => {
            logger.error('[nuxt-chat] could not store a membership', error)
            return true
          })
          if (!standing) return
        }
        const state = await store.readState(room, member.user.id)
        if (!state) return
        const text = JSON.stringify(readFrame(member.user.id, state))
        deliverToMember(member, new RoomFrame(text))
        // A room the user was not in yet: their rooms lists, here and elsewhere, add it.
        if (created) {
          for (const watcher of watchersOfUser.get(member.user.id) ?? []) refresh(watcher, room)
          bus.publish({ kind: 'read', room, frame: text })
        }
      }
      catch (error) {
        logger.error('[nuxt-chat] could not read a read state', error)
      }
    },

    /**
     * A membership was made (an invite, a new room's members, a direct room): the user gets a
     * position at the room's newest message unless they have one, so the room joins their rooms
     * lists at once, here and on every instance.
     */
    async memberAdded(room: string, uid: string) {
      try {
        // Someone else's act (an invite, a room made with them in it): it counts as never read, so past
        // `maxReadPositions` it goes before any room the person read, never one of theirs for it.
        const { created, evicted } = await store.joinRead(room, uid, maxReadPositions, 0)
        dropEvicted(evicted, uid)
        const state = created ? await store.readState(room, uid) : undefined
        if (!state) return
        for (const watcher of watchersOfUser.get(uid) ?? []) refresh(watcher, room)
        bus.publish({ kind: 'read', room, frame: JSON.stringify(readFrame(uid, state)) })
      }
      catch (error) {
        logger.error('[nuxt-chat] could not store a read position', error)
      }
    },

    /** Move `user`'s existing position in `room` forward (absent `id`: to the newest); every connection of theirs learns it. Undefined when they have none. */
    markRead,

    read,

    /**
     * `read` as a WebSocket connection's command: one in flight per connection and room, those
     * arriving meanwhile folded into one more with the highest id; an id at or below the position
     * the connection knows changes nothing and costs nothing. Resolves to a refusal to answer, if any.
     */
    async readFrom(connection: object, room: string | undefined, user: ChatUser, id: number | undefined, listed?: RoomsWatcher): Promise<ReadRefusal | undefined> {
      if (!room || user.guest || (listed && !listed.entries?.has(room))) {
        const refused = await read(room, user, id, listed)
        return 'error' in refused ? refused : undefined
      }
      let reads = readsOf.get(connection)
      if (!reads) readsOf.set(connection, reads = { busy: new Map(), known: new Map() })
      const known = () => Math.max(reads.known.get(room) ?? 0, listed?.entries?.get(room)?.read ?? 0)
      // Absent id: the newest, above any position.
      let next: number | undefined = id ?? Number.MAX_SAFE_INTEGER
      if (next <= known()) return undefined
      if (reads.busy.has(room)) {
        reads.busy.set(room, Math.max(reads.busy.get(room) ?? 0, next))
        return undefined
      }
      let result: ChatReadFrame | ReadRefusal | undefined
      try {
        while (next !== undefined && next > known()) {
          reads.busy.set(room, undefined)
          // Only reads that reach the store count against the reads limit: folded ones cost nothing.
          const refused = allowStoredRead?.(connection, user)
          if (refused) {
            result = refused
            break
          }
          result = await read(room, user, next === Number.MAX_SAFE_INTEGER ? undefined : next, listed)
          if ('read' in result) reads.known.set(room, Math.max(known(), result.read))
          next = reads.busy.get(room)
        }
      }
      finally {
        reads.busy.delete(room)
      }
      return result && 'error' in result ? result : undefined
    },

    /** Delete `userId`'s position in `room` and take the room off their rooms lists here; true when there was one. */
    async forget(room: string, userId: string): Promise<boolean> {
      const had = await store.forgetRead(room, userId)
      unlistHere(room, userId)
      return had
    },

    /** Take `room` off `userId`'s rooms lists on this instance (a `forget` or `disconnect`, here or on another instance). */
    unlistHere,

    /** A `read` event from another instance. */
    heard(text: string) {
      try {
        const frame = JSON.parse(text) as ChatReadFrame
        if (frame?.type === 'read' && typeof frame.uid === 'string') moved(frame, text)
      }
      catch {
        // Not a read frame: nothing to do.
      }
    },

    /** A stored message or event from another instance, as its frame text. */
    heardStored(room: string, text: string) {
      let frame: ChatStoredFrame
      try {
        frame = JSON.parse(text)
      }
      catch {
        return
      }
      stored(room, frame)
    },

    /** Does any rooms list here show `room`? (Checked before parsing a frame from the bus.) */
    watches: (room: string) => watchersOfRoom.has(room),

    stored,

    /** A person's membership of a room was made or changed: their lists here read it again (a new room is added; its `role`). */
    memberChanged(room: string, uid: string) {
      for (const watcher of watchersOfUser.get(uid) ?? []) refresh(watcher, room)
    },

    /** Rooms whose events may have been missed (bus outage), or whose record changed: read the lists showing them again. */
    resync(room?: string) {
      for (const [name, watchers] of watchersOfRoom) {
        if (room === undefined || room === name) for (const watcher of watchers) refresh(watcher, name)
      }
    },

    /** Start a rooms list: the user's memberships (most recently active first, at most `MAX_LISTED_ROOMS`), then live changes. Resolves to the first list's bytes (its JSON; 0: asked again or ended meanwhile, nothing sent). */
    async watch(watcher: RoomsWatcher, ref?: string): Promise<number> {
      // This request's list: asked again meanwhile (or ended), the connection holds another, and this one stops, unsent.
      const entries = new Map<string, ChatRoomState>()
      const loading = new Set<string>()
      watcher.entries = entries
      watcher.loading = loading
      let watchers = watchersOfUser.get(watcher.user.id)
      if (!watchers) watchersOfUser.set(watcher.user.id, watchers = new Set())
      watchers.add(watcher)
      const names = await store.memberRooms(watcher.user.id, MAX_LISTED_ROOMS)
      if (watcher.entries !== entries) return 0
      // Listed before they are read: what is stored meanwhile marks them to be read again.
      for (const room of names.toReversed()) list(watcher, room)
      // The app is asked about every room at once: nothing of a room it now refuses is shown.
      const admitted = await Promise.all(names.map(room => admitListed(watcher, room)))
      const rooms: ChatRoomState[] = []
      for (const [index, room] of names.entries()) {
        // Members as the store just said: not asked again.
        const entry = admitted[index] ? await listedState(room, watcher.user.id, true) : undefined
        if (watcher.entries !== entries) return 0
        if (!entry) {
          // Forgotten meanwhile, or refused by the app: not listed, nor followed.
          drop(watcher, room)
          continue
        }
        entries.set(room, entry)
        rooms.push(entry)
      }
      const frame: ChatRoomsFrame = { type: 'rooms', ...(ref ? { ref } : {}), rooms, user: 'server', message: `${rooms.length} rooms` }
      const text = JSON.stringify(frame)
      watcher.write(new RoomFrame(text))
      watcher.loading = undefined
      for (const room of loading) refresh(watcher, room)
      return Buffer.byteLength(text)
    },

    /** End a rooms list. */
    unwatch(watcher: RoomsWatcher) {
      for (const room of watcher.entries?.keys() ?? []) {
        const watchers = watchersOfRoom.get(room)
        watchers?.delete(watcher)
        if (!watchers?.size) watchersOfRoom.delete(room)
      }
      const watchers = watchersOfUser.get(watcher.user.id)
      watchers?.delete(watcher)
      if (!watchers?.size) watchersOfUser.delete(watcher.user.id)
      refreshing.delete(watcher)
      watcher.entries = undefined
    },
  }
}

export type ReadStateHub = ReturnType<typeof createReadState>

import { reactorsOf, withReaction } from '../../shared/protocol'
import { holdsWords } from '../../shared/search'
import { firstIndexNotBefore } from '../../shared/sortedIndex'
import { createMemoryRoomDirectory } from './roomDirectory.memory'
import { isMembership } from './roomMembers'
import { createMemoryPushLog } from './roomLog.push'
import { changeRefusal, checkAppendInput, decodeSearchCursor, encodeSearchCursor, lastRepliers, MAX_UNREAD, READ_SCAN, replyOf, sequenceOf, storedMessage, type AppendInput, type AppendResult, type ReadState, type RetentionPolicy, type RoomLog, type SearchQuery, type StoredMessage } from './roomLog'

interface MemoryRoom {
  /** Messages only, by id: what replay, retention and unread counts count. */
  messages: StoredMessage[]
  /** The records of changes (edits, deletes, reactions), by number: for `cid` de-duplication and gap filling. */
  changes: StoredMessage[]
  nextId: number
  /** `${sender}\n${cid}` → message or change, for de-duplication. */
  byCid: Map<string, StoredMessage>
  /** message or change number → its `byCid` key, so pruning can drop it. */
  cidKeyOf: Map<number, string>
  /** message id → the edits of it, oldest first: a delete reaches them without a look at every change. */
  editsOf: Map<number, StoredMessage[]>
  /** message id → its `rev`, least recently changed first: a resume finds the messages changed after its cursor from the end. */
  changed: Map<number, number>
  /** message id → what its replies show of it: one object shared by every reply, changed in place by an edit or delete (and retention). */
  quotes: Map<number, NonNullable<StoredMessage['replyTo']>>
}

/** The room log in process memory: for tests and throwaway rooms; gone on restart. */
export function createMemoryRoomLog(): RoomLog {
  const rooms = new Map<string, MemoryRoom>()
  /** Every room's name, sorted: a page of `rooms()` is a binary search, not a sort of all names. */
  const names: string[] = []
  /** The first index in `names` whose name sorts after `after`. */
  const firstNameAfter = (after: string) => firstIndexNotBefore(names.length, index => names[index]! <= after)
  /** user id → room → read position and when it last moved. */
  const reads = new Map<string, Map<string, { id: number, ts: number }>>()
  const roomOf = (name: string) => {
    let room = rooms.get(name)
    if (!room) {
      rooms.set(name, room = { messages: [], changes: [], nextId: 1, byCid: new Map(), cidKeyOf: new Map(), editsOf: new Map(), changed: new Map(), quotes: new Map() })
      names.splice(firstNameAfter(name), 0, name)
    }
    return room
  }
  // Binary search: ids are sorted, so the first index with id > after.
  const firstAfter = (messages: StoredMessage[], after: number) => firstIndexNotBefore(messages.length, index => messages[index]!.id <= after)

  /** Set a read position (created when `create`, else only moved forward), never past the room's newest id. */
  function moveRead(name: string, uid: string, id: number, create: boolean): number | undefined {
    const newest = (rooms.get(name)?.nextId ?? 1) - 1
    const held = reads.get(uid)?.get(name)
    if (!held && !create) return undefined
    const mine = reads.get(uid) ?? new Map<string, { id: number, ts: number }>()
    reads.set(uid, mine)
    const next = Math.min(id, newest)
    if (!held || next > held.id) mine.set(name, { id: next, ts: Date.now() })
    return mine.get(name)!.id
  }

  const { clear: clearDirectory, isKept, dropPlainMember, memberOf, ...directory } = createMemoryRoomDirectory()
  /** Open streams (docs/PROTOCOL.md, "Streaming messages"): their owner and heartbeat. */
  const streams = new Map<StoredMessage, { owner: string, beat: number }>()
  const messageOf = (name: string, id: number): StoredMessage | undefined => {
    const messages = rooms.get(name)?.messages ?? []
    const found = messages[firstAfter(messages, id - 1)]
    return found?.id === id ? found : undefined
  }
  const { clearPush, ...push } = createMemoryPushLog()

  return {
    ...directory,
    ...push,
    async append(input: AppendInput): Promise<AppendResult> {
      checkAppendInput(input)
      const room = roomOf(input.room)
      const key = input.cid === undefined ? undefined : `${input.sender}\n${input.cid}`
      const existing = key === undefined ? undefined : room.byCid.get(key)
      if (existing) return { message: existing, duplicate: true }
      let message: StoredMessage
      if (input.kind) {
        // Checked and applied in one synchronous step: nothing runs in between, so the bounds hold for same-tick toggles.
        const found = room.messages[firstAfter(room.messages, input.target! - 1)]
        const target = found?.id === input.target ? found : undefined
        const refusal = changeRefusal(target, input)
        if (refusal) throw refusal
        const text = input.kind === 'reaction' ? `${reactorsOf(target!.reactions, input.message)?.includes(input.sender) ? '-' : '+'}${input.message}` : input.message
        message = storedMessage(room.nextId++, input, text)
        room.changes.push(message)
        applyChange(room, message, target!, input.endsStream)
      }
      else {
        message = storedMessage(room.nextId++, input)
        if (input.streamOwner !== undefined) streams.set(message, { owner: input.streamOwner, beat: input.ts })
        if (input.replyTo !== undefined) message.replyTo = quoteOf(room, input.replyTo)
        room.messages.push(message)
        if (message.thread !== undefined) summarize(room, message.thread)
      }
      if (key !== undefined) {
        room.byCid.set(key, message)
        room.cidKeyOf.set(message.id, key)
      }
      return { message, duplicate: false }
    },
    async replaySince(name, after, limit) {
      const room = rooms.get(name)
      if (!room) return []
      const { messages } = room
      const start = after === undefined ? 0 : firstAfter(messages, after)
      const replayed = messages.slice(Math.max(start, messages.length - limit))
      if (after !== undefined) {
        const changed = [...room.changed]
        for (let index = changed.length - 1, taken = 0; index >= 0 && taken < limit && changed[index]![1] > after; index--) {
          const id = changed[index]![0]
          if (id > after) continue
          const message = messages[firstAfter(messages, id - 1)]
          if (message?.id === id) {
            replayed.push(message)
            taken++
          }
        }
      }
      return replayed.sort((a, b) => sequenceOf(a) - sequenceOf(b))
    },
    async before(name, before, limit, thread) {
      const messages = rooms.get(name)?.messages ?? []
      const end = firstAfter(messages, before - 1)
      const page: StoredMessage[] = []
      for (let index = end - 1; index >= 0 && page.length < limit; index--) {
        const message = messages[index]!
        if (thread === undefined ? isInMainTimeline(message) : message.thread === thread) page.push(message)
      }
      return page.reverse()
    },
    async between(name, after, before) {
      const room = rooms.get(name)
      if (!room) return []
      const inRange = (list: StoredMessage[]) => list.slice(firstAfter(list, after), firstAfter(list, before - 1))
      return [...inRange(room.messages), ...inRange(room.changes)].sort((a, b) => a.id - b.id)
    },
    async byCid(name, sender, cid) {
      return rooms.get(name)?.byCid.get(`${sender}\n${cid}`)
    },
    async message(name, id) {
      const messages = rooms.get(name)?.messages ?? []
      const found = messages[firstAfter(messages, id - 1)]
      return found?.id === id ? found : undefined
    },
    async lastId(name) {
      return (rooms.get(name)?.nextId ?? 1) - 1
    },
    async prune(name, policy: RetentionPolicy, limit = 1000) {
      const room = rooms.get(name)
      if (!room) return 0
      // Messages are counted and aged; the room's `nextId` stays, so an emptied room never reuses a number. `max: 0` is no count limit.
      let drop = policy.max > 0 ? Math.max(0, room.messages.length - policy.max) : 0
      if (policy.maxAge > 0) {
        const oldest = Date.now() - policy.maxAge
        while (drop < room.messages.length && room.messages[drop]!.ts < oldest) drop++
      }
      const dropped = room.messages.splice(0, Math.min(drop, limit))
      // Changes: none older than the oldest message kept, at most `max` of them.
      const firstKept = room.messages[0]?.id ?? room.nextId
      let dropChanges = firstAfter(room.changes, firstKept - 1)
      if (policy.max > 0) dropChanges = Math.max(dropChanges, room.changes.length - policy.max)
      const droppedChanges = room.changes.splice(0, Math.min(dropChanges, limit))
      // Drop them from the indexes too, so memory stays bounded.
      for (const message of [...dropped, ...droppedChanges]) {
        const quote = room.quotes.get(message.id)
        if (quote && !message.kind) setQuote(quote, replyOf(message.id, undefined))
        room.quotes.delete(message.id)
        room.editsOf.delete(message.id)
        room.changed.delete(message.id)
        // Edits are dropped oldest first, so each is the first of its target's list.
        const edits = message.kind === 'edit' ? room.editsOf.get(message.target!) : undefined
        if (edits?.[0] === message) edits.shift()
        if (edits?.length === 0) room.editsOf.delete(message.target!)
        const key = room.cidKeyOf.get(message.id)
        if (key !== undefined) {
          room.byCid.delete(key)
          room.cidKeyOf.delete(message.id)
        }
      }
      return dropped.length + droppedChanges.length
    },
    async markRead(name, uid, id = Number.MAX_SAFE_INTEGER) {
      return moveRead(name, uid, id, false)
    },
    async forgetRead(name, uid) {
      return reads.get(uid)?.delete(name) ?? false
    },
    async joinRead(name, uid, max = 0, movedAt = Date.now()) {
      if (reads.get(uid)?.has(name)) return { created: false, evicted: [] }
      moveRead(name, uid, Number.MAX_SAFE_INTEGER, true)
      const mine = reads.get(uid)!
      mine.get(name)!.ts = movedAt
      if (!(max > 0) || mine.size <= max) return { created: true, evicted: [] }
      // The order of the rooms list (the SQL stores' too): the one just made, then the newest `max - 1` others.
      const evicted = [...mine].filter(([room]) => room !== name && !isKept(room, uid)).sort(([a, x], [b, y]) => y.ts - x.ts || (a < b ? -1 : 1)).slice(max - 1).map(([room]) => room)
      for (const room of evicted) {
        mine.delete(room)
        dropPlainMember(room, uid, Date.now())
      }
      return { created: true, evicted }
    },
    async pruneReads(maxAge, limit) {
      const before = Date.now() - maxAge
      const pruned: { uid: string, room: string }[] = []
      for (const [uid, mine] of reads) {
        for (const [name, position] of mine) {
          if (pruned.length >= limit) return pruned
          if (position.ts >= before || isKept(name, uid) || (rooms.get(name)?.messages.at(-1)?.ts ?? -Infinity) >= before) continue
          mine.delete(name)
          dropPlainMember(name, uid, Date.now())
          pruned.push({ uid, room: name })
        }
        if (!mine.size) reads.delete(uid)
      }
      return pruned
    },
    async readState(name, uid, withLast) {
      const held = reads.get(uid)?.get(name)
      if (!held) return undefined
      const messages = rooms.get(name)?.messages ?? []
      let unread = 0
      const first = firstAfter(messages, held.id)
      for (let index = first; index < messages.length && index < first + READ_SCAN && unread < MAX_UNREAD; index++) {
        const message = messages[index]!
        if (!message.deleted && message.uid !== uid && isInMainTimeline(message)) unread++
      }
      let mentions = 0
      for (let index = first; index < messages.length && index < first + READ_SCAN && mentions < MAX_UNREAD; index++) {
        const message = messages[index]!
        if (!message.deleted && message.uid !== uid && (message.mentionsAll || message.mentions?.includes(uid))) mentions++
      }
      const state: ReadState = { room: name, read: held.id, unread, mentions, upTo: (rooms.get(name)?.nextId ?? 1) - 1 }
      let last: StoredMessage | undefined
      for (let index = messages.length - 1; withLast && index >= 0 && index >= messages.length - READ_SCAN && !last; index--) {
        if (!messages[index]!.deleted && isInMainTimeline(messages[index]!)) last = messages[index]
      }
      if (last) state.last = last
      return state
    },
    async memberReads(name, limit) {
      const members = (await directory.members(name, undefined, Number.MAX_SAFE_INTEGER)).filter(isMembership)
      if (!members.length || members.length > limit) return undefined
      return new Map(members.map(({ uid }) => [uid, reads.get(uid)?.get(name)?.id ?? 0]))
    },
    async readRooms(uid, limit) {
      return [...reads.get(uid) ?? []].sort(([a, x], [b, y]) => y.ts - x.ts || (a < b ? -1 : 1)).slice(0, limit).map(([name]) => name)
    },
    async memberRooms(uid, limit) {
      const active = (member: { room: string, joinedAt: number }) => reads.get(uid)?.get(member.room)?.ts ?? member.joinedAt
      return memberOf(uid).sort((x, y) => active(y) - active(x) || (x.room < y.room ? -1 : 1)).slice(0, limit).map(member => member.room)
    },
    async rooms(after, limit) {
      const start = after === undefined ? 0 : firstNameAfter(after)
      return names.slice(start, start + limit)
    },
    async search(query: SearchQuery) {
      // Newest first by (ts, room, id); a plain scan: this store is for tests and throwaway rooms.
      const at = query.cursor === undefined ? undefined : decodeSearchCursor(query.cursor, 'nsn') as [number, string, number]
      const beforeCursor = (message: StoredMessage) => !at || message.ts < at[0] || (message.ts === at[0] && (message.room < at[1] || (message.room === at[1] && message.id < at[2])))
      const found: StoredMessage[] = []
      for (const name of new Set(query.rooms)) {
        for (const message of rooms.get(name)?.messages ?? []) {
          if (message.deleted || (query.author !== undefined && message.uid !== query.author)) continue
          if ((query.before !== undefined && message.ts >= query.before) || (query.after !== undefined && message.ts < query.after)) continue
          if (beforeCursor(message) && holdsWords(message.message, query.words)) found.push(message)
        }
      }
      found.sort((a, b) => b.ts - a.ts || (a.room < b.room ? 1 : a.room > b.room ? -1 : b.id - a.id))
      const messages = found.slice(0, query.limit)
      const last = messages.at(-1)
      return found.length > query.limit && last ? { messages, cursor: encodeSearchCursor([last.ts, last.room, last.id]) } : { messages }
    },
    async streamCheckpoint(name, id, owner, text, beat) {
      const message = messageOf(name, id)
      const open = message && streams.get(message)
      if (!open || open.owner !== owner || message.deleted) return false
      message.message = text
      open.beat = beat
      return true
    },
    async streamEnd(name, id, owner, incomplete) {
      const message = messageOf(name, id)
      if (!message || streams.get(message)?.owner !== owner) return false
      streams.delete(message)
      delete message.streaming
      if (incomplete) message.incomplete = incomplete
      return true
    },
    async staleStreams(beat, limit) {
      const found = [...streams].filter(([, open]) => open.beat < beat).slice(0, limit)
      return found.map(([message, open]) => ({ room: message.room, id: message.id, owner: open.owner, user: message.user, uid: message.uid ?? '', message: message.message }))
    },
    async close() {
      streams.clear()
      clearPush()
      rooms.clear()
      names.length = 0
      reads.clear()
      clearDirectory()
    },
  }
}

/** What replies show of message `id` of `room` (shared by them all: an edit or delete of it changes it for every one). */
function quoteOf(room: MemoryRoom, id: number): NonNullable<StoredMessage['replyTo']> {
  let quote = room.quotes.get(id)
  if (!quote) {
    const found = room.messages[firstIndexNotBefore(room.messages.length, index => room.messages[index]!.id < id)]
    room.quotes.set(id, quote = replyOf(id, found?.id === id ? found : undefined))
  }
  return quote
}

/** Replace a shared quote's fields in place (every reply holding it shows the new ones). */
function setQuote(quote: NonNullable<StoredMessage['replyTo']>, value: NonNullable<StoredMessage['replyTo']>) {
  delete quote.uid
  delete quote.deleted
  Object.assign(quote, value)
}

/** Apply a just-stored change to its live target in `room`: edit, delete or reaction; the target's `rev` becomes its number. */
/** A message of the room's main timeline: no thread reply, unless also sent to the room. */
const isInMainTimeline = (message: StoredMessage) => message.thread === undefined || message.alsoInRoom === true

/** Give a thread's parent the summary of its live replies (the memory store keeps it on the parent, as served). */
function summarize(room: MemoryRoom, parentId: number) {
  const parent = room.messages.find(message => message.id === parentId)
  if (!parent) return
  const replies = room.messages.filter(message => message.thread === parentId && !message.deleted)
  const last = replies.at(-1)
  if (!last) delete parent.replies
  else parent.replies = { count: replies.length, lastId: last.id, lastTs: last.ts, users: lastRepliers(replies.map(reply => reply.uid ?? '').reverse()) }
}

function applyChange(room: MemoryRoom, change: StoredMessage, target: StoredMessage, endsStream?: true) {
  target.rev = change.id
  // Replies show the original's current text: their shared quote follows it (a reaction changes no text).
  const quote = change.kind === 'reaction' ? undefined : room.quotes.get(target.id)
  if (quote) setQuote(quote, replyOf(target.id, change.kind === 'delete' ? { ...target, deleted: true } : { ...target, message: change.message }))
  room.changed.delete(target.id)
  room.changed.set(target.id, change.id)
  if (change.kind === 'delete') {
    for (const message of [target, ...room.editsOf.get(target.id) ?? []]) {
      message.message = ''
      message.deleted = true
    }
    if (target.thread !== undefined) summarize(room, target.thread)
  }
  else if (change.kind === 'reaction') {
    const reactions = withReaction(target.reactions, change.message.slice(1), change.uid ?? '', change.message[0] === '+')
    if (reactions) target.reactions = reactions
    else delete target.reactions
  }
  else {
    target.message = change.message
    // A stream's final text is no one's edit.
    if (!endsStream) target.edited = change.id
    const edits = room.editsOf.get(target.id)
    if (edits) edits.push(change)
    else room.editsOf.set(target.id, [change])
  }
}

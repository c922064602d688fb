import { withReaction } from '../../shared/protocol'
import { firstIndexNotBefore } from '../../shared/sortedIndex'
import { checkAppendInput, MAX_UNREAD, READ_SCAN, storedMessage, type AppendInput, type AppendResult, type ReadState, type RetentionPolicy, type RoomLog, type StoredMessage } from './roomLog'

interface MemoryRoom {
  messages: StoredMessage[]
  nextId: number
  /** `${sender}\n${cid}` → message, for de-duplication. */
  byCid: Map<string, StoredMessage>
  /** message id → its `byCid` key, so pruning can drop it. */
  cidKeyOf: Map<number, string>
  /** message id → the edits of it, oldest first: a delete reaches them without a look at every message. */
  editsOf: Map<number, StoredMessage[]>
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
      rooms.set(name, room = { messages: [], nextId: 1, byCid: new Map(), cidKeyOf: new Map(), editsOf: new Map() })
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

  return {
    async append(input: AppendInput): Promise<AppendResult> {
      checkAppendInput(input)
      const room = roomOf(input.room)
      const key = input.cid === undefined ? undefined : `${input.sender}\n${input.cid}`
      const existing = key === undefined ? undefined : room.byCid.get(key)
      if (existing) return { message: existing, duplicate: true }
      const message = storedMessage(room.nextId++, input)
      room.messages.push(message)
      if (key !== undefined) {
        room.byCid.set(key, message)
        room.cidKeyOf.set(message.id, key)
      }
      if (message.kind === 'edit') {
        const edits = room.editsOf.get(message.target!)
        if (edits) edits.push(message)
        else room.editsOf.set(message.target!, [message])
      }
      if (message.kind) applyEvent(room, message, room.messages[firstAfter(room.messages, message.target! - 1)])
      return { message, duplicate: false }
    },
    async replaySince(name, after, limit) {
      const messages = rooms.get(name)?.messages ?? []
      const start = after === undefined ? 0 : firstAfter(messages, after)
      return messages.slice(Math.max(start, messages.length - limit))
    },
    async before(name, before, limit) {
      const messages = rooms.get(name)?.messages ?? []
      const end = firstAfter(messages, before - 1)
      return messages.slice(Math.max(0, end - limit), end)
    },
    async between(name, after, before) {
      const messages = rooms.get(name)?.messages ?? []
      return messages.slice(firstAfter(messages, after), firstAfter(messages, before - 1))
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
      // The newest message always stays (as in the SQL stores); `max: 0` is no count limit.
      const keep = room.messages.length - 1
      let drop = Math.min(keep, policy.max > 0 ? Math.max(0, room.messages.length - policy.max) : 0)
      if (policy.maxAge > 0) {
        const oldest = Date.now() - policy.maxAge
        while (drop < keep && room.messages[drop]!.ts < oldest) drop++
      }
      // Drop pruned messages from the cid index too, so memory stays bounded.
      const dropped = room.messages.splice(0, Math.min(drop, limit))
      for (const message of dropped) {
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
      return dropped.length
    },
    async markRead(name, uid, id = Number.MAX_SAFE_INTEGER) {
      return moveRead(name, uid, id, false)
    },
    async forgetRead(name, uid) {
      return reads.get(uid)?.delete(name) ?? false
    },
    async joinRead(name, uid, max = 0) {
      if (reads.get(uid)?.has(name)) return { created: false, evicted: [] }
      moveRead(name, uid, Number.MAX_SAFE_INTEGER, true)
      const mine = reads.get(uid)!
      if (!(max > 0) || mine.size <= max) return { created: true, evicted: [] }
      // The order of the rooms list (the SQL stores' too): the one just made, then the newest `max - 1` others.
      const evicted = [...mine].filter(([room]) => room !== name).sort(([a, x], [b, y]) => y.ts - x.ts || (a < b ? -1 : 1)).slice(max - 1).map(([room]) => room)
      for (const room of evicted) mine.delete(room)
      return { created: true, evicted }
    },
    async pruneReads(maxAge, limit) {
      const before = Date.now() - maxAge
      const pruned: { uid: string, room: string }[] = []
      for (const [uid, mine] of reads) {
        for (const [name, position] of mine) {
          if (pruned.length >= limit) return pruned
          if (position.ts >= before || (rooms.get(name)?.messages.at(-1)?.ts ?? -Infinity) >= before) continue
          mine.delete(name)
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
      for (let index = firstAfter(messages, held.id); index < messages.length && unread < MAX_UNREAD; index++) {
        const message = messages[index]!
        if (message.id > held.id + READ_SCAN) break
        if (!message.kind && !message.deleted && message.uid !== uid) unread++
      }
      const state: ReadState = { room: name, read: held.id, unread, upTo: (rooms.get(name)?.nextId ?? 1) - 1 }
      let last: StoredMessage | undefined
      for (let index = messages.length - 1; withLast && index >= 0 && messages[index]!.id > state.upTo - READ_SCAN && !last; index--) {
        const message = messages[index]!
        if (!message.kind && !message.deleted) last = message
      }
      if (last) state.last = last
      return state
    },
    async readRooms(uid, limit) {
      return [...reads.get(uid) ?? []].sort(([a, x], [b, y]) => y.ts - x.ts || (a < b ? -1 : 1)).slice(0, limit).map(([name]) => name)
    },
    async rooms(after, limit) {
      const start = after === undefined ? 0 : firstNameAfter(after)
      return names.slice(start, start + limit)
    },
    async close() {
      rooms.clear()
      names.length = 0
      reads.clear()
    },
  }
}

/** Apply a just-stored event to its target (`found`, if stored) in `room`: edit, delete or reaction. */
function applyEvent(room: MemoryRoom, event: StoredMessage, found: StoredMessage | undefined) {
  const target = found?.id === event.target ? found : undefined
  if (event.kind === 'delete') {
    for (const message of target ? [target, ...room.editsOf.get(target.id) ?? []] : room.editsOf.get(event.target!) ?? []) {
      message.message = ''
      message.deleted = true
    }
    return
  }
  if (!target) return
  if (event.kind === 'reaction') {
    const reactions = withReaction(target.reactions, event.message.slice(1), event.uid ?? '', event.message[0] === '+')
    if (reactions) target.reactions = reactions
    else delete target.reactions
  }
  else if (target.deleted) {
    event.message = ''
    event.deleted = true
  }
  else if ((target.edited ?? 0) < event.id) {
    target.message = event.message
    target.edited = event.id
  }
}

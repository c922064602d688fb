import { withReaction } from '../../shared/protocol'
import { checkAppendInput, storedMessage, type AppendInput, type AppendResult, type RetentionPolicy, type RoomLog, type StoredMessage } from './roomLog'

interface MemoryRoom {
  messages: StoredMessage[]
  nextId: number
  /** `${sender}\n${cid}` → message, for de-duplication. */
  byCid: Map<string, StoredMessage>
  /** message id → its `byCid` key, so pruning can drop it. */
  cidKeyOf: Map<number, string>
}

/** The room log in process memory: for tests and throwaway rooms; gone on restart. */
export function createMemoryRoomLog(): RoomLog {
  const rooms = new Map<string, MemoryRoom>()
  const roomOf = (name: string) => {
    let room = rooms.get(name)
    if (!room) rooms.set(name, room = { messages: [], nextId: 1, byCid: new Map(), cidKeyOf: new Map() })
    return room
  }
  // Binary search: ids are sorted, so the first index with id > after.
  const firstAfter = (messages: StoredMessage[], after: number) => {
    let lo = 0
    let hi = messages.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (messages[mid]!.id <= after) lo = mid + 1
      else hi = mid
    }
    return lo
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
    async applyEdit(name, target, eventId, text) {
      const messages = rooms.get(name)?.messages ?? []
      const message = messages[firstAfter(messages, target - 1)]
      const event = messages[firstAfter(messages, eventId - 1)]
      if (message?.id !== target) return
      if (!message.deleted && (message.edited ?? 0) < eventId) {
        message.message = text
        message.edited = eventId
      }
      else if (message.deleted && event?.id === eventId) {
        event.message = ''
        event.deleted = true
      }
    },
    async applyReaction(name, target, emoji, uid, on) {
      const messages = rooms.get(name)?.messages ?? []
      const message = messages[firstAfter(messages, target - 1)]
      if (message?.id !== target) return
      const reactions = withReaction(message.reactions, emoji, uid, on)
      if (reactions) message.reactions = reactions
      else delete message.reactions
    },
    async applyDelete(name, target) {
      for (const message of rooms.get(name)?.messages ?? []) {
        if (message.id !== target && !(message.kind === 'edit' && message.target === target)) continue
        message.message = ''
        message.deleted = true
      }
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
        const key = room.cidKeyOf.get(message.id)
        if (key !== undefined) {
          room.byCid.delete(key)
          room.cidKeyOf.delete(message.id)
        }
      }
      return dropped.length
    },
    async rooms(after, limit) {
      return [...rooms.keys()].filter(name => after === undefined || name > after).sort().slice(0, limit)
    },
    async close() {
      rooms.clear()
    },
  }
}

import { applyDelta, replyExcerpt, THREAD_SUMMARY_USERS, withReaction, type ChatDeltaFrame, type ChatEventFrame, type ChatMessageBase, type ChatMessageFrame, type ChatReactionFrame } from '../shared/protocol'
import { firstIndexNotBefore } from '../shared/sortedIndex'
import type { ShallowRef } from 'vue'
import type { ChatMessageFile } from './uploads'

/** A message as `useChat()` shows it: stored (with `id`) or still pending (sent, not yet acknowledged). */
export interface ChatMessage<T = unknown> extends ChatMessageBase {
  /** Set once the server stored it. */
  id?: number
  /** The sender is a guest (the app did not identify them): render the name so it cannot pass for a user's. */
  guest?: boolean
  /** Sent by this client and not yet acknowledged by the server. */
  pending?: boolean
  /** Sent by this client and not stored: refused for good, or not delivered before its room was left. `error` says why. */
  failed?: boolean
  /** The message parsed as JSON, when its text is a JSON object or array. */
  data?: T
  /** Reactions, in the order first given: how many people, and whether this client's user is one. */
  reactions?: ChatReaction[]
  /** Who reacted with what (emoji → user ids), as the server keeps it. */
  reactedBy?: Record<string, string[]>
  /** Its attachments; while they upload, each with the object URL of its local bytes. */
  files?: ChatMessageFile[]
  /** Sent with attachments and still uploading them: the share of their bytes sent, 0 to 1. */
  progress?: Readonly<ShallowRef<number>>
}

export interface ChatReaction {
  emoji: string
  count: number
  mine: boolean
}

/**
 * A client's message log: sorted by id, each id once, pending messages last in send order,
 * at most `max` entries. Mutable inside; callers publish `entries()` as a fresh array.
 */
export function createMessageLog<T = unknown>(max: number, myId: () => string | undefined = () => undefined) {
  let stored: ChatMessage<T>[] = []
  /** Entries kept beyond `max`: pages of older history the user asked for (`keepOlder`), until `dropOlder`. */
  let olderKept = 0
  const ids = new Set<number>()
  /** message id → the newest replayed state shown (its id, or a replayed `rev`); changes are applied whatever it says, as they may arrive out of order (a POST's reply). */
  const revs = new Map<number, number>()
  const pending = new Map<string, ChatMessage<T>>()

  const parseData = (text: string): T | undefined => {
    const first = text.charCodeAt(0)
    if (first !== 123 && first !== 91) return undefined
    try {
      const data = JSON.parse(text)
      return data && typeof data === 'object' ? data : undefined
    }
    catch {
      return undefined
    }
  }

  /** Set who reacted with what, and the summary shown from it. */
  const setReactions = (entry: ChatMessage<T>, reactedBy: Record<string, string[]> | undefined) => {
    const me = myId()
    if (!reactedBy || !Object.keys(reactedBy).length) {
      delete entry.reactedBy
      delete entry.reactions
      return
    }
    entry.reactedBy = reactedBy
    entry.reactions = Object.entries(reactedBy).map(([emoji, users]) => ({ emoji, count: users.length, mine: me !== undefined && users.includes(me) }))
  }

  /** Replies held to message `id` show its new state (`text` undefined: deleted); true when one changed. */
  const requote = (id: number, text: string | undefined): boolean => {
    let changed = false
    for (const entry of stored) {
      if (entry.replyTo?.id !== id) continue
      const { deleted: _deleted, ...quote } = entry.replyTo
      entry.replyTo = text === undefined ? { ...quote, excerpt: '', deleted: true } : { ...quote, excerpt: replyExcerpt(text) }
      changed = true
    }
    return changed
  }

  /** A frame's reply, mentions and thread on its entry. */
  const setReplyAndMentions = (entry: ChatMessage<T>, frame: ChatMessageFrame) => {
    if (frame.replyTo) entry.replyTo = frame.replyTo
    if (frame.mentions) entry.mentions = frame.mentions
    if (frame.mentionsAll) entry.mentionsAll = frame.mentionsAll
    if (frame.thread !== undefined) entry.thread = frame.thread
    if (frame.alsoInRoom) entry.alsoInRoom = true
    if (frame.replies) entry.replies = frame.replies
    // The server's metadata replaces a pending message's local previews, whose bytes are let go.
    if (frame.files) {
      for (const file of entry.files ?? []) if (file.url) URL.revokeObjectURL(file.url)
      entry.files = frame.files
    }
  }

  /** Whether a message is still streaming, and why it was cut. */
  const setStream = (entry: ChatMessage<T>, frame: Pick<ChatMessageFrame, 'streaming' | 'incomplete'>) => {
    if (frame.streaming) entry.streaming = true
    else delete entry.streaming
    if (frame.incomplete) entry.incomplete = frame.incomplete
    else delete entry.incomplete
  }

  /** A thread reply the parent's summary does not count yet (its id is above the summary's `lastId`) joins it; false when the parent is not held. */
  const countReply = (reply: ChatMessageFrame): boolean => {
    const parent = stored[indexOf(reply.thread!)]
    if (!parent || parent.id !== reply.thread || reply.id <= (parent.replies?.lastId ?? 0)) return false
    const users = [reply.uid ?? '', ...(parent.replies?.users ?? []).filter(uid => uid !== reply.uid)].slice(0, THREAD_SUMMARY_USERS)
    parent.replies = { count: (parent.replies?.count ?? 0) + 1, lastId: reply.id, lastTs: reply.ts, users }
    return true
  }

  /** Is this entry in the room's main timeline (not a thread reply, or one also sent to the room)? */
  const inMainTimeline = (entry: ChatMessage<T>) => entry.thread === undefined || entry.alsoInRoom === true

  /** Index of the stored entry with `id`, or where it would go. */
  const indexOf = (id: number) => firstIndexNotBefore(stored.length, index => stored[index]!.id! < id)

  return {
    /** Merge a stored message; a pending entry with its cid becomes it (same object). False if it was already there. */
    add(frame: ChatMessageFrame): boolean {
      if (ids.has(frame.id)) return frame.rev !== undefined && this.replaceState(frame)
      ids.add(frame.id)
      revs.set(frame.id, frame.rev ?? frame.id)
      // A tombstone: the id is taken, nothing is shown (a pending entry of ours that was deleted goes too).
      if (frame.deleted) return frame.cid !== undefined && pending.delete(frame.cid)
      const waiting = frame.cid === undefined ? undefined : pending.get(frame.cid)
      const entry: ChatMessage<T> = waiting ?? {} as ChatMessage<T>
      if (waiting) {
        pending.delete(frame.cid!)
        delete entry.pending
        delete entry.failed
      }
      entry.id = frame.id
      entry.room = frame.room
      entry.user = frame.user
      entry.message = frame.message
      entry.ts = frame.ts
      if (frame.cid !== undefined) entry.cid = frame.cid
      if (frame.uid !== undefined) entry.uid = frame.uid
      if (frame.guest) entry.guest = true
      if (frame.edited !== undefined) entry.edited = frame.edited
      setReactions(entry, frame.reactions)
      setReplyAndMentions(entry, frame)
      setStream(entry, frame)
      const data = parseData(frame.message)
      if (data !== undefined) entry.data = data
      if (frame.thread !== undefined) countReply(frame)
      const last = stored[stored.length - 1]
      if (!last || last.id! < frame.id) {
        stored.push(entry)
      }
      else {
        // Replayed or out of order: insert at its place.
        stored.splice(indexOf(frame.id), 0, entry)
      }
      return true
    },
    /** A replayed state (revision 5) of a message held: it replaces the state shown when newer; true when something shown changed. */
    replaceState(frame: ChatMessageFrame): boolean {
      const index = indexOf(frame.id)
      const entry = stored[index]
      if (entry?.id !== frame.id || (revs.get(frame.id) ?? 0) >= frame.rev!) return false
      revs.set(frame.id, frame.rev!)
      // Replies held to it show its state as replayed (an edit or delete this client missed).
      requote(frame.id, frame.deleted ? undefined : frame.message)
      if (frame.deleted) {
        stored.splice(index, 1)
        return true
      }
      // A still streaming state holds the text checkpointed: the text grown by deltas is newer.
      if (!(frame.streaming && entry.streaming && entry.message.length > frame.message.length)) entry.message = frame.message
      if (frame.edited !== undefined) entry.edited = frame.edited
      setReactions(entry, frame.reactions)
      setReplyAndMentions(entry, frame)
      setStream(entry, frame)
      const data = parseData(frame.message)
      if (data !== undefined) entry.data = data
      else delete entry.data
      return true
    },
    /** Grow a streaming message by a `delta` (docs/PROTOCOL.md, "Streaming messages"); true when its text changed (a repeat or a gap changes nothing). */
    applyDelta(delta: ChatDeltaFrame): boolean {
      const entry = this.get(delta.id)
      if (!entry?.streaming) return false
      const text = applyDelta(entry.message, delta)
      if (text === undefined || text === entry.message) return false
      entry.message = text
      return true
    },
    /** Apply an edit, delete or reaction to the message it targets, if held; true when something shown changed. */
    apply(event: ChatEventFrame | ChatReactionFrame): boolean {
      if (ids.has(event.id)) return false
      ids.add(event.id)
      const index = indexOf(event.target)
      const entry = stored[index]
      // Replies show their original's current text, held or not (a reply may outlive its original in the log).
      const requoted = event.type !== 'reaction' && !(event.type === 'edit' && (event.deleted || event.id <= (entry?.id === event.target ? entry.edited ?? 0 : 0))) && requote(event.target, event.type === 'delete' ? undefined : event.message)
      if (entry?.id !== event.target) return requoted
      // The state held (a replayed `rev`) already includes this change: a toggle applied twice would flip back.
      if (event.id <= (revs.get(event.target) ?? 0)) return false
      if (event.type === 'reaction') {
        // A page loaded late holds the state after this event already: applying it again changes nothing (sets, not counts).
        if (event.uid === undefined) return false
        setReactions(entry, withReaction(entry.reactedBy, event.emoji, event.uid, event.on))
        return true
      }
      if (event.type === 'delete') {
        stored.splice(index, 1)
        // A thread reply gone: its parent counts one less.
        const parent = entry.thread === undefined ? undefined : this.get(entry.thread)
        if (parent?.replies && parent.replies.count > 0) parent.replies = { ...parent.replies, count: parent.replies.count - 1 }
        return true
      }
      // An edit of a message deleted since (its delete follows), or older than the text held (a page loaded late).
      if (event.deleted || event.id <= (entry.edited ?? 0)) return false
      // Any edit of a streaming message is its end (its final text).
      if (entry.streaming || event.ended) setStream(entry, { incomplete: event.incomplete })
      entry.message = event.message
      // A stream's final text is no one's edit.
      if (!event.ended) entry.edited = event.id
      const data = parseData(event.message)
      if (data !== undefined) entry.data = data
      else delete entry.data
      return true
    },
    /** Show an outgoing message as pending until its echo arrives. */
    addPending(message: ChatMessage<T>) {
      message.pending = true
      const data = parseData(message.message)
      if (data !== undefined) message.data = data
      pending.set(message.cid!, message)
    },
    /** A pending message that will not be stored: shown as failed (it stays last, in send order). */
    markFailed(cid: string) {
      const entry = pending.get(cid)
      if (!entry) return
      delete entry.pending
      entry.failed = true
    },
    /** The stored entry with `id`, if held. */
    get(id: number): ChatMessage<T> | undefined {
      const entry = stored[indexOf(id)]
      return entry?.id === id ? entry : undefined
    },
    /** Stored entries above `id` that someone other than `me` sent (unread, when `id` is the read position). */
    countFromOthersAfter(id: number, me: string | undefined): number {
      let count = 0
      for (let index = indexOf(id + 1); index < stored.length; index++) if (stored[index]!.uid !== me && inMainTimeline(stored[index]!)) count++
      return count
    },
    /** Id of the newest stored entry, if any. */
    newestId: (): number | undefined => stored.at(-1)?.id,
    /** Id of the oldest stored entry of the main timeline, if any (where its older pages start). */
    oldestId: (): number | undefined => stored.find(inMainTimeline)?.id,
    /** Raise the cap by `count` entries: a page of older history stays while the user reads it. */
    keepOlder(count: number) {
      olderKept += count
    },
    /** Back to the newest `max` entries at the next `trim` (the user is back at the newest messages). */
    dropOlder() {
      olderKept = 0
    },
    /** Keep the newest `max` entries (pending ones count too), plus the older pages kept. */
    trim() {
      const excess = stored.length + pending.size - max - olderKept
      if (excess <= 0) return
      for (const entry of stored.splice(0, Math.min(excess, stored.length))) {
        ids.delete(entry.id!)
        revs.delete(entry.id!)
      }
    },
    /** The room's main timeline, pending messages last: thread replies only when also sent to the room. */
    entries(): ChatMessage<T>[] {
      return [...stored, ...pending.values()].filter(inMainTimeline)
    },
    /** A thread's replies held, oldest first, pending ones last. */
    threadEntries(parent: number): ChatMessage<T>[] {
      return [...stored, ...pending.values()].filter(entry => entry.thread === parent)
    },
    clear() {
      stored = []
      olderKept = 0
      ids.clear()
      revs.clear()
      pending.clear()
    },
  }
}

/** The room log: one ordered, durable list of messages per room, behind one small interface. */

/** A message as the log stores it. */
export interface StoredMessage {
  id: number
  room: string
  /** Display name at the time of sending. */
  user: string
  message: string
  ts: number
  cid?: string
  /** The sender's id (absent on messages stored before nuxt-chat 0.2, which did not keep it for guests). */
  uid?: string
  /** The sender was a guest. */
  guest?: true
}

/** What the hub hands the log to store. */
export interface AppendInput {
  room: string
  user: string
  /** Who sent it (user id or guest id): kept as the message's `uid`, and the `cid` de-duplication scope. */
  sender: string
  /** The sender is a guest. */
  guest?: boolean
  message: string
  ts: number
  cid?: string
}

export interface AppendResult {
  message: StoredMessage
  /** True when `cid` was already stored for this sender: nothing new was written. */
  duplicate: boolean
}

/** Retention of one room. */
export interface RetentionPolicy {
  /** Keep at most this many messages per room. */
  max: number
  /** Drop messages older than this many milliseconds (0: keep regardless of age). */
  maxAge: number
}

export interface RoomLog {
  /** Store a message; the log assigns its id (strictly increasing, contiguous within a room). */
  append: (input: AppendInput) => Promise<AppendResult>
  /**
   * Messages after `after`, oldest first: the newest `limit` of them.
   * With `after` undefined, the last `limit` messages of the room.
   */
  replaySince: (room: string, after: number | undefined, limit: number) => Promise<StoredMessage[]>
  /** Messages with `after < id < before`, oldest first (fills a delivery gap). */
  between: (room: string, after: number, before: number) => Promise<StoredMessage[]>
  /** The newest id of the room, 0 when empty. */
  lastId: (room: string) => Promise<number>
  /** Apply retention to one room. */
  prune: (room: string, policy: RetentionPolicy) => Promise<void>
  close: () => Promise<void>
}

/** The message an append stored, as the log gives it back. */
export function storedMessage(id: number, input: AppendInput): StoredMessage {
  const message: StoredMessage = { id, room: input.room, user: input.user, message: input.message, ts: input.ts }
  if (input.cid !== undefined) message.cid = input.cid
  if (input.sender) message.uid = input.sender
  if (input.guest) message.guest = true
  return message
}

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
}

/** What the hub hands the log to store. */
export interface AppendInput {
  room: string
  user: string
  /** Who sent it, for `cid` de-duplication: the identified user id, or '' for anonymous peers. */
  sender: string
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

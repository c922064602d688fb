import type { ChatErrorFrame, ChatUser } from '../../shared/protocol'
import { directPair, isMembership, isMuted, rankOf, type RoomDirectory, type RoomMember, type RoomRecord } from './roomMembers'

/** What a person wants in a room: read it (join, history, read state) or send to it. */
export type RoomNeed = 'read' | 'send'

/** The outcome of `RoomAccess.decide`. */
export type RoomAccessDecision
  = | { allowed: true, record?: RoomRecord, member?: RoomMember, moderator: boolean, unchecked?: true }
    | { allowed: false, status: 403 | 503, code: Extract<ChatErrorFrame['code'], 'forbidden' | 'muted' | 'unavailable'>, message: string, mutedUntil?: number }

/** How long a room's record, or a person's membership, is taken from the cache (ms); a change clears it at once (bus event `member`). */
export const ROOM_ACCESS_TTL = 5000
/** Entries kept at most, per kind; the oldest go first. */
export const MAX_ROOM_ACCESS_ENTRIES = 10_000
/** While the store cannot be read, an expired entry still answers for this long (ms). */
const STALE_IF_ERROR = 60_000
/** Rows of a direct room read to find its two people: it holds two, a room from before the rules a few more. */
const DIRECT_ROWS_READ = 100
/** The one text of every refusal that must not tell a private room, a ban and no room apart. */
export const NOT_ALLOWED = 'Not allowed in this room'

export interface RoomAccessOptions {
  store: Pick<RoomDirectory, 'roomRecord' | 'member' | 'members'>
  logger: { error: (message: string, error?: unknown) => void }
  /** The clock (tests). */
  now?: () => number
}

interface Cached<T> {
  at: number
  value: T | undefined
}

/** A bounded map of answers, oldest first out. */
function answerCache<T>() {
  const entries = new Map<string, Cached<T>>()
  return {
    entries,
    get: (key: string) => entries.get(key),
    set(key: string, value: T | undefined, at: number) {
      entries.delete(key)
      if (entries.size >= MAX_ROOM_ACCESS_ENTRIES) entries.delete(entries.keys().next().value!)
      entries.set(key, { at, value })
    },
  }
}

/**
 * The one admission point of a person to a room (docs/PROTOCOL.md, "Admission"): every upgrade,
 * stream, POST, history page, rooms list entry and message asks it. A room without a record is
 * public (every v1 room); a private room admits its members, a direct room its two people only;
 * a ban refuses everywhere; a mute refuses sending. Records, memberships and direct rooms' pairs
 * are cached briefly and boundedly; `forget` clears them.
 */
export function createRoomAccess({ store, logger, now = Date.now }: RoomAccessOptions) {
  const records = answerCache<RoomRecord>()
  const members = answerCache<RoomMember>()
  const pairs = answerCache<readonly string[]>()
  /** The store answered once: from then on, a read it cannot answer is refused. */
  let answered = false

  /** From the cache while fresh, else the store; an expired entry answers while the store fails. */
  async function cached<T>(cache: ReturnType<typeof answerCache<T>>, key: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
    const hit = cache.get(key)
    const at = now()
    if (hit && at - hit.at < ROOM_ACCESS_TTL) return hit.value
    try {
      const value = await read()
      answered = true
      cache.set(key, value, at)
      return value
    }
    catch (error) {
      if (hit && at - hit.at < STALE_IF_ERROR) return hit.value
      throw error
    }
  }

  const recordOf = (room: string) => cached(records, room, () => store.roomRecord(room))
  const memberOf = (room: string, uid: string) => cached(members, `${room}\n${uid}`, () => store.member(room, uid))
  /** A direct room's two people (its record's), found from every row it holds: a third row is nobody's way in. */
  const pairOf = async (room: string, record: RoomRecord) => await cached(pairs, room, async () => {
    const uids = (await store.members(room, undefined, DIRECT_ROWS_READ)).map(member => member.uid)
    return directPair(room, record.createdBy, uids)
  }) ?? []
  /** A `dm` record anywhere admits its two people only (none but under its `dm:` id). */
  const isDirect = (record: RoomRecord | undefined) => record?.kind === 'dm'

  /** The decision from what is known of the room (and of the person in it, for a recorded room). */
  function judge(room: string, record: RoomRecord | undefined, user: ChatUser, member: RoomMember | undefined, need: RoomNeed, pair?: readonly string[]): RoomAccessDecision {
    // A direct room exists only once made (a `dm:` name used before would let anyone leave messages in two people's future room),
    // and only as one: a record of another kind under `dm:` admits nobody.
    if (room.startsWith('dm:') && record?.kind !== 'dm') return REFUSED
    if (!record) return OPEN
    if (user.guest) return record.visibility === 'public' ? { allowed: true, record, moderator: false } : REFUSED
    if (member?.banned || (record.visibility === 'private' && !isMembership(member))) return REFUSED
    // A direct room is its two people's: a membership of anyone else (a legacy or hand-written row) admits to nothing.
    if (isDirect(record) && !pair?.includes(user.id)) return REFUSED
    if (need === 'send' && isMuted(member, now())) return { allowed: false, status: 403, code: 'muted', message: 'You are muted in this room', mutedUntil: member!.mutedUntil }
    return { allowed: true, record, member, moderator: rankOf(member) >= 2 }
  }

  /**
   * May `user` read or send in `room`? At once from the cache (every v1 room: one map look-up),
   * else a promise of the store's answer. Never throws: a store it cannot read answers `unavailable`.
   */
  function decide(room: string, user: ChatUser, need: RoomNeed): RoomAccessDecision | Promise<RoomAccessDecision> {
    const at = now()
    const record = records.get(room)
    if (record && at - record.at < ROOM_ACCESS_TTL) {
      if (!record.value || user.guest) return judge(room, record.value, user, undefined, need)
      const member = members.get(`${room}\n${user.id}`)
      if (member && at - member.at < ROOM_ACCESS_TTL) {
        if (!isDirect(record.value) || !isMembership(member.value)) return judge(room, record.value, user, member.value, need)
        const pair = pairs.get(room)
        if (pair && at - pair.at < ROOM_ACCESS_TTL) return judge(room, record.value, user, member.value, need, pair.value)
      }
    }
    return decideFromStore(room, user, need)
  }

  async function decideFromStore(room: string, user: ChatUser, need: RoomNeed): Promise<RoomAccessDecision> {
    try {
      const record = await recordOf(room)
      const member = record && !user.guest ? await memberOf(room, user.id) : undefined
      // Read only for a member (anyone else is refused without it).
      const pair = isDirect(record) && isMembership(member) ? await pairOf(room, record!) : undefined
      return judge(room, record, user, member, need, pair)
    }
    catch (error) {
      logger.error('[nuxt-chat] could not read a room\'s members', error)
      // A store down since boot holds nothing to show: v1 rooms stay joinable (as before records), checked again once it answers.
      if (!answered && need === 'read' && !room.startsWith('dm:')) return { allowed: true, moderator: false, unchecked: true }
      return { allowed: false, status: 503, code: 'unavailable', message: 'The room could not be checked; try again' }
    }
  }

  return {
    decide,
    /** The room's record (cached as `decide` caches it). */
    record: recordOf,
    /** A person's membership of a room (cached as `decide` caches it; banned ones included). */
    member: memberOf,
    /** The two people of a direct room, as `decide` admits them (cached as it caches them); empty for any other room. */
    async pair(room: string): Promise<readonly string[]> {
      const record = await recordOf(room)
      return isDirect(record) ? await pairOf(room, record!) : []
    },
    /** Forget what is cached of a room (a record change), or of one person in it (a membership change). */
    forget(room: string, uid?: string) {
      // Any row of a direct room may be one of its two people's.
      pairs.entries.delete(room)
      // A room known to have no record may have one now (made with its first members).
      if (uid === undefined || uid === '' || records.get(room)?.value === undefined) records.entries.delete(room)
      if (uid === undefined || uid === '') {
        const prefix = `${room}\n`
        for (const key of members.entries.keys()) if (key.startsWith(prefix)) members.entries.delete(key)
      }
      else {
        members.entries.delete(`${room}\n${uid}`)
      }
    },
  }
}

const REFUSED: RoomAccessDecision = Object.freeze({ allowed: false, status: 403, code: 'forbidden', message: NOT_ALLOWED })
const OPEN: RoomAccessDecision = Object.freeze({ allowed: true, moderator: false })

export type RoomAccess = ReturnType<typeof createRoomAccess>

import type { ChatRoomState, ChatUser } from '../../shared/protocol'
import { membershipOf, type RoomDirectory, type RoomMember, type RoomRecord } from './roomMembers'

/** What a rooms list shows of a room besides its read state (docs/PROTOCOL.md, "Rooms list"). */
export type RoomDescription = Pick<ChatRoomState, 'title' | 'kind' | 'visibility' | 'with' | 'role'>

/** Names kept per instance, at most this many; the oldest go first. */
const MAX_KEPT = 10_000
/** How long a name read from the store is taken as current (another instance may have seen a new one). */
const NAME_TTL = 60_000

export interface RoomListingOptions {
  store: Pick<RoomDirectory, 'saveUserName' | 'userNames'>
  /** The room's record, cached as admission caches it. */
  recordOf: (room: string) => Promise<RoomRecord | undefined>
  /** A person's membership, cached as admission caches it. */
  memberOf?: (room: string, uid: string) => Promise<RoomMember | undefined>
  /** A direct room's two people, as admission finds them (never a third member). */
  pairOf: (room: string) => Promise<readonly string[]>
  logger: { error: (message: string, error?: unknown) => void }
  now?: () => number
}

/** A bounded map, oldest first out. */
function bounded<V>() {
  const entries = new Map<string, V>()
  return {
    get: (key: string) => entries.get(key),
    set(key: string, value: V) {
      entries.delete(key)
      if (entries.size >= MAX_KEPT) entries.delete(entries.keys().next().value!)
      entries.set(key, value)
    },
  }
}

/**
 * Rooms as a rooms list names them: a record's title, kind and visibility, and a direct room
 * titled with the other member's name as last seen. Names are written when a signed-in user
 * joins with a name other than the one this instance knows.
 */
export function createRoomListing({ store, recordOf, memberOf = async () => undefined, pairOf, logger, now = Date.now }: RoomListingOptions) {
  const names = bounded<{ name: string, at: number }>()

  async function nameOf(uid: string): Promise<string | undefined> {
    const known = names.get(uid)
    if (known && now() - known.at < NAME_TTL) return known.name
    const name = (await store.userNames([uid])).get(uid)
    if (name !== undefined) names.set(uid, { name, at: now() })
    return name
  }

  return {
    /** A signed-in user joined a room: keep their name if it is new here; the promise settles once it is stored (undefined: nothing to store). */
    seen(user: ChatUser): Promise<void> | undefined {
      if (user.guest || names.get(user.id)?.name === user.name) return undefined
      names.set(user.id, { name: user.name, at: now() })
      return store.saveUserName(user.id, user.name, now()).catch(error => logger.error('[nuxt-chat] could not keep a user\'s name', error))
    },

    /** A signed-in user's message names them as they are now: taken as current here (their join stores it, maybe after another instance reads). */
    heard(uid: string, name: string) {
      if (names.get(uid)?.name !== name) names.set(uid, { name, at: now() })
    },

    /** What `uid`'s rooms list shows of `room`: nothing for a room without a record. */
    async describe(room: string, uid: string): Promise<RoomDescription> {
      const record = await recordOf(room)
      if (!record) return {}
      const { role } = membershipOf(await memberOf(room, uid))
      const mine = role ? { role } : {}
      if (record.kind !== 'dm') return { title: record.title, kind: record.kind, visibility: record.visibility, ...mine }
      const other = (await pairOf(room)).find(member => member !== uid) ?? uid
      return { title: await nameOf(other) ?? other, kind: 'dm', visibility: 'private', with: other, ...mine }
    },
  }
}

import { presenceDiffFrame, presenceFrame, type ChatUser } from '../../shared/protocol'

/** Up to this many local users a room keeps them in an array (scanned by id), past it in a map: 20 users in a map's table take ~940 B, in an array 176 B. */
const SMALL_ROOM = 32

/** Users another instance announced, until `expires`. */
interface Announcement {
  users: ChatUser[]
  expires: number
}

/**
 * Who is in one room: this instance's users (two tabs of one user are one entry) and the users
 * other instances announced, until those announcements expire. A newcomer gets the full list
 * once; everyone else only hears what changed (docs/PROTOCOL.md, "Presence in deltas").
 * A class, not an object of closures, and what most rooms never use is made on first use:
 * one stays with every room, and a room is a few connections' worth of memory.
 */
export class RoomPresence {
  // Set in the constructor: in-object slots.
  declare private readonly room: string
  /** Local users (the user of their first connection here): an exact-length array in a small room, by id in a large one. */
  declare private local: ChatUser[] | Map<string, ChatUser>
  /** Connections beyond the first, by user id: most users have one, and most rooms none (made on first use). */
  declare private moreConnections: Map<string, number> | undefined
  /** Users on other instances, by instance id (made on first use: one instance has none). */
  declare private remote: Map<string, Announcement> | undefined
  /** The list as the room last heard it: diffs are taken against it (an array: a map per room would double the local one). */
  declare private shown: ChatUser[]
  /** Local users changed, or another instance spoke, since the last diff (else a diff finds nothing: the timer skips the room). */
  declare private changed: boolean
  /** Signed-in names online, until the users change or an announcement may expire (asked once per guest join). */
  declare private signedIn: { names: string[], until: number } | undefined
  /** Local users who are signed in: a room of guests has no names to list, however many join (a storm of guests made it per join). */
  declare private signedInLocal: number

  constructor(room: string) {
    this.room = room
    this.local = []
    this.moreConnections = undefined
    this.remote = undefined
    this.shown = []
    this.changed = false
    this.signedIn = undefined
    this.signedInLocal = 0
  }

  /** Someone came, went, or was announced: the next diff looks, and the signed-in names are made again. */
  private usersChanged() {
    this.changed = true
    this.signedIn = undefined
  }

  /** Is a connection of the user with this id counted here? */
  private isLocal(id: string): boolean {
    const local = this.local
    return Array.isArray(local) ? local.some(user => user.id === id) : local.has(id)
  }

  /** Everyone online, local first; drops instances that went quiet. Read only: with no other instance and many users, the local map itself. */
  private current(now: number): ReadonlyMap<string, ChatUser> {
    const remote = this.remote
    const local = this.local
    if (!remote?.size && !Array.isArray(local)) return local
    const users = Array.isArray(local) ? new Map(local.map(user => [user.id, user])) : new Map(local)
    if (!remote) return users
    for (const [origin, entry] of remote) {
      if (entry.expires < now) {
        remote.delete(origin)
        continue
      }
      for (const user of entry.users) if (!users.has(user.id)) users.set(user.id, user)
    }
    return users
  }

  /** Count a connection of `user`; true when it is the user's first here. */
  connect(user: ChatUser): boolean {
    if (this.isLocal(user.id)) {
      const more = this.moreConnections ??= new Map()
      more.set(user.id, (more.get(user.id) ?? 0) + 1)
      return false
    }
    const local = this.local
    if (!Array.isArray(local)) local.set(user.id, user)
    // `concat` allocates the exact length (a push leaves spare slots in every room).
    else if (local.length < SMALL_ROOM) this.local = local.concat(user)
    else this.local = new Map([...local, user].map(each => [each.id, each]))
    if (!user.guest) this.signedInLocal++
    this.usersChanged()
    return true
  }

  /** Uncount a connection of `user`; true when it was the user's last here. */
  disconnect(user: ChatUser): boolean {
    if (!this.isLocal(user.id)) return false
    const more = this.moreConnections?.get(user.id)
    if (more) {
      if (more > 1) this.moreConnections!.set(user.id, more - 1)
      else this.moreConnections!.delete(user.id)
      return false
    }
    const local = this.local
    // A large room that emptied goes back to an array (rooms are kept while anyone is in them).
    if (!Array.isArray(local)) {
      local.delete(user.id)
      if (local.size === 0) this.local = []
    }
    else {
      // `slice` and `concat` allocate the exact length (`filter` leaves spare slots).
      const at = local.findIndex(each => each.id === user.id)
      this.local = local.slice(0, at).concat(local.slice(at + 1))
    }
    if (!user.guest) this.signedInLocal--
    this.usersChanged()
    return true
  }

  /** Display names of the signed-in users (not guests) online here and on other instances. */
  signedInNames(): string[] {
    if (!this.signedInLocal && !this.remote?.size) return []
    const now = Date.now()
    const signedIn = this.signedIn
    if (signedIn && now <= signedIn.until) return signedIn.names
    let until = Infinity
    for (const entry of this.remote?.values() ?? []) until = Math.min(until, entry.expires)
    const names = [...this.current(now).values()].filter(user => !user.guest).map(user => user.name)
    this.signedIn = { names, until }
    return names
  }

  /** Everyone online in the room, here and on other instances. */
  online(): ChatUser[] {
    return [...this.current(Date.now()).values()]
  }

  /** This instance's users, as announced to the others. */
  localUsers(): ChatUser[] {
    return [...this.local.values()]
  }

  /** What another instance announced; it holds until `expires`. */
  heardFrom(origin: string, users: ChatUser[], expires: number) {
    (this.remote ??= new Map()).set(origin, { users, expires })
    this.usersChanged()
  }

  /**
   * The `presence_diff` frame's text for what changed since the room last heard, or
   * `undefined` when nothing did; the room is then taken to know the new list.
   */
  diffFrame(now = Date.now()): string | undefined {
    // Nothing local changed and no other instance's users may expire: nothing to tell.
    if (!this.changed && !this.remote?.size) return undefined
    this.changed = false
    const users = this.current(now)
    const joins: ChatUser[] = []
    const leaves: ChatUser[] = []
    const before = new Map<string, ChatUser>()
    for (const user of this.shown) {
      before.set(user.id, user)
      // A new name for the same id counts as a leave and a join, so clients show the new one.
      if (users.get(user.id)?.name !== user.name) leaves.push(user)
    }
    for (const [id, user] of users) {
      if (before.get(id)?.name !== user.name) joins.push(user)
    }
    if (!joins.length && !leaves.length) return undefined
    this.shown = [...users.values()]
    return JSON.stringify(presenceDiffFrame(this.room, joins, leaves, users.size))
  }

  /** Text of the full `presence` frame of the list the room last heard: for a turn's newcomers (made once per turn, not kept). */
  fullFrame(): string {
    return JSON.stringify(presenceFrame(this.room, this.shown))
  }
}

/** The presence of one room. */
export function createRoomPresence(room: string): RoomPresence {
  return new RoomPresence(room)
}

/** Users announced by another instance; anything malformed counts as none. */
export function parseUsers(text: string): ChatUser[] {
  let users: unknown
  try {
    users = JSON.parse(text)
  }
  catch {
    return []
  }
  if (!Array.isArray(users)) return []
  return users.flatMap((user) => {
    if (typeof user?.id !== 'string' || typeof user?.name !== 'string') return []
    // Only the fields a user has: nothing else another instance sends is passed on to clients.
    return [user.guest === true ? { id: user.id, name: user.name, guest: true as const } : { id: user.id, name: user.name }]
  })
}

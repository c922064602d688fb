import { presenceDiffFrame, presenceFrame, type ChatUser } from '../../shared/protocol'

/**
 * Who is in one room: this instance's users (two tabs of one user are one entry) and the users
 * other instances announced, until those announcements expire. A newcomer gets the full list
 * once; everyone else only hears what changed (docs/PROTOCOL.md, "Presence in deltas").
 */
export function createRoomPresence(room: string) {
  /** Local users by id (the user of their first connection here). */
  const local = new Map<string, ChatUser>()
  /** Connections beyond the first, by user id: most users have one, and no count object each. */
  const moreConnections = new Map<string, number>()
  /** Users on other instances, by instance id, until `expires`. */
  const remote = new Map<string, { users: ChatUser[], expires: number }>()
  /** The list as the room last heard it, by id: diffs are taken against it. */
  let shown = new Map<string, ChatUser>()
  /** Text of the full presence frame of `shown`, made on first use after each change. */
  let fullText: string | undefined
  /** Local users changed, or another instance spoke, since the last diff (else a diff finds nothing: the timer skips the room). */
  let changed = false
  /** Signed-in names online, until the users change or an announcement may expire (asked once per guest join). */
  let signedIn: { names: string[], until: number } | undefined

  /** Someone came, went, or was announced: the next diff looks, and the signed-in names are made again. */
  function usersChanged() {
    changed = true
    signedIn = undefined
  }

  /** Everyone online, local first; drops instances that went quiet. */
  function current(now: number): Map<string, ChatUser> {
    const users = new Map<string, ChatUser>()
    for (const user of local.values()) users.set(user.id, user)
    for (const [origin, entry] of remote) {
      if (entry.expires < now) {
        remote.delete(origin)
        continue
      }
      for (const user of entry.users) if (!users.has(user.id)) users.set(user.id, user)
    }
    return users
  }

  return {
    /** Count a connection of `user`; true when it is the user's first here. */
    connect(user: ChatUser): boolean {
      if (local.has(user.id)) {
        moreConnections.set(user.id, (moreConnections.get(user.id) ?? 0) + 1)
        return false
      }
      local.set(user.id, user)
      usersChanged()
      return true
    },
    /** Uncount a connection of `user`; true when it was the user's last here. */
    disconnect(user: ChatUser): boolean {
      if (!local.has(user.id)) return false
      const more = moreConnections.get(user.id)
      if (more) {
        if (more > 1) moreConnections.set(user.id, more - 1)
        else moreConnections.delete(user.id)
        return false
      }
      local.delete(user.id)
      usersChanged()
      return true
    },
    /** Display names of the signed-in users (not guests) online here and on other instances. */
    signedInNames(): string[] {
      const now = Date.now()
      if (signedIn && now <= signedIn.until) return signedIn.names
      let until = Infinity
      for (const entry of remote.values()) until = Math.min(until, entry.expires)
      const names = [...current(now).values()].filter(user => !user.guest).map(user => user.name)
      signedIn = { names, until }
      return names
    },
    /** Everyone online in the room, here and on other instances. */
    online: (): ChatUser[] => [...current(Date.now()).values()],
    /** This instance's users, as announced to the others. */
    localUsers: (): ChatUser[] => [...local.values()],
    /** What another instance announced; it holds until `expires`. */
    heardFrom(origin: string, users: ChatUser[], expires: number) {
      remote.set(origin, { users, expires })
      usersChanged()
    },
    /**
     * The `presence_diff` frame's text for what changed since the room last heard, or
     * `undefined` when nothing did; the room is then taken to know the new list.
     */
    diffFrame(now = Date.now()): string | undefined {
      // Nothing local changed and no other instance's users may expire: nothing to tell.
      if (!changed && !remote.size) return undefined
      changed = false
      const users = current(now)
      const joins: ChatUser[] = []
      const leaves: ChatUser[] = []
      for (const [id, user] of shown) {
        // A new name for the same id counts as a leave and a join, so clients show the new one.
        if (users.get(id)?.name !== user.name) leaves.push(user)
      }
      for (const [id, user] of users) {
        const before = shown.get(id)
        if (!before || before.name !== user.name) joins.push(user)
      }
      if (!joins.length && !leaves.length) return undefined
      shown = users
      fullText = undefined
      return JSON.stringify(presenceDiffFrame(room, joins, leaves, users.size))
    },
    /** Text of the full `presence` frame of the list the room last heard: for a newcomer. */
    fullFrame(): string {
      return fullText ??= JSON.stringify(presenceFrame(room, [...shown.values()]))
    },
  }
}

export type RoomPresence = ReturnType<typeof createRoomPresence>

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

import { presenceFrame, type ChatUser } from '../../shared/protocol'

/**
 * Who is in one room: this instance's users (two tabs of one user are one entry) and the users
 * other instances announced, until those announcements expire.
 */
export function createRoomPresence(room: string) {
  /** Local users by id, with how many connections each has. */
  const local = new Map<string, { user: ChatUser, connections: number }>()
  /** Users on other instances, by instance id, until `expires`. */
  const remote = new Map<string, { users: ChatUser[], expires: number }>()
  /** Text of the last presence frame sent, to skip unchanged ones. */
  let shownText = ''

  /** Everyone online, local first; drops instances that went quiet. */
  function list(now = Date.now()): ChatUser[] {
    const users = new Map<string, ChatUser>()
    for (const { user } of local.values()) users.set(user.id, user)
    for (const [origin, entry] of remote) {
      if (entry.expires < now) {
        remote.delete(origin)
        continue
      }
      for (const user of entry.users) if (!users.has(user.id)) users.set(user.id, user)
    }
    return [...users.values()]
  }

  return {
    /** Count a connection of `user`; true when it is the user's first here. */
    connect(user: ChatUser): boolean {
      const entry = local.get(user.id)
      if (entry) entry.connections++
      else local.set(user.id, { user, connections: 1 })
      return !entry
    },
    /** Uncount a connection of `user`; true when it was the user's last here. */
    disconnect(user: ChatUser): boolean {
      const entry = local.get(user.id)
      if (!entry || --entry.connections > 0) return false
      local.delete(user.id)
      return true
    },
    /** Display names of the signed-in users (not guests) online here and on other instances. */
    signedInNames: (): string[] => list().filter(user => !user.guest).map(user => user.name),
    /** This instance's users, as announced to the others. */
    localUsers: (): ChatUser[] => [...local.values()].map(entry => entry.user),
    /** What another instance announced; it holds until `expires`. */
    heardFrom(origin: string, users: ChatUser[], expires: number) {
      remote.set(origin, { users, expires })
    },
    /** The presence frame's text when the list changed since the last one sent, else `undefined`. */
    changedFrame(): string | undefined {
      const text = JSON.stringify(presenceFrame(room, list()))
      if (text === shownText) return undefined
      shownText = text
      return text
    },
    /** Text of the last presence frame sent. */
    get shownText() {
      return shownText
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

import type { RoomDirectory, RoomMember, RoomRecord } from './roomMembers'

/** Rooms' records and members in process memory (the memory room log's part of `RoomDirectory`). */
export function createMemoryRoomDirectory(): RoomDirectory & {
  clear: () => void
  isKept: (room: string, uid: string) => boolean
  dropPlainMember: (room: string, uid: string) => void
  memberOf: (uid: string) => RoomMember[]
} {
  const records = new Map<string, RoomRecord>()
  /** room → uid → membership. */
  const members = new Map<string, Map<string, RoomMember>>()
  /** uid → the rooms they have a row in (a list is one person's memberships). */
  const roomsOf = new Map<string, Set<string>>()
  /** uid → name as last seen. */
  const names = new Map<string, string>()
  // Copies in and out: a caller changing what it got must not change the store.
  const copy = <T extends object>(value: T | undefined): T | undefined => value && { ...value }
  const save = (member: RoomMember) => {
    let room = members.get(member.room)
    if (!room) members.set(member.room, room = new Map())
    room.set(member.uid, { ...member })
    let mine = roomsOf.get(member.uid)
    if (!mine) roomsOf.set(member.uid, mine = new Set())
    mine.add(member.room)
  }
  const remove = (room: string, uid: string) => {
    const mine = roomsOf.get(uid)
    mine?.delete(room)
    if (!mine?.size) roomsOf.delete(uid)
    return members.get(room)?.delete(uid) ?? false
  }
  return {
    async roomRecord(room) {
      return copy(records.get(room))
    },
    async createRoom(record) {
      if (records.has(record.id)) return false
      records.set(record.id, { ...record })
      return true
    },
    async updateRoom(room, fields) {
      const record = records.get(room)
      if (!record) return false
      for (const key of ['title', 'topic', 'visibility'] as const) {
        if (fields[key] !== undefined) (record as unknown as Record<string, unknown>)[key] = fields[key]
      }
      return true
    },
    async member(room, uid) {
      return copy(members.get(room)?.get(uid))
    },
    async members(room, after, limit) {
      return [...members.get(room)?.values() ?? []].filter(member => after === undefined || member.uid > after).sort((a, b) => a.uid < b.uid ? -1 : 1).slice(0, limit).map(member => ({ ...member }))
    },
    async saveMember(member) {
      save(member)
    },
    async addMemberIfAbsent(member) {
      if (members.get(member.room)?.has(member.uid)) return false
      save(member)
      return true
    },
    async deleteMember(room, uid) {
      return remove(room, uid)
    },
    async saveUserName(uid, name) {
      names.set(uid, name)
    },
    async userNames(uids) {
      return new Map(uids.flatMap(uid => names.has(uid) ? [[uid, names.get(uid)!] as const] : []))
    },
    async memberNames(room, limit) {
      const found: { uid: string, name: string }[] = []
      for (const member of members.get(room)?.values() ?? []) {
        if (found.length >= limit) break
        if (!member.banned) found.push({ uid: member.uid, name: names.get(member.uid) ?? '' })
      }
      return found
    },
    /** A membership the position cap and retention never take: a role above `member`, or a private room's. */
    isKept(room, uid) {
      const member = members.get(room)?.get(uid)
      return member !== undefined && !member.banned && (member.role !== 'member' || records.get(room)?.visibility === 'private')
    },
    /** A plain membership goes with its position (cap, retention); a ban stays. */
    dropPlainMember(room, uid) {
      const member = members.get(room)?.get(uid)
      if (member && !member.banned && member.role === 'member') remove(room, uid)
    },
    /** Every membership of a person (not a ban), copied. */
    memberOf(uid) {
      return [...roomsOf.get(uid) ?? []].flatMap(room => members.get(room)?.get(uid) ?? []).filter(member => !member.banned).map(member => ({ ...member }))
    },
    clear() {
      records.clear()
      members.clear()
      roomsOf.clear()
      names.clear()
    },
  }
}

import { isMembership, isMuted, type RoomDirectory, type RoomMember, type RoomRecord } from './roomMembers'

/** Rooms' records and members in process memory (the memory room log's part of `RoomDirectory`). */
export function createMemoryRoomDirectory(): RoomDirectory & {
  clear: () => void
  isKept: (room: string, uid: string) => boolean
  dropPlainMember: (room: string, uid: string, now: number) => void
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
  /** A membership ends: its row goes, or stays as a mute-only row while its mute lasts. */
  const end = (member: RoomMember, now: number) => {
    if (isMuted(member, now)) members.get(member.room)!.set(member.uid, { room: member.room, uid: member.uid, role: 'member', joinedAt: member.joinedAt, mutedUntil: member.mutedUntil, muteOnly: true })
    else remove(member.room, member.uid)
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
      const held = members.get(member.room)?.get(member.uid)
      if (held && !held.muteOnly) return false
      // A mute-only row becomes the membership: the mute stays until it ends.
      save(held ? { ...member, mutedUntil: held.mutedUntil } : member)
      return true
    },
    async deleteMember(room, uid) {
      return remove(room, uid)
    },
    async endMembership(room, uid, now) {
      const member = members.get(room)?.get(uid)
      if (!member || !isMembership(member)) return false
      end(member, now)
      return true
    },
    async pruneEndedMutes(now, limit) {
      let pruned = 0
      for (const room of members.values()) {
        for (const member of [...room.values()]) {
          if (pruned >= limit) return pruned
          if (!member.muteOnly || member.banned || isMuted(member, now)) continue
          remove(member.room, member.uid)
          pruned++
        }
      }
      return pruned
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
        if (isMembership(member)) found.push({ uid: member.uid, name: names.get(member.uid) ?? '' })
      }
      return found
    },
    /** A membership the position cap and retention never take: a role above `member`, or a private room's. */
    isKept(room, uid) {
      const member = members.get(room)?.get(uid)
      return member !== undefined && isMembership(member) && (member.role !== 'member' || records.get(room)?.visibility === 'private')
    },
    /** A plain membership goes with its position (cap, retention); a ban stays, and so does a mute until it ends. */
    dropPlainMember(room, uid, now) {
      const member = members.get(room)?.get(uid)
      if (member && isMembership(member) && member.role === 'member') end(member, now)
    },
    /** Every membership of a person (not a ban, not a mute-only row), copied. */
    memberOf(uid) {
      return [...roomsOf.get(uid) ?? []].flatMap(room => members.get(room)?.get(uid) ?? []).filter(isMembership).map(member => ({ ...member }))
    },
    clear() {
      records.clear()
      members.clear()
      roomsOf.clear()
      names.clear()
    },
  }
}

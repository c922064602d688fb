import type { RoomDirectory, RoomMember, RoomRecord } from './roomMembers'

/** Rooms' records and members in process memory (the memory room log's part of `RoomDirectory`). */
export function createMemoryRoomDirectory(): RoomDirectory & { clear: () => void, isMember: (room: string, uid: string) => boolean } {
  const records = new Map<string, RoomRecord>()
  /** room → uid → membership. */
  const members = new Map<string, Map<string, RoomMember>>()
  /** uid → name as last seen. */
  const names = new Map<string, string>()
  // Copies in and out: a caller changing what it got must not change the store.
  const copy = <T extends object>(value: T | undefined): T | undefined => value && { ...value }
  const save = (member: RoomMember) => {
    let room = members.get(member.room)
    if (!room) members.set(member.room, room = new Map())
    room.set(member.uid, { ...member })
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
      return members.get(room)?.delete(uid) ?? false
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
    /** A membership, not a ban (at once: the memory log's position rules ask it in a loop). */
    isMember(room, uid) {
      const member = members.get(room)?.get(uid)
      return member !== undefined && !member.banned
    },
    clear() {
      records.clear()
      members.clear()
      names.clear()
    },
  }
}

import { createHash } from 'node:crypto'
import { isStorableText, MAX_TIME, type ChatMemberAction } from '../../shared/protocol'
import { cleanShownText } from './names'

/** Rooms with members (docs/PROTOCOL.md, "Rooms and members"): the stored shapes and the role rules, free of any store. */

export type RoomVisibility = 'public' | 'private'
export type RoomKind = 'room' | 'dm'
export type MemberRole = 'owner' | 'moderator' | 'member'

/** A stored room record. A room name without one is a public room (every v1 room). */
export interface RoomRecord {
  id: string
  title: string
  topic: string
  visibility: RoomVisibility
  kind: RoomKind
  /** Who made it; `null` for a room made by nobody (a moderator's first act in a v1 room). */
  createdBy: string | null
  createdAt: number
}

/** A person's membership of a room. */
export interface RoomMember {
  room: string
  uid: string
  role: MemberRole
  joinedAt: number
  /** Epoch ms until which they may read but not send. */
  mutedUntil?: number
  /** Refused in the room; the row stays so they cannot come back. */
  banned?: true
  /**
   * No membership: the row only keeps a mute until it ends (of someone who left, was removed or
   * evicted while muted, or was muted without being a member). Admits nowhere, lists nothing;
   * its `role` is `member`.
   */
  muteOnly?: true
}

/** The store's side of rooms and members (part of `RoomLog`). */
export interface RoomDirectory {
  /** The room's record, undefined when it has none. */
  roomRecord: (room: string) => Promise<RoomRecord | undefined>
  /** Store a new record; false when the room already had one (nothing changed). */
  createRoom: (record: RoomRecord) => Promise<boolean>
  /** Change a record's title, topic or visibility; false when the room has none. */
  updateRoom: (room: string, fields: Partial<Pick<RoomRecord, 'title' | 'topic' | 'visibility'>>) => Promise<boolean>
  /** A person's membership (banned ones included), undefined when they have none. */
  member: (room: string, uid: string) => Promise<RoomMember | undefined>
  /** Up to `limit` members of the room in id order after `after` (banned ones included). */
  members: (room: string, after: string | undefined, limit: number) => Promise<RoomMember[]>
  /** Store a membership as it is given (insert or replace). */
  saveMember: (member: RoomMember) => Promise<void>
  /** Store a membership unless the person has one (or a ban): a mute-only row becomes it, keeping its mute; false when nothing was stored. */
  addMemberIfAbsent: (member: RoomMember) => Promise<boolean>
  /** Delete a row (a membership, a ban, a mute-only row); true when there was one. */
  deleteMember: (room: string, uid: string) => Promise<boolean>
  /**
   * End a membership (never a ban): the row goes, unless it holds a mute not ended at `now`: then
   * it stays as a mute-only row (`muteOnly`, role `member`). True when a membership ended.
   */
  endMembership: (room: string, uid: string, now: number) => Promise<boolean>
  /** Delete up to `limit` mute-only rows whose mute ended by `now` (retention; never a membership, a ban, or a mute still running): how many went. */
  pruneEndedMutes: (now: number, limit: number) => Promise<number>
  /** Keep a signed-in user's name as last seen (a direct room's title for the other member). */
  saveUserName: (uid: string, name: string, seenAt: number) => Promise<void>
  /** The names kept of these users (those it has). */
  userNames: (uids: string[]) => Promise<Map<string, string>>
  /** The room's members (not banned) with their kept names (`''`: none kept), at most `limit`: what `@name` resolves against. */
  memberNames: (room: string, limit: number) => Promise<{ uid: string, name: string }[]>
}

const RANK: Record<MemberRole, number> = { owner: 3, moderator: 2, member: 1 }
export const MEMBER_ROLES: readonly MemberRole[] = ['owner', 'moderator', 'member']
/** Longest title and topic a record keeps (UTF-16 code units). */
export const MAX_ROOM_TITLE = 200
export const MAX_ROOM_TOPIC = 1000
/** Longest user id a membership (or `?dm=`) takes. */
export const MAX_MEMBER_ID = 256
/** A mute without an end: the latest time a `Date` holds, so a client can show it (docs/PROTOCOL.md, "Times"). */
export const MUTED_FOREVER = MAX_TIME

/** A role's rank: 0 for anything but owner, moderator and member (a store's odd row ranks as no membership). */
function roleRank(role: unknown): number {
  return typeof role === 'string' && Object.hasOwn(RANK, role) ? RANK[role as MemberRole] : 0
}

/** Is the row a membership (not a ban, not a mute-only row)? */
export function isMembership(member: Pick<RoomMember, 'banned' | 'muteOnly'> | undefined): boolean {
  return member !== undefined && !member.banned && !member.muteOnly
}

/** A role's rank; no membership (a ban, a mute-only row) ranks 0. */
export function rankOf(member: Pick<RoomMember, 'role' | 'banned' | 'muteOnly'> | undefined): number {
  return member && isMembership(member) ? roleRank(member.role) : 0
}

/**
 * The role rules: may `actor` do `action` to `subject` (their memberships, undefined for none)?
 * Owners and moderators invite, remove, mute, ban and unban; only owners set roles (`role`: the
 * new one); nobody acts on someone of the same or a higher role.
 */
export function mayAct(action: ChatMemberAction, actor: RoomMember | undefined, subject: RoomMember | undefined, role?: MemberRole): boolean {
  const rank = rankOf(actor)
  if (rank < RANK.moderator) return false
  // A banned subject ranks by the role the row keeps: a moderator cannot lift an owner's ban of another moderator.
  const subjectRank = subject && !subject.muteOnly ? roleRank(subject.role) : 0
  switch (action) {
    case 'invite': return !subject || subject.muteOnly === true
    case 'unban': return subject?.banned === true && subjectRank < rank
    case 'role': return rank === RANK.owner && subjectRank < rank && role !== undefined && isMembership(subject)
    default: return subjectRank < rank
  }
}

/** The record rule: owners change a room's title, topic and visibility; moderators its title and topic. */
export function mayUpdate(actor: RoomMember | undefined, fields: { visibility?: unknown }): boolean {
  const rank = rankOf(actor)
  return rank === RANK.owner || (rank === RANK.moderator && fields.visibility === undefined)
}

/** Is the member muted at `now`? */
export function isMuted(member: RoomMember | undefined, now = Date.now()): boolean {
  return member?.mutedUntil !== undefined && member.mutedUntil > now
}

/** What a person is told of their membership on joining a room (`welcome` / `joined`): the role of a membership, the mute while it lasts (a mute-only row's too). */
export function membershipOf(member: RoomMember | undefined, now = Date.now()): { role?: MemberRole, mutedUntil?: number } {
  if (!member || member.banned) return {}
  const role = member.muteOnly ? {} : { role: member.role }
  return isMuted(member, now) ? { ...role, mutedUntil: member.mutedUntil } : role
}

/**
 * The direct room of two users: `dm:` + 22 base64url characters of SHA-256 of their ids sorted
 * and joined by NUL, so both sides compute the same id (NUL cannot be in an id, so no two pairs share one).
 */
export function directRoomId(userA: string, userB: string): string {
  const [first, second] = [userA, userB].sort()
  return `dm:${createHash('sha256').update(`${first}\0${second}`).digest('base64url').slice(0, 22)}`
}

/**
 * The two people of the direct room `room`: the two of `uids` (its members' ids) and `createdBy`
 * (its maker, one of them) whose ids hash to its id. While the maker's partner has no row, the
 * maker alone; empty when nothing held hashes to it (docs/PROTOCOL.md, "Direct messages").
 */
export function directPair(room: string, createdBy: string | null, uids: readonly string[]): string[] {
  const partner = createdBy === null ? undefined : uids.find(uid => uid !== createdBy && directRoomId(createdBy, uid) === room)
  if (partner !== undefined) return [createdBy!, partner]
  // A maker that is not one of the two (a record written by hand): the two among the members, if there.
  for (const [index, first] of uids.entries()) {
    for (const second of uids.slice(index + 1)) if (directRoomId(first, second) === room) return [first, second]
  }
  return createdBy === null ? [] : [createdBy]
}

/** Why `uid` cannot be a member (or the other side of a direct room), or undefined. */
export function memberIdProblem(uid: unknown): string | undefined {
  if (typeof uid !== 'string' || !uid || uid.length > MAX_MEMBER_ID || [...uid].some(char => char.charCodeAt(0) < 32 || char.charCodeAt(0) === 127)) return `a user id is 1-${MAX_MEMBER_ID} characters without control characters`
  if (uid.startsWith('guest:')) return 'guests cannot be members of a room'
  return undefined
}

/** Record fields as shown: a title and topic without invisible characters (docs/PROTOCOL.md, "Names and titles"). */
export function cleanRoomFields<T extends Partial<Pick<RoomRecord, 'title' | 'topic' | 'visibility'>>>(fields: T): T {
  const cleaned = { ...fields }
  if (typeof cleaned.title === 'string') cleaned.title = cleanShownText(cleaned.title)
  if (typeof cleaned.topic === 'string') cleaned.topic = cleanShownText(cleaned.topic, { lines: true })
  return cleaned
}

/** Why these record fields cannot be stored, or undefined. */
export function roomFieldsProblem(fields: Partial<Pick<RoomRecord, 'title' | 'topic' | 'visibility'>>): string | undefined {
  if (fields.title !== undefined && !isStorableText(fields.title, MAX_ROOM_TITLE)) return `title: at most ${MAX_ROOM_TITLE} characters, without NUL or lone surrogates`
  if (fields.topic !== undefined && !isStorableText(fields.topic, MAX_ROOM_TOPIC)) return `topic: at most ${MAX_ROOM_TOPIC} characters, without NUL or lone surrogates`
  if (fields.visibility !== undefined && fields.visibility !== 'public' && fields.visibility !== 'private') return 'visibility: public or private'
  return undefined
}

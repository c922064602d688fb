import type { ChatMemberRole, ChatServerFrame } from '../shared/protocol'

/** This client's membership of its room (docs/PROTOCOL.md, "Moderation commands"): no `role` means none. */
export interface ChatMembership {
  role?: ChatMemberRole
  /** Muted until then (epoch ms). */
  mutedUntil?: number
}

/**
 * What a frame tells this client (`me`: its user id) of its own membership: a `welcome` (or a
 * version 2 `joined` turned into one) says it on joining, a `member` frame about `me` when it
 * changes; undefined for any other frame (a moderator's answer about someone else included).
 */
export function membershipFrom(frame: ChatServerFrame, me: string | undefined): ChatMembership | undefined {
  if (frame.type === 'system' && frame.event === 'welcome') return membership(frame.role, frame.mutedUntil)
  if (frame.type !== 'member' || me === undefined || frame.uid !== me) return undefined
  return frame.removed ? {} : membership(frame.role, frame.mutedUntil)
}

function membership(role: ChatMemberRole | undefined, mutedUntil: number | undefined): ChatMembership {
  return { ...(role ? { role } : {}), ...(mutedUntil === undefined ? {} : { mutedUntil }) }
}

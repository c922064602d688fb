/**
 * The client's own membership of its room (docs/PROTOCOL.md, "Moderation commands"): from the
 * welcome on joining, then from `member` frames about this user only.
 */
import { describe, expect, it } from 'vitest'
import { membershipFrom } from '../../src/runtime/app/membership'
import { systemFrame, type ChatMemberFrame } from '../../src/runtime/shared/protocol'

const me = { id: 'u-bob', name: 'Bob' }
const member = (fields: Partial<ChatMemberFrame>): ChatMemberFrame => ({ type: 'member', room: 'team', uid: me.id, ...fields })

describe('membershipFrom', () => {
  it('a welcome says it, with or without a membership', () => {
    expect(membershipFrom({ ...systemFrame('welcome', 'team', me), role: 'owner' }, undefined)).toEqual({ role: 'owner' })
    expect(membershipFrom({ ...systemFrame('welcome', 'team', me), role: 'member', mutedUntil: 5 }, me.id)).toEqual({ role: 'member', mutedUntil: 5 })
    // A welcome without one (a public room, the seed's): no membership, whatever was known before.
    expect(membershipFrom(systemFrame('welcome', 'team', me), me.id)).toEqual({})
  })

  it('a member frame about this user changes it; one about someone else (a moderator\'s answer) does not', () => {
    expect(membershipFrom(member({ role: 'moderator' }), me.id)).toEqual({ role: 'moderator' })
    expect(membershipFrom(member({ role: 'member', mutedUntil: 99 }), me.id)).toEqual({ role: 'member', mutedUntil: 99 })
    expect(membershipFrom(member({ role: 'member', banned: true, removed: true }), me.id)).toEqual({})
    expect(membershipFrom(member({ uid: 'u-carol', role: 'moderator' }), me.id)).toBeUndefined()
    expect(membershipFrom(member({ role: 'moderator' }), undefined)).toBeUndefined()
  })

  it('other frames say nothing of it', () => {
    expect(membershipFrom(systemFrame('join', 'team', me), me.id)).toBeUndefined()
    expect(membershipFrom({ type: 'pong', user: 'server', message: 'pong' }, me.id)).toBeUndefined()
  })
})
